"""The Tagger: a model loaded once (run directory or export folder) that tags files, waveforms and lists.

Both kinds of model run the same graph functions (:func:`hvd_magtag.serving.tagging_module`); see
:mod:`hvd_magtag.tag` for the input formats, windows and outputs and :mod:`hvd_magtag.tag.stream` for how
files are decoded and fed to the model.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from hvd_magtag.models.registry import ModelSpec
from hvd_magtag.models.weights import load_weights
from hvd_magtag.rundir import RunDir
from hvd_magtag.serving import tagging_module
from hvd_magtag.tag import model as models
from hvd_magtag.tag.model import TaggerError
from hvd_magtag.tag.results import FileFailure, TagResult
from hvd_magtag.tag.stream import (
    CHUNK_WINDOWS,
    SEGMENT_SECONDS,
    WHOLE_FILE_MAX_BYTES,
    Accumulator,
    Reader,
    iter_tagged,
)
from hvd_magtag.train import build_model

#: Keras dtype policy of each inference precision (:data:`hvd_magtag.tag.model.PRECISIONS`).
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def _keras_model(run: RunDir, weights: str, precision: str):

    info = run.info
    model = build_model(info["model"], len(info["tags"]), info.get("overrides", {}), _POLICIES[precision])
    load_weights(model, run.weights_path(weights))  # also weights files of the 0.1.0 layout
    return model


class Tagger:
    """Loads a model once and tags files, waveforms or folders with it.

    model:     a run directory (``run.json``: the Keras model is rebuilt in memory with ``weights``) or an
               exported SavedModel folder (``saved_model.pb``).
    weights:   best | last | a .weights.h5 path (run directories only).
    precision: float32 | bfloat16 (run directories only; see :data:`hvd_magtag.tag.model.PRECISIONS`).
    segment_seconds / chunk_windows / whole_file_max_bytes: streaming granularity (memory vs overhead),
               see :mod:`hvd_magtag.tag.stream`.

    Superpool models: chunks hold whole groups of ``spec.n_windows`` windows and the clip probabilities
    average the groups of every chunk. A file of at most ``chunk_windows`` windows gives exactly the exported
    ``from_bytes`` result; in a longer file the last, partial group is topped up from the start of its own
    chunk rather than from the start of the file.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        weights: str = "best",
        precision: str = "float32",
        segment_seconds: float = SEGMENT_SECONDS,
        chunk_windows: int = CHUNK_WINDOWS,
        whole_file_max_bytes: int = WHOLE_FILE_MAX_BYTES,
    ):
        path = models.resolve_model(model)
        kind = models.model_kind(path)
        models.check_precision(precision, kind, path)
        if kind == models.SAVED_MODEL:
            module = tf.saved_model.load(str(path))
        else:
            run = RunDir(path)
            module = tagging_module(_keras_model(run, weights, precision), run.spec, run.tags)
        self._weight_files = models.weight_files(path, kind, weights)
        self.precision = precision
        self._setup(module, kind, path, segment_seconds, chunk_windows, whole_file_max_bytes)

    @classmethod
    def from_keras(
        cls,
        model,
        tags: Sequence[str],
        *,
        spec=None,
        segment_seconds: float = SEGMENT_SECONDS,
        chunk_windows: int = CHUNK_WINDOWS,
        whole_file_max_bytes: int = WHOLE_FILE_MAX_BYTES,
    ) -> Tagger:
        """A tagger for an in-memory Keras ``model`` (e.g. straight from ``create_model`` or a notebook);
        ``spec`` defaults to ``model.spec`` (set by the registry)."""
        spec = spec if spec is not None else getattr(model, "spec", None)
        if spec is None:
            raise TaggerError(f"model {model.name!r} has no .spec; pass spec= (a ModelSpec)")
        tagger = cls.__new__(cls)
        tagger._weight_files, tagger.precision = [], model.dtype_policy.compute_dtype
        module = tagging_module(model, spec, list(tags))
        tagger._setup(module, models.RUN_DIR, None, segment_seconds, chunk_windows, whole_file_max_bytes)
        return tagger

    def _setup(
        self,
        module,
        backend: str,
        path: Path | None,
        segment_seconds: float,
        chunk_windows: int,
        whole_file_max_bytes: int,
    ) -> None:
        if segment_seconds <= 0 or chunk_windows <= 0:
            raise TaggerError(
                f"segment_seconds and chunk_windows must be > 0, got {segment_seconds}, {chunk_windows}"
            )
        self.module, self.backend, self.path = module, backend, path
        self.tags = [t.decode() for t in module.tags.numpy()]
        self.spec = ModelSpec.from_dict(json.loads(module.spec_json.numpy().decode()))
        # superpool models pool groups of n_windows windows: keep chunks whole groups
        self.group = self.spec.n_windows if self.spec.windowing == "superpool" else 1
        chunk_windows = max(self.group, int(chunk_windows) // self.group * self.group)
        self.reader = Reader(module, self.spec, segment_seconds, whole_file_max_bytes, chunk_windows)
        #: samples per row of predict_windows: the window and the context its features read before it
        self.window_samples = self.reader.context + self.spec.window

    # -- settings ----------------------------------------------------------------------------------------
    @property
    def chunk_windows(self) -> int:
        return self.reader.chunk_windows

    @property
    def segment_seconds(self) -> float:
        return self.reader.segment_seconds

    @property
    def whole_file_max_bytes(self) -> int:
        return self.reader.whole_file_max_bytes

    def identity(self) -> dict:
        """What identifies this tagger's outputs (weights hash, spec, tags, precision): see
        :func:`hvd_magtag.tag.model.model_identity`."""
        if self._weight_files:
            digest = models.sha256_files(self._weight_files)
        else:  # an in-memory model: hash its weights
            digest = models.sha256_arrays(v.numpy() for v in self.module.model.weights)
        return models.model_identity(
            self.path, self.backend, self.spec.to_dict(), self.tags, self.precision, digest
        )

    # -- reading ---------------------------------------------------------------------------------------
    def segments(self, path: str | os.PathLike) -> Iterator[tuple[np.ndarray, float]]:
        """A file as mono float32 ``[samples]`` pieces at ``spec.sample_rate`` Hz with their durations in
        seconds of source audio (see :meth:`hvd_magtag.tag.stream.Reader.segments`)."""
        return self.reader.segments(path)

    def window_chunks(self, path: str | os.PathLike) -> Iterator[tuple[np.ndarray, float]]:
        """A file as chunks ``[k <= chunk_windows, spec.window]`` of consecutive windows (the last window
        zero-padded) with the seconds of source audio each chunk completes."""
        return self.reader.window_chunks(path)

    # -- predicting ------------------------------------------------------------------------------------
    def predict_windows(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """``windows`` float32 [n, context + spec.window] (mono, spec.sample_rate; ``context`` =
        ``features.window_context(spec)`` samples before each window, 0 for most models) -> {"clip",
        "taggram", "embedding"}."""
        out = self.module.predict_windows(np.asarray(windows, np.float32))
        return {k: v.numpy() for k, v in out.items()}

    def predict_chunks(self, chunks: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Per-chunk outputs of several chunks, in one model call for split models."""
        if len(chunks) == 1 or self.group > 1:
            return [self.predict_windows(c) for c in chunks]
        out = self.predict_windows(np.concatenate(chunks))
        bounds = np.cumsum([0] + [len(c) for c in chunks])
        per = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            taggram = out["taggram"][a:b]
            per.append({"taggram": taggram, "embedding": out["embedding"][a:b], "clip": taggram.mean(axis=0)})
        return per

    def finish(self, path: str, acc: Accumulator) -> TagResult:
        """The :class:`TagResult` of a file whose every chunk went through the model."""
        assert acc.clip_sum is not None, f"{path}: no window went through the model"
        return TagResult(
            path=path,
            tags=self.tags,
            clip=(acc.clip_sum / acc.clip_weight).astype(np.float32),
            taggram=np.concatenate(acc.taggram),
            embedding=np.concatenate(acc.embedding),
            duration=acc.seconds,
        )

    def tag(self, path: str | os.PathLike) -> TagResult:
        """Tag one file (streamed; see :mod:`hvd_magtag.tag.stream`). Raises on unreadable input."""
        acc = Accumulator()
        for windows, seconds in self.window_chunks(path):
            acc.add(self.predict_windows(windows), len(windows), self.group, seconds)
        return self.finish(str(path), acc)

    def tag_waveform(self, waveform: np.ndarray, sample_rate: int, name: str = "<waveform>") -> TagResult:
        """Tag an in-memory waveform ``[samples]`` or ``[samples, channels]`` at ``sample_rate`` Hz: float in
        [-1, 1], or integer PCM (scaled by its full scale, e.g. int16 / 32768). Runs the exported
        ``from_waveform`` function (whole clip at once)."""
        x = np.asarray(waveform)
        if np.issubdtype(x.dtype, np.integer):
            x = x / float(-np.iinfo(x.dtype).min)
        x = x.astype(np.float32, copy=False)
        x = x[:, None] if x.ndim == 1 else x
        out = {k: v.numpy() for k, v in self.module.from_waveform(x, int(sample_rate)).items()}
        return TagResult(name, self.tags, out["clip"], out["taggram"], out["embedding"], len(x) / sample_rate)

    def iter_many(
        self, paths: Sequence[str | os.PathLike], *, workers: int = 2, on_done=None
    ) -> Iterator[tuple[int, TagResult | FileFailure]]:
        """``(index, TagResult | FileFailure)`` for ``paths`` as they finish (see
        :func:`hvd_magtag.tag.stream.iter_tagged`)."""
        return iter_tagged(self, paths, workers=workers, on_done=on_done)

    def tag_many(
        self, paths: Sequence[str | os.PathLike], *, workers: int = 2, progress: bool = False
    ) -> list[TagResult | FileFailure]:
        """Tag ``paths`` (files) with ``workers`` decoding threads feeding the model; results in input order.

        A file that fails (unreadable, corrupt, unsupported) becomes a :class:`FileFailure`; the others are
        still tagged. Short files' windows share model calls (split models).
        """
        results: list[TagResult | FileFailure | None] = [None] * len(paths)
        with tqdm(
            total=len(paths), unit="file", disable=not progress, file=sys.stderr, dynamic_ncols=True
        ) as bar:
            for index, result in self.iter_many(paths, workers=workers, on_done=lambda _: bar.update()):
                results[index] = result
        return results  # type: ignore[return-value]
