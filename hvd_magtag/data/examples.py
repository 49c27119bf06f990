"""Clips to model inputs: the example-building shared by the audio pipeline and TFRecords.

:mod:`hvd_magtag.data.pipeline` (decoding audio files) and :mod:`hvd_magtag.data.tfrecord` (extracting and
reading records) both read clips through a :class:`ClipTable` and cut windows and compute features here, so
a raw extraction feeds models exactly the inputs the audio path does.

    table = ClipTable(clips, manifest)          # per-clip paths, rates, formats, labels as tensors
    waveform = table.waveform(index, 16000)     # [samples] mono at 16 kHz, decoded in the graph
    x = train_example(waveform, spec, seed)     # spec.input_shape(): one random window (split) or the
                                                # n_windows evenly spaced ones (superpool)
    x = eval_windows(waveform, spec, 10)        # [10, *window_shape] (split) or [1, n_windows, ...]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_io as tfio

from hvd_magtag import audio
from hvd_magtag.audio.formats import BY_NAME
from hvd_magtag.config import parse_windows
from hvd_magtag.data.catalog import Clip
from hvd_magtag.features import features_for, hop_alignment
from hvd_magtag.models.registry import ModelSpec

log = logging.getLogger(__name__)

#: Largest epoch index of the endless training streams (a counter; never reached in practice).
MAX_EPOCHS = 2**40


# -- clip tables -----------------------------------------------------------------------------------------


def file_rates(clips: Sequence[Clip], manifest: Any = None) -> list[int]:
    """Sample rate (Hz) of each clip's file.

    manifest: a :class:`hvd_magtag.data.manifest.Manifest` (``.rate(path)``), a plain ``{path: rate}`` dict,
    or None (probe each file's header with tensorflow-io: slow for big datasets; validate once instead).
    """
    if manifest is None:
        if len(clips) > 1000:
            log.warning(
                "no manifest: probing the sample rate of %d files (run manifest.validate once)", len(clips)
            )
        return [int(tfio.audio.AudioIOTensor(c.path).rate.numpy()) for c in clips]
    lookup = manifest.get if isinstance(manifest, Mapping) else manifest.rate
    rates = []
    for c in clips:
        try:
            rate = lookup(c.path)
        except KeyError:
            rate = None
        if rate is None:
            raise ValueError(f"{c.path}: not in the manifest; re-run manifest.validate on this catalog")
        rates.append(int(rate))
    return rates


def file_formats(clips: Sequence[Clip], manifest: Any = None) -> list[str]:
    """The decoder of each clip's file: mp3 | wav | flac | ogg (in the graph) or soundfile | av (in Python,
    ``audio.decode_python``). The manifest's choice for that file when it has one (``Manifest.decoder``:
    the graph decoder when it takes the file, e.g. not a 24-bit WAV), else from the suffix (the format's
    graph decoder, or its Python one when it has none: :mod:`hvd_magtag.audio.formats`)."""

    chosen = getattr(manifest, "decoder", None)
    named = getattr(manifest, "format", None)  # a manifest that only sniffed the format (no decoder)
    out = []
    for c in clips:
        usable = not isinstance(manifest, Mapping)
        decoder = chosen(c.path) if callable(chosen) and usable else ""
        if not decoder and callable(named) and usable:
            decoder = audio.graph_decoder(named(c.path) or "")
        if not decoder:
            entry = BY_NAME[audio.format_of(c.path)]
            decoder = entry.graph or entry.python
        out.append(decoder)
    return out


class ClipTable:
    """Per-clip constants as tensors, gathered by clip index inside the graph.

    paths [n] string, rates [n] int64 (Hz), labels [n, n_tags] float32, format: the files' decoders (one
    Python str when all files share one, else [n] string; :func:`file_formats`), samples [n] int64 (decoded samples per channel; 0 = unknown),
    audio_start / audio_end [n] int64 (bytes: an mp3's audio frames, ``Manifest.audio_range``; 0 = unknown).
    """

    def __init__(self, clips: Sequence[Clip], manifest: Any = None):
        if not clips:
            raise ValueError("no clips to read: the split is empty (check the dataset root and split name)")
        self.n = len(clips)
        self.labels = tf.constant(np.stack([c.labels for c in clips]).astype(np.float32))
        self.paths = tf.constant([c.path for c in clips])
        formats = file_formats(clips, manifest)
        self.format: str | tf.Tensor = formats[0] if len(set(formats)) == 1 else tf.constant(formats)
        rates = file_rates(clips, manifest)
        self.rate: int | tf.Tensor = rates[0] if len(set(rates)) == 1 else tf.constant(rates, tf.int64)
        # decoded samples per channel and the byte range of the audio frames (a Manifest knows them; 0 =
        # unknown): size and place the MP3 window slices
        lengths = getattr(manifest, "samples", None)
        known = callable(lengths) and not isinstance(manifest, Mapping) and "mp3" in formats
        self.samples = tf.constant([int(lengths(c.path)) for c in clips] if known else [0] * self.n, tf.int64)
        audio_range = getattr(manifest, "audio_range", None) if known else None
        ranges = [audio_range(c.path) for c in clips] if callable(audio_range) else [(0, 0)] * self.n
        self.audio_start = tf.constant([r[0] for r in ranges], tf.int64)
        self.audio_end = tf.constant([r[1] for r in ranges], tf.int64)
        self.any_mp3 = "mp3" in formats

    def train_window(
        self, index: tf.Tensor, spec: ModelSpec, seed: tf.Tensor, window_decode: bool
    ) -> tf.Tensor:
        """One random training window ``[spec.window]`` of clip ``index`` at ``spec.sample_rate``: MP3 files
        decode only a slice around it (:func:`hvd_magtag.audio.mp3_random_window`) when ``window_decode``
        and the manifest gave their length; other files (and those) are decoded whole, then cropped."""
        align = hop_alignment(spec)
        fmt = self.format if isinstance(self.format, str) else tf.gather(self.format, index)
        rate = self.rate if isinstance(self.rate, int) else tf.gather(self.rate, index)

        def whole() -> tf.Tensor:
            return audio.random_window(self.waveform(index, spec.sample_rate), spec.window, seed, align)

        if not (window_decode and self.any_mp3):
            return whole()

        def sliced() -> tf.Tensor:
            contents = tf.io.read_file(tf.gather(self.paths, index))
            return audio.mp3_random_window(
                contents, tf.gather(self.samples, index), rate, spec.sample_rate, spec.window, seed, align,
                tf.gather(self.audio_start, index), tf.gather(self.audio_end, index),
            )  # fmt: skip

        if isinstance(fmt, str):
            return sliced()  # all files are MP3
        return tf.cond(tf.equal(fmt, "mp3"), sliced, whole)

    def waveform(self, index: tf.Tensor, sample_rate: int) -> tf.Tensor:
        """Clip ``index``'s audio, mono float32 ``[samples]`` at ``sample_rate`` Hz."""
        fmt = self.format if isinstance(self.format, str) else tf.gather(self.format, index)
        rate = self.rate if isinstance(self.rate, int) else tf.gather(self.rate, index)
        return audio.load(tf.gather(self.paths, index), fmt, rate, sample_rate)


# -- waveform -> model input -------------------------------------------------------------------------------


def train_example(waveform: tf.Tensor, spec: ModelSpec, seed: tf.Tensor) -> tf.Tensor:
    """Training input from a clip's waveform ``[samples]``: a random window (split) or the ``n_windows``
    evenly spaced windows (superpool), through the spec's features -> ``spec.input_shape()``."""
    to_input, align = features_for(spec), hop_alignment(spec)
    if spec.windowing == "superpool":
        windows = audio.even_windows(waveform, spec.window, spec.n_windows, align)
    else:
        windows = audio.random_window(waveform, spec.window, seed, align)
    return tf.ensure_shape(to_input(windows), spec.input_shape())


def eval_windows(waveform: tf.Tensor, spec: ModelSpec, windows: int | str) -> tf.Tensor:
    """Evaluation inputs from a clip's waveform: split models ``[k, *window_shape]`` (k = ``windows`` evenly
    spaced, or all consecutive when "all"); superpool models ``[1, n_windows, *window_shape]``."""
    to_input, align = features_for(spec), hop_alignment(spec)
    windows = parse_windows(windows, "windows")
    if spec.windowing == "superpool":
        x = audio.even_windows(waveform, spec.window, spec.n_windows, align)[None]
    elif windows == "all":
        x = audio.all_windows(waveform, spec.window, align)
    else:
        x = audio.even_windows(waveform, spec.window, windows, align)
    return tf.ensure_shape(to_input(x), [None, *spec.input_shape()])
