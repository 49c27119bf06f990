"""tf.data input pipelines: clips -> model-ready batches, sharded by Horovod rank.

    ds = train_dataset(catalog.split("train"), spec, batch_size=16, manifest=manifest,
                       rank=ctx.rank, size=ctx.size, seed=cfg.train.seed, start_step=step)
    for x, y in ds.take(n_steps): ...          # x [16, *spec.input_shape()], y [16, n_tags] float32

    ds = eval_dataset(catalog.split("test"), spec, windows=10, batch_size=32, manifest=manifest,
                      rank=ctx.rank, size=ctx.size)
    for x, y, clip_index in ds: ...            # window-level rows (split) or clip rows (superpool)

Training order, per epoch ``e``: the clip indices ``0..n-1`` are permuted by the stateless seed ``(seed, e)``
(identical on every rank, no communication), the first ``steps_per_epoch * batch_size * size`` are kept and
rank ``r`` takes every ``size``-th from ``r``. Sharding happens on indices, before any file is read, and
every rank yields exactly ``steps_per_epoch`` batches per epoch, so collective steps never hang. The random
crop of each element is seeded by ``(seed, e * n + clip index)``: a clip's crop does not depend on the
thread that decoded it. ``start_step`` skips whole epochs and then indices (no file is read or decoded
for skipped batches); with ``deterministic=True`` (fixed element order) a resumed run yields exactly the
batches the uninterrupted run would. With ``deterministic=False`` parallel decoding may reorder elements
within a few batches (faster); which clips each epoch uses and their crops are unchanged.

Each element carries its clip index, so labels come from the clip's own metadata row (``Clip.labels``).
Files are assumed decodable (validated by :mod:`hvd_magtag.data.manifest`): there is deliberately no
``ignore_errors``, which would give ranks different batch counts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from hvd_magtag import audio
from hvd_magtag.data.catalog import Clip
from hvd_magtag.data.examples import MAX_EPOCHS, eval_windows, train_example
from hvd_magtag.features import features_for, hop_alignment
from hvd_magtag.models.registry import ModelSpec

log = logging.getLogger(__name__)


def steps_per_epoch(n_clips: int, batch_size: int, size: int = 1) -> int:
    """Optimizer steps per epoch, identical on every rank: ``n_clips // (batch_size * size)``
    (the remainder of each epoch's permutation is left out; a different remainder each epoch)."""
    return n_clips // (batch_size * size)


# -- clip tables -----------------------------------------------------------------------------------------


def file_rates(clips: Sequence[Clip], manifest: Any = None) -> list[int]:
    """Sample rate (Hz) of each clip's file.

    manifest: a :class:`hvd_magtag.data.manifest.Manifest` (``.rate(path)``), a plain ``{path: rate}`` dict,
    or None (probe each file's header with tensorflow-io: slow for big datasets; validate once instead).
    """
    if manifest is None:
        import tensorflow_io as tfio

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
    """Decoder name (mp3 | wav | flac | ogg) of each clip's file: the format the manifest sniffed from the
    file's first bytes when it has one (``Manifest.format(path)``), else the file extension."""
    sniffed = getattr(manifest, "format", None)
    out = []
    for c in clips:
        fmt = sniffed(c.path) if callable(sniffed) and not isinstance(manifest, Mapping) else ""
        out.append(audio.FORMATS.get(fmt, "") or audio.format_of(c.path))
    return out


class ClipTable:
    """Per-clip constants as tensors, gathered by clip index inside the graph.

    paths [n] string, rates [n] int64 (Hz), labels [n, n_tags] float32, formats (one Python str when all files
    share a format, else [n] string), samples [n] int64 (decoded samples per channel; 0 = unknown),
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


def parse_windows(windows: int | str) -> int | str:
    """``10`` / ``"10"`` -> 10, ``"all"`` -> "all" (EvalConfig.windows is a string)."""
    if isinstance(windows, str) and windows.strip().lower() == "all":
        return "all"
    try:
        n = int(windows)
    except (TypeError, ValueError):
        raise ValueError(f"eval windows={windows!r}: give a positive number of windows or 'all'") from None
    if n <= 0:
        raise ValueError(f"eval windows={windows!r}: give a positive number of windows or 'all'")
    return n


def _options(deterministic: bool, threads: int | None) -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = deterministic
    if threads:
        options.threading.private_threadpool_size = threads
        options.threading.max_intra_op_parallelism = 1
    return options


def _parallel(threads: int | None) -> int:
    return threads if threads else tf.data.AUTOTUNE


# -- training ----------------------------------------------------------------------------------------------


def epoch_indices(
    n_clips: int, per_rank: int, seed: int, epoch: tf.Tensor, rank: int, size: int
) -> tf.Tensor:
    """Clip indices ``[per_rank]`` int64 rank ``rank`` reads in epoch ``epoch``: the (seed, epoch)
    permutation of all clips, its first ``per_rank * size`` entries, every ``size``-th from ``rank``."""
    perm = tf.random.experimental.stateless_shuffle(
        tf.range(n_clips, dtype=tf.int64), seed=tf.stack([tf.constant(seed, tf.int64), epoch])
    )
    return perm[: per_rank * size][rank::size]


def train_index_stream(
    n_clips: int, batch_size: int, *, rank: int, size: int, seed: int, start_step: int
) -> tf.data.Dataset:
    """Infinite ``(clip_index, epoch)`` int64 pairs of one rank, starting after ``start_step`` batches."""
    steps = steps_per_epoch(n_clips, batch_size, size)
    if steps == 0:
        raise ValueError(
            f"{n_clips} training clips are fewer than batch_size * ranks = {batch_size} * {size}: "
            "lower train.batch_size or use fewer ranks"
        )
    per_rank = steps * batch_size
    start_epoch, skip_batches = divmod(int(start_step), steps)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        idx = epoch_indices(n_clips, per_rank, seed, epoch, rank, size)
        return tf.data.Dataset.from_tensor_slices((idx, tf.fill([per_rank], epoch)))

    stream = tf.data.Dataset.range(start_epoch, MAX_EPOCHS).flat_map(one_epoch)
    return stream.skip(skip_batches * batch_size)


def train_dataset(
    clips: Sequence[Clip],
    spec: ModelSpec,
    *,
    batch_size: int,
    manifest: Any = None,
    rank: int = 0,
    size: int = 1,
    seed: int = 0,
    start_step: int = 0,
    deterministic: bool = False,
    threads: int | None = None,
    tfrecord_dir: str | None = None,
    window_decode: bool = True,
) -> tf.data.Dataset:
    """Infinite training batches ``(x [batch_size, *spec.input_shape()] float32, y [batch_size, n_tags] float32)``.

    clips:        the training split (same list, same order, on every rank).
    manifest:     file sample rates (Manifest, ``{path: rate}``, or None to probe files).
    rank, size:   this process's Horovod rank and the world size (shard before reading).
    seed:         per-epoch permutation and crop seed; start_step: batches already consumed (resume).
    deterministic: fixed element order (``tf.data.Options.deterministic``) for bitwise-repeatable batches.
    threads:      decode parallelism (the rank's thread budget); None = AUTOTUNE.
    tfrecord_dir: read a :mod:`hvd_magtag.data.tfrecord` extraction instead of decoding audio files.
    window_decode: MP3 clips whose length the manifest knows decode only a slice around the training
                  window (``data.window_decode``; :func:`hvd_magtag.audio.mp3_random_window`).
    Steps per epoch: :func:`steps_per_epoch` ``(len(clips), batch_size, size)``.
    """
    if tfrecord_dir:
        from hvd_magtag.data import tfrecord

        ds = tfrecord.train_examples(
            tfrecord_dir, clips, spec, rank=rank, size=size, seed=seed,
            start_step=start_step, batch_size=batch_size, threads=threads,
        )  # fmt: skip
    else:
        table = ClipTable(clips, manifest)
        n = table.n

        to_input = features_for(spec)

        def load(index: tf.Tensor, epoch: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            crop_seed = tf.stack([tf.constant(seed, tf.int64), epoch * n + index])
            if spec.windowing == "superpool":  # windows spread over the whole clip: decode it whole
                x = train_example(table.waveform(index, spec.sample_rate), spec, crop_seed)
            else:
                window = table.train_window(index, spec, crop_seed, window_decode)
                x = tf.ensure_shape(to_input(window), spec.input_shape())
            return x, tf.gather(table.labels, index)

        stream = train_index_stream(n, batch_size, rank=rank, size=size, seed=seed, start_step=start_step)
        ds = stream.map(load, num_parallel_calls=_parallel(threads))
    ds = ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options(deterministic, threads))


# -- evaluation --------------------------------------------------------------------------------------------


def eval_dataset(
    clips: Sequence[Clip],
    spec: ModelSpec,
    *,
    windows: int | str = 10,
    batch_size: int,
    manifest: Any = None,
    rank: int = 0,
    size: int = 1,
    threads: int | None = None,
    tfrecord_dir: str | None = None,
) -> tf.data.Dataset:
    """Finite evaluation batches ``(x [b, *spec.input_shape()], y [b, n_tags], clip_index [b] int32)``.

    Rank ``rank`` reads ``clips[rank::size]``; ``clip_index`` indexes ``clips``. Split models: one row per
    window (``windows`` evenly spaced per clip, or "all" consecutive ones); superpool models: one row per
    clip holding its ``spec.n_windows`` windows. The last batch may be smaller; ranks may see different
    batch counts (gather predictions after the loop, not per batch). Order is fixed.
    """
    windows = parse_windows(windows)
    if tfrecord_dir:
        from hvd_magtag.data import tfrecord

        rows = tfrecord.eval_examples(tfrecord_dir, clips, spec, windows=windows, rank=rank, size=size)
    else:
        table = ClipTable(clips, manifest)
        indices = tf.data.Dataset.range(rank, len(clips), size)

        def load(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            x = eval_windows(table.waveform(index, spec.sample_rate), spec, windows)
            k = tf.shape(x)[0]
            y = tf.tile(tf.gather(table.labels, index)[None], [k, 1])
            return x, y, tf.fill([k], tf.cast(index, tf.int32))

        rows = indices.map(load, num_parallel_calls=_parallel(threads)).unbatch()
    ds = rows.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options(True, threads))
