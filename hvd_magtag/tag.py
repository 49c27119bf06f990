"""Tag any song: a Python API and a CLI that mirror each other.

Python::

    import hvd_magtag
    hvd_magtag.top_tags("song.mp3", model="runs/samplecnn", top_k=5)   # [("guitar", 0.81), ...]
    tags, grid = hvd_magtag.taggram("song.mp3", model=RUN)              # grid: [n_windows, n_tags]
    hvd_magtag.embed("song.mp3", model=RUN)                             # {"windows": [n_windows, D], "clip": [D]}
    tagger = hvd_magtag.Tagger(RUN)                                      # load once, reuse
    result = tagger.tag("song.mp3"); result.top(5)

Command line::

    python -m hvd_magtag.tag song.mp3 [more files or folders] --model RUN_DIR --top-k 5 \
        [--format table|json|csv] [--out FILE] [--workers N]

``model`` / ``--model`` is a run directory (``run.json``; its Keras model is rebuilt in memory with the best
weights) or an exported SavedModel folder (``saved_model.pb``, see :mod:`hvd_magtag.export`). Both run the
same graph functions (:func:`hvd_magtag.export.tagging_module`).

Input: mp3, wav (16-bit PCM), flac (16-bit), ogg (Vorbis); mono or multi-channel (averaged to mono); any
sample rate (resampled to the model's ``spec.sample_rate``); any length. The audio is cut into consecutive
windows of ``spec.window`` samples over the whole file, the last one zero-padded (a file shorter than one
window gives one zero-padded window). Files up to :data:`WHOLE_FILE_MAX_BYTES` are decoded whole (the graph
of the exported ``from_bytes``); larger ones are read in segments of :data:`SEGMENT_SECONDS` seconds
(resampled with a margin so that segment joins are seamless, one such file at a time). Windows go through the
model in chunks of :data:`CHUNK_WINDOWS`, so memory stays bounded for hour-long files. Probabilities are sigmoid outputs in
[0, 1]; a file's clip probabilities are the mean of its window probabilities (split models; see
:mod:`hvd_magtag.export` for superpool models).

Folders are searched recursively for files with an extension in ``hvd_magtag.audio.FORMATS``. ``--workers``
threads decode and resample files in parallel and feed the model (one consumer; several short files' windows
share a model call). A progress bar (tqdm, stderr) is shown when a folder is given, unless ``--quiet``.

JSON output (``--format json``), schema version 1::

    {"schema": 1,
     "model": "/abs/path/of/model",          # as resolved
     "tags": ["guitar", ...],                 # the model's whole vocabulary, in output order
     "top_k": 5,
     "files": [{"path": "/abs/song.mp3",      # in the order given (folders: sorted)
                "duration": 29.1,             # seconds of audio decoded; null on error
                "top": [{"tag": "guitar", "prob": 0.81}, ...],   # top_k, highest first; [] on error
                "error": null}]}              # or a one-line message saying why the file failed

CSV output (``--format csv``): a header ``path,rank,tag,prob,error`` and one row per (file, rank); a failed
file has one row with empty rank/tag/prob and the error.

Exit status (the codes of ``train`` / ``evaluate``, :data:`hvd_magtag.train.EXIT_CODES_HELP`): 0 every file
tagged; 1 at least one file failed (named in the output, the others are still tagged); 2 usage error (bad
option); 3 no audio files found in the inputs; 4 the model is not a run directory or an export folder.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import os
import queue
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

#: Seconds of audio (at the file's own rate) decoded and resampled at a time.
SEGMENT_SECONDS = 60.0
#: Files up to this size (bytes) are decoded whole (in parallel in tag_many); larger ones are streamed. 4 MiB
#: is ~4 min of 128 kbit/s mp3 (~90 MB as float32 at 44.1 kHz stereo) or 47 s of 44.1 kHz stereo wav.
WHOLE_FILE_MAX_BYTES = 4 << 20
#: Windows per model call from the Python side (the graph batches them further, export.BATCH_WINDOWS).
CHUNK_WINDOWS = 32
#: Minimum extra context (s) read on each side of a segment so the resampler's edges fall outside it.
RESAMPLE_MARGIN_SECONDS = 0.05
#: Full scale of 16-bit PCM (wav/flac read as int16).
_INT16_SCALE = 32768.0
#: Version of the JSON output schema documented above.
JSON_SCHEMA_VERSION = 1
#: Error text for a --model path that does not exist.
MODEL_NOT_FOUND = "model not found; pass a run directory or an export folder (--model)"
#: Output formats of the CLI.
OUTPUT_FORMATS = ("table", "json", "csv")

log = logging.getLogger("hvd_magtag.tag")

#: tensorflow-io 0.37.1's AudioIOTensor misreads when two are alive in one process, even in one thread (reading
#: the first after opening a second returns wrong samples; across threads it can abort the process with a
#: dtype check). Streamed (large) files therefore hold this lock for the reader's whole life: one at a time.
_READER_LOCK = threading.Lock()


class TaggerError(ValueError):
    """The model or an input cannot be used; the message names the path and what to do."""


@dataclass
class TagResult:
    """Tags of one file (or waveform).

    clip:      float32 [n_tags] clip probabilities.
    taggram:   float32 [n_rows, n_tags] window-level probabilities (one row per window).
    embedding: float32 [n_windows, D] per-window embeddings.
    duration:  seconds of audio read (at the source rate).
    """

    path: str
    tags: list[str]
    clip: np.ndarray
    taggram: np.ndarray
    embedding: np.ndarray
    duration: float

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` most probable tags, highest first, as (tag, probability)."""
        order = np.argsort(-self.clip, kind="stable")[: max(k, 0)]
        return [(self.tags[i], float(self.clip[i])) for i in order]


