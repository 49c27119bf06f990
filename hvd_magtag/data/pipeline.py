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
from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from hvd_magtag.config import parse_windows
from hvd_magtag.data import tfrecord
from hvd_magtag.data.catalog import Clip
from hvd_magtag.data.examples import MAX_EPOCHS, ClipTable, eval_windows, train_example
from hvd_magtag.features import features_for
from hvd_magtag.models.registry import ModelSpec

log = logging.getLogger(__name__)


def steps_per_epoch(n_clips: int, batch_size: int, size: int = 1) -> int:
    """Optimizer steps per epoch, identical on every rank: ``n_clips // (batch_size * size)``
    (the remainder of each epoch's permutation is left out; a different remainder each epoch)."""
    return n_clips // (batch_size * size)


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
    windows = parse_windows(windows, "windows")
    if tfrecord_dir:
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