@dataclass
class FileFailure:
    """A file that could not be tagged: ``error`` is a one-line reason."""

    path: str
    error: str


@dataclass
class _Accumulator:
    """Per-file partial outputs while its window chunks go through the model."""

    taggram: list[np.ndarray] = field(default_factory=list)
    embedding: list[np.ndarray] = field(default_factory=list)
    clip_sum: np.ndarray | None = None
    clip_weight: float = 0.0
    duration: float = 0.0


def _one_line(exc: BaseException) -> str:
    """A one-line message from an exception. TF op errors carry graph context (``Graph execution error``,
    ``Detected at node ... File ...`` traces, ``[[{{node ...}}]]``, ``[Op:...]``): keep the reason only."""
    import tensorflow as tf

    text = exc.message if isinstance(exc, tf.errors.OpError) else str(exc)
    lines = [line.strip() for line in text.splitlines()]
    noise = ("Graph execution error", "Detected at node", "File ", "[[")
    reasons = [line for line in lines if line and not line.startswith(noise)]
    reason = reasons[-1] if reasons else type(exc).__name__
    reason = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", reason)  # eager op prefix
    reason = re.sub(r"\s*\[Op:[^\]]*\]$", "", reason)  # op suffix
    reason = re.sub(r"^assertion failed: \[(.*)\]$", r"\1", reason)  # tf.debugging.Assert messages
    return f"{type(exc).__name__}: {reason}"


class Tagger:
    """Loads a model once and tags files, waveforms or folders with it.

    model:   a run directory (``run.json``: the Keras model is rebuilt in memory with ``weights``) or an
             exported SavedModel folder (``saved_model.pb``).
    weights: best | last | a .weights.h5 path (run directories only).
    segment_seconds / chunk_windows / whole_file_max_bytes: streaming granularity (memory vs overhead),
             see the module docstring and :meth:`segments`.

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
        segment_seconds: float = SEGMENT_SECONDS,
        chunk_windows: int = CHUNK_WINDOWS,
        whole_file_max_bytes: int = WHOLE_FILE_MAX_BYTES,
    ):
        from hvd_magtag.export import SAVED_MODEL_FILE, is_export_dir

        path = Path(model).expanduser().resolve()
        if not path.exists():
            raise TaggerError(f"{path}: {MODEL_NOT_FOUND}")
        if is_export_dir(path):
            import tensorflow as tf

            module, backend = tf.saved_model.load(str(path)), "savedmodel"
        elif (path / "run.json").is_file():
            from hvd_magtag.export import tagging_module
            from hvd_magtag.rundir import RunDir

            run = RunDir(path)
            module, backend = tagging_module(run.load_model(weights), run.spec, run.tags), "keras"
        else:
            raise TaggerError(
                f"{path}: neither a run directory (no run.json) nor an exported model (no {SAVED_MODEL_FILE})"
            )
        self._setup(module, backend, path, segment_seconds, chunk_windows, whole_file_max_bytes)

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
        from hvd_magtag.export import tagging_module

        spec = spec if spec is not None else getattr(model, "spec", None)
        if spec is None:
            raise TaggerError(f"model {model.name!r} has no .spec; pass spec= (a ModelSpec)")
        tagger = cls.__new__(cls)
        module = tagging_module(model, spec, list(tags))
        tagger._setup(module, "keras", None, segment_seconds, chunk_windows, whole_file_max_bytes)
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
        from hvd_magtag.models.registry import ModelSpec

        if segment_seconds <= 0 or chunk_windows <= 0:
            raise TaggerError(
                f"segment_seconds and chunk_windows must be > 0, got {segment_seconds}, {chunk_windows}"
            )
        self.module, self.backend, self.path = module, backend, path
        self.tags = [t.decode() for t in module.tags.numpy()]
        self.spec = ModelSpec.from_dict(json.loads(module.spec_json.numpy().decode()))
        self.segment_seconds = float(segment_seconds)
        self.whole_file_max_bytes = int(whole_file_max_bytes)
        group = self._group  # superpool models pool groups of n_windows windows: keep chunks whole groups
        self.chunk_windows = max(group, int(chunk_windows) // group * group)

    @property
    def _group(self) -> int:
        return self.spec.n_windows if self.spec.windowing == "superpool" else 1

    # -- reading ---------------------------------------------------------------------------------------
    def segments(self, path: str | os.PathLike) -> Iterator[tuple[np.ndarray, float]]:
        """A file as mono float32 ``[samples]`` pieces at ``spec.sample_rate`` Hz, each with its duration in
        seconds of source audio; the pieces concatenate to the whole file resampled at once.

        Files up to ``whole_file_max_bytes`` are decoded in one piece by the module's ``prepare_bytes`` (the
        same graph as the exported ``from_bytes``; thread-safe, so ``tag_many`` decodes them in parallel).
        Larger files are streamed in ``segment_seconds`` segments with tensorflow-io's AudioIOTensor, one
        such file at a time (see ``_READER_LOCK``).
        """
        from hvd_magtag.audio import format_of

        fmt = format_of(str(path))  # unsupported extensions fail with a clear message before any decoding
        size = os.path.getsize(path)  # a missing file raises FileNotFoundError naming it
        if size == 0:
            raise TaggerError(f"{path}: empty file (0 bytes)")
        if size <= self.whole_file_max_bytes:
            out = self.module.prepare_bytes(Path(path).read_bytes(), fmt)
            yield out["waveform"].numpy(), int(out["samples"]) / int(out["sample_rate"])
        else:
            with _READER_LOCK:  # held while the reader exists: tensorflow-io allows one live AudioIOTensor
                yield from self._stream(path)

    def _stream(self, path: str | os.PathLike) -> Iterator[tuple[np.ndarray, float]]:
        import tensorflow_io as tfio

        reader = tfio.audio.AudioIOTensor(str(path))
        rate = int(reader.rate.numpy())
        n_samples, n_channels = (int(v) for v in reader.shape.numpy())
        if rate <= 0 or n_channels <= 0:
            raise TaggerError(f"{path}: no audio stream (rate {rate} Hz, {n_channels} channels)")
        if n_samples == 0:
            raise TaggerError(f"{path}: contains no audio samples")
        target = self.spec.sample_rate
        g = math.gcd(rate, target)
        unit_in, unit_out = rate // g, target // g  # unit_in source samples <-> unit_out samples, exactly
        segment = max(1, round(self.segment_seconds * rate / unit_in)) * unit_in
        margin = (
            0 if rate == target else max(1, math.ceil(RESAMPLE_MARGIN_SECONDS * rate / unit_in)) * unit_in
        )
        for start in range(0, n_samples, segment):
            stop = min(start + segment, n_samples)
            lo, hi = max(0, start - margin), min(n_samples, stop + margin)
            x = reader[lo:hi].numpy()  # [hi - lo, channels]
            if x.dtype == np.int16:
                x = x.astype(np.float32) / _INT16_SCALE
            y = self.module.prepare(x.astype(np.float32, copy=False), rate)["waveform"].numpy()
            first = (start - lo) // unit_in * unit_out
            if stop == n_samples:
                y = y[first:]  # the resampler decides the rounding of the total length
            else:
                y = y[first : first + (stop - start) // unit_in * unit_out]
            yield y, (stop - start) / rate

    def window_chunks(self, path: str | os.PathLike) -> Iterator[tuple[np.ndarray, float]]:
        """Stream a file as chunks ``[k <= chunk_windows, spec.window]`` of consecutive windows (the last
        window zero-padded) with the seconds of source audio each chunk completes."""
        window = self.spec.window
        carry = np.zeros(0, np.float32)  # samples after the last whole window so far
        ready: list[np.ndarray] = []  # whole windows not yet yielded
        seconds, yielded = 0.0, False
        for piece, piece_seconds in self.segments(path):
            seconds += piece_seconds
            buf = np.concatenate([carry, piece]) if carry.size else piece
            k = buf.size // window
            if k:
                ready.extend(buf[: k * window].reshape(k, window))
            carry = buf[k * window :].copy()
            while len(ready) >= self.chunk_windows:
                yield np.stack(ready[: self.chunk_windows]), seconds
                ready, seconds, yielded = ready[self.chunk_windows :], 0.0, True
        if carry.size or not (ready or yielded):  # the tail (or a file shorter than a window), zero-padded
            ready.append(np.pad(carry, (0, window - carry.size)))
        if ready:
            yield np.stack(ready), seconds

    # -- predicting ------------------------------------------------------------------------------------
    def predict_windows(self, windows: np.ndarray) -> dict[str, np.ndarray]:
        """``windows`` float32 [n, spec.window] (mono, spec.sample_rate) -> {"clip", "taggram", "embedding"}."""
        out = self.module.predict_windows(np.asarray(windows, np.float32))
        return {k: v.numpy() for k, v in out.items()}

    def _add(self, acc: _Accumulator, out: dict[str, np.ndarray], n_windows: int) -> None:
        acc.taggram.append(out["taggram"])
        acc.embedding.append(out["embedding"])
        weight = -(-n_windows // self._group)  # model calls (groups) this chunk's clip averages over
        contribution = out["clip"].astype(np.float64) * weight
        acc.clip_sum = contribution if acc.clip_sum is None else acc.clip_sum + contribution
        acc.clip_weight += weight

    def _finish(self, path: str, acc: _Accumulator) -> TagResult:
        assert acc.clip_sum is not None
        return TagResult(
            path=path,
            tags=self.tags,
            clip=(acc.clip_sum / acc.clip_weight).astype(np.float32),
            taggram=np.concatenate(acc.taggram),
            embedding=np.concatenate(acc.embedding),
            duration=acc.duration,
        )

    def tag(self, path: str | os.PathLike) -> TagResult:
        """Tag one file (streamed; see the module docstring). Raises on unreadable input."""
        acc = _Accumulator()
        for windows, seconds in self.window_chunks(path):
            self._add(acc, self.predict_windows(windows), len(windows))
            acc.duration += seconds
        return self._finish(str(path), acc)

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

    def tag_many(
        self, paths: Sequence[str | os.PathLike], *, workers: int = 2, progress: bool = False
    ) -> list[TagResult | FileFailure]:
        """Tag ``paths`` (files) with ``workers`` decoding threads feeding the model; results in input order.

        A file that fails (unreadable, corrupt, unsupported) becomes a :class:`FileFailure`; the others are
        still tagged. Short files' windows share model calls (split models).
        """
        results: list[TagResult | FileFailure | None] = [None] * len(paths)
        for index, result in self._iter_many(paths, workers=workers, progress=progress):
            results[index] = result
        return results  # type: ignore[return-value]

    def _iter_many(
        self, paths: Sequence[str | os.PathLike], *, workers: int, progress: bool
    ) -> Iterator[tuple[int, TagResult | FileFailure]]:
        import tensorflow as tf
        from tqdm import tqdm

        workers = max(1, int(workers))
        items: queue.Queue = queue.Queue(maxsize=2 * workers)  # bounded: ~2 chunks per worker in flight
        todo: queue.Queue = queue.Queue()
        for i, p in enumerate(paths):
            todo.put((i, str(p)))
        stop = threading.Event()

        def produce() -> None:
            while not stop.is_set():
                try:
                    index, path = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    for windows, seconds in self.window_chunks(path):
                        items.put(("chunk", index, windows, seconds))
                        if stop.is_set():
                            return
                    items.put(("done", index, None, 0.0))
                except (tf.errors.OpError, OSError, ValueError, RuntimeError) as e:
                    items.put(("error", index, _one_line(e), 0.0))
                except BaseException as e:  # a bug, not a bad file: hand it to the consumer, which re-raises
                    items.put(("fatal", index, e, 0.0))
                    raise

        threads = [
            threading.Thread(target=produce, daemon=True, name=f"tag-reader-{i}") for i in range(workers)
        ]
        for t in threads:
            t.start()
        accs: dict[int, _Accumulator] = {}
        bar = tqdm(total=len(paths), unit="file", disable=not progress, file=sys.stderr, dynamic_ncols=True)
        remaining = len(paths)
        try:
            while remaining:
                batch = [items.get()]
                if self._group == 1:  # split models: several files' windows share one model call
                    while _count_windows(batch) < self.chunk_windows:
                        try:
                            batch.append(items.get_nowait())
                        except queue.Empty:
                            break
                # A file's chunks precede its done/error event in the queue: predict chunks, then events.
                chunks = [(index, w, s) for kind, index, w, s in batch if kind == "chunk"]
                if chunks:
                    for (index, windows, seconds), out in zip(
                        chunks, self._predict_chunks([c[1] for c in chunks])
                    ):
                        acc = accs.setdefault(index, _Accumulator())
                        self._add(acc, out, len(windows))
                        acc.duration += seconds
                for kind, index, payload, _ in batch:
                    if kind == "chunk":
                        continue
                    if kind == "fatal":
                        raise RuntimeError(f"{paths[index]}: tagging crashed") from payload
                    remaining -= 1
                    bar.update()
                    if kind == "error":
                        accs.pop(index, None)
                        yield index, FileFailure(str(paths[index]), payload)
                    else:
                        yield index, self._finish(str(paths[index]), accs.pop(index))
        finally:
            stop.set()
            bar.close()
            while any(t.is_alive() for t in threads):  # unblock producers waiting on a full queue
                try:
                    items.get(timeout=0.1)
                except queue.Empty:
                    pass

    def _predict_chunks(self, chunks: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """One model call for several chunks (split models) -> per-chunk outputs."""
        if len(chunks) == 1:
            return [self.predict_windows(chunks[0])]
        out = self.predict_windows(np.concatenate(chunks))
        bounds = np.cumsum([0] + [len(c) for c in chunks])
        per = []
        for a, b in zip(bounds[:-1], bounds[1:]):
            taggram = out["taggram"][a:b]
            per.append({"taggram": taggram, "embedding": out["embedding"][a:b], "clip": taggram.mean(axis=0)})
        return per


def _count_windows(batch: list[tuple]) -> int:
    return sum(len(w) for kind, _, w, _ in batch if kind == "chunk")


# ---------------------------------------------------------------------------------------------------------
# Python API
# ---------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _cached_tagger(path: str, weights: str) -> Tagger:
    return Tagger(path, weights=weights)


def get_tagger(model: str | os.PathLike | Tagger, weights: str = "best") -> Tagger:
    """A :class:`Tagger` for ``model`` (a path is loaded once per process and reused)."""
    if isinstance(model, Tagger):
        return model
    return _cached_tagger(str(Path(model).expanduser().resolve()), weights)


def top_tags(
    path: str | os.PathLike, model: str | os.PathLike | Tagger, top_k: int = 10
) -> list[tuple[str, float]]:
    """The ``top_k`` most probable tags of an audio file, highest first, as (tag, probability in [0, 1]).

    ``model`` is a run directory, an exported SavedModel folder or a :class:`Tagger`."""
    return get_tagger(model).tag(path).top(top_k)


def taggram(path: str | os.PathLike, model: str | os.PathLike | Tagger) -> tuple[list[str], np.ndarray]:
    """(tag names, probabilities float32 [n_windows, n_tags]): the window-level tags over time, one row per
    ``spec.window`` samples (``Tagger(model).spec.window_seconds`` seconds) of the file."""
    result = get_tagger(model).tag(path)
    return result.tags, result.taggram


def embed(path: str | os.PathLike, model: str | os.PathLike | Tagger) -> dict[str, np.ndarray]:
    """Embeddings of a file: ``{"windows": float32 [n_windows, D], "clip": float32 [D]}`` (clip = mean of
    windows); the features before the model's classifier."""
    emb = get_tagger(model).tag(path).embedding
    return {"windows": emb, "clip": emb.mean(axis=0)}


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def audio_files(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], bool]:
    """Expand files and folders (recursively, sorted; extensions of ``audio.FORMATS``) into a file list.

    Returns (files, any_folder). Paths given explicitly are kept even when missing or of another
    extension, so that they are reported as failures by name."""
    from hvd_magtag.audio import FORMATS

    files: list[Path] = []
    any_folder = False
    for item in inputs:
        p = Path(item).expanduser().resolve()
        if p.is_dir():
            any_folder = True
            found = [f for f in p.rglob("*") if f.is_file() and f.suffix.lower().lstrip(".") in FORMATS]
            files.extend(sorted(found))
        else:
            files.append(p)
    return files, any_folder


def to_json(
    model: str, tags: list[str], top_k: int, results: list[TagResult | FileFailure]
) -> dict[str, Any]:
    """The documented JSON document (schema version 1, see the module docstring)."""
    files = []
    for r in results:
        if isinstance(r, FileFailure):
            files.append({"path": r.path, "duration": None, "top": [], "error": r.error})
        else:
            top = [{"tag": t, "prob": round(p, 6)} for t, p in r.top(top_k)]
            files.append({"path": r.path, "duration": round(r.duration, 3), "top": top, "error": None})
    return {"schema": JSON_SCHEMA_VERSION, "model": model, "tags": list(tags), "top_k": top_k, "files": files}


def to_csv(results: list[TagResult | FileFailure], top_k: int) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "rank", "tag", "prob", "error"])
    for r in results:
        if isinstance(r, FileFailure):
            writer.writerow([r.path, "", "", "", r.error])
        else:
            for rank, (t, p) in enumerate(r.top(top_k), start=1):
                writer.writerow([r.path, rank, t, f"{p:.6f}", ""])
    return buf.getvalue()


def to_table(results: list[TagResult | FileFailure], top_k: int) -> str:
    lines = []
    for r in results:
        if isinstance(r, FileFailure):
            lines.append(f"{r.path}\n  FAILED: {r.error}")
            continue
        lines.append(f"{r.path}  ({r.duration:.1f} s)")
        width = max((len(t) for t, _ in r.top(top_k)), default=0)
        lines.extend(f"  {t:<{width}}  {p:.3f}" for t, p in r.top(top_k))
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hvd_magtag.tag",
        description="Tag audio files with a trained model (mp3, wav, flac, ogg; folders are searched recursively).",
        epilog="Exit status: 0 all files tagged, 1 some file failed (named in the output), 2 usage error, "
        "3 no audio files found, 4 the model is not a run directory or export folder.",
    )
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders")
    parser.add_argument("--model", required=True, help="run directory or exported SavedModel folder")
    parser.add_argument("--weights", default="best", help="best | last | .weights.h5 path (run directories)")
    parser.add_argument("--top-k", type=int, default=10, help="tags per file (default: 10)")
    parser.add_argument(
        "--format", choices=OUTPUT_FORMATS, default="table", help="output format (default: table)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="write the output to this file (default: stdout)"
    )
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (default: 2)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits with status 2 on a usage error
    if args.top_k < 1 or args.workers < 1:
        parser.error("--top-k and --workers must be >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices would drown the table
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from hvd_magtag.train import EXIT_DATA, EXIT_RUN_DIR

    model = Path(args.model).expanduser().resolve()
    if not model.exists():  # before TensorFlow is imported: the answer is instant
        print(f"error: {model}: {MODEL_NOT_FOUND}", file=sys.stderr)
        return EXIT_RUN_DIR
    files, any_folder = audio_files(args.inputs)
    if not files:
        print(
            f"error: no audio files ({', '.join(_extensions())}) found in {' '.join(args.inputs)}",
            file=sys.stderr,
        )
        return EXIT_DATA
    from hvd_magtag.rundir import RunDirError

    try:
        tagger = Tagger(args.model, weights=args.weights)
    except (TaggerError, RunDirError) as e:  # the model folder cannot be used
        print(f"error: {e}", file=sys.stderr)
        return EXIT_RUN_DIR
    results = tagger.tag_many(files, workers=args.workers, progress=any_folder and not args.quiet)
    if args.format == "json":
        text = json.dumps(to_json(str(tagger.path), tagger.tags, args.top_k, results), indent=2) + "\n"
    elif args.format == "csv":
        text = to_csv(results, args.top_k)
    else:
        text = to_table(results, args.top_k)
    if args.out:
        from hvd_magtag.rundir import atomic_write_text

        atomic_write_text(args.out.expanduser().resolve(), text)
    else:
        sys.stdout.write(text)
    failed = [r for r in results if isinstance(r, FileFailure)]
    if failed:
        print(
            f"{len(failed)} of {len(results)} file(s) failed: {', '.join(f.path for f in failed)}",
            file=sys.stderr,
        )
    return 1 if failed else 0


def _extensions() -> list[str]:
    from hvd_magtag.audio import FORMATS

    return sorted(FORMATS)


if __name__ == "__main__":
    sys.exit(main())
