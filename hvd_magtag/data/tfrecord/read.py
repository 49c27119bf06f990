"""Reading an extraction: endless training examples and evaluation rows, sharded by rank.

:func:`train_examples` / :func:`eval_examples` give unbatched ``(x, y)`` / ``(x, y, clip_index)`` in the
shapes the audio path gives (how each format maps onto the model's input: :mod:`hvd_magtag.data.tfrecord`);
:func:`hvd_magtag.data.pipeline.train_dataset` / ``eval_dataset`` batch them (``tfrecord_dir=``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from hvd_magtag import audio
from hvd_magtag.config import parse_windows
from hvd_magtag.data.catalog import Clip
from hvd_magtag.data.examples import MAX_EPOCHS, eval_windows, train_example
from hvd_magtag.data.tfrecord.layout import check_compatible, load_index, parse_record
from hvd_magtag.features import LOG_FLOOR, features_for, hop_alignment
from hvd_magtag.models.registry import ModelSpec

#: Records held by the training shuffle buffer (a raw 30 s clip at 16 kHz is ~1.9 MB).
SHUFFLE_RECORDS = 64
#: Shard files read concurrently by one training stream.
INTERLEAVE_FILES = 4


def _split_files(index: dict, clips: Sequence[Clip]) -> list[str]:
    """Paths of the extraction's shard files holding the splits of ``clips`` (error naming a missing split)."""
    splits = sorted({c.split for c in clips})
    missing = [s for s in splits if s not in index["files"]]
    if missing:
        raise ValueError(
            f"{index['dir']}: no records for split(s) {', '.join(missing)}; re-extract including them"
        )
    return [str(Path(index["dir"]) / name) for s in splits for name in index["files"][s]]


def _clip_id_table(clips: Sequence[Clip]) -> tf.lookup.StaticHashTable:
    """clip_id -> position in ``clips`` (int64; -1 for a record of a clip not in the list)."""
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant([c.clip_id for c in clips]), tf.range(len(clips), dtype=tf.int64)
    )
    return tf.lookup.StaticHashTable(init, default_value=-1)


def _pair_with_clip_index(table: tf.lookup.StaticHashTable):
    """A map function: serialized record -> (its clip's index in the table, the record)."""

    def parse(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        clip_id = tf.io.parse_single_example(serialized, {"clip_id": tf.io.FixedLenFeature([], tf.string)})
        return table.lookup(clip_id["clip_id"]), serialized

    return parse


def _frame_slices(frames: tf.Tensor, starts: tf.Tensor, spec: ModelSpec) -> tf.Tensor:
    """Windows of a full-clip filterbank ``[F, n_mels]`` at sample ``starts`` ``[k]`` (hop multiples) ->
    ``[k, n_frames, n_mels]``; frames past the clip end hold the log floor (as silence does)."""
    n_frames, n_mels = spec.window_shape()
    hop = spec.fbank.hop_length
    pad = tf.fill([n_frames, n_mels], tf.constant(np.log(LOG_FLOOR), tf.float32))
    frames = tf.concat([frames, pad], axis=0)
    idx = starts[:, None] // hop + tf.range(n_frames)[None, :]
    return tf.gather(frames, idx)


def _even_pick(k: tf.Tensor, n: int) -> tf.Tensor:
    return tf.cast(tf.round(tf.linspace(0.0, tf.cast(k - 1, tf.float32), n)), tf.int32)


def _train_input(fmt: str, spec: ModelSpec):
    """(stored data, n_samples, seed) -> one training input ``spec.input_shape()``."""
    align = hop_alignment(spec)

    def make(data: tf.Tensor, n_samples: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        if fmt == "raw":
            return train_example(data, spec, seed)
        if fmt == "fbank":
            if spec.windowing == "superpool":
                starts = audio.even_window_starts(n_samples, spec.window, spec.n_windows, align)
                return _frame_slices(data, starts, spec)
            start = audio.random_window_start(n_samples, spec.window, seed, align)
            return _frame_slices(data, start[None], spec)[0]
        windows = data if fmt == "windowed-fbank" else features_for(spec)(data)
        if spec.windowing == "superpool":
            return windows
        pick = tf.random.stateless_uniform([], seed=seed, maxval=tf.shape(windows)[0], dtype=tf.int32)
        return windows[pick]

    def train_input(data: tf.Tensor, n_samples: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        return tf.ensure_shape(make(data, n_samples, seed), spec.input_shape())

    return train_input


def _eval_inputs(fmt: str, spec: ModelSpec, windows: int | str):
    """(stored data, n_samples) -> evaluation rows ``[k, *spec.input_shape()]`` (as the audio path)."""
    align = hop_alignment(spec)

    def make(data: tf.Tensor, n_samples: tf.Tensor) -> tf.Tensor:
        if fmt == "raw":
            return eval_windows(data, spec, windows)
        if fmt == "fbank":
            if spec.windowing == "superpool":
                starts = audio.even_window_starts(n_samples, spec.window, spec.n_windows, align)
                return _frame_slices(data, starts, spec)[None]
            if windows == "all":
                starts = audio.all_window_starts(n_samples, spec.window, align)
            else:
                starts = audio.even_window_starts(n_samples, spec.window, int(windows), align)
            return _frame_slices(data, starts, spec)
        stored = data if fmt == "windowed-fbank" else features_for(spec)(data)
        if spec.windowing == "superpool":
            return stored[None]
        if windows == "all":
            return stored
        return tf.gather(stored, _even_pick(tf.shape(stored)[0], int(windows)))

    def eval_inputs(data: tf.Tensor, n_samples: tf.Tensor) -> tf.Tensor:
        return tf.ensure_shape(make(data, n_samples), [None, *spec.input_shape()])

    return eval_inputs


def _rank_files(files: list[str], rank: int, size: int) -> tuple[list[str], bool]:
    """(files this rank reads, whether it must also keep only every size-th record)."""
    if len(files) >= size:
        return files[rank::size], False
    return files, size > 1


def train_examples(
    tfrecord_dir: str | Path,
    clips: Sequence[Clip],
    spec: ModelSpec,
    *,
    batch_size: int,
    rank: int = 0,
    size: int = 1,
    seed: int = 0,
    start_step: int = 0,
    threads: int | None = None,
) -> tf.data.Dataset:
    """Endless unbatched training examples ``(x spec.input_shape(), y [n_tags])`` from an extraction
    (see the module docstring); :func:`hvd_magtag.data.pipeline.train_dataset` batches them."""
    index = load_index(tfrecord_dir)
    check_compatible(index, spec)
    fmt = index["format"]
    files, record_shard = _rank_files(_split_files(index, clips), rank, size)
    member = {c.clip_id for c in clips}
    n_member = sum(cid in member for f in files for cid in index["file_clips"][Path(f).name])
    per_epoch = len(range(rank, n_member, size)) if record_shard else n_member  # this rank's records/epoch
    if per_epoch == 0:
        raise ValueError(
            f"{index['dir']}: rank {rank} of {size} gets no training records; re-extract with --shards >= {size}"
        )
    table = _clip_id_table(clips)
    labels = tf.constant(np.stack([c.labels for c in clips]).astype(np.float32))
    parallel = threads or tf.data.AUTOTUNE
    seed64 = tf.constant(seed, tf.int64)

    def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
        order = tf.random.experimental.stateless_shuffle(tf.constant(files), seed=tf.stack([seed64, epoch]))
        records = tf.data.Dataset.from_tensor_slices(order).interleave(
            tf.data.TFRecordDataset,
            cycle_length=min(INTERLEAVE_FILES, len(files)),
            block_length=1,
            num_parallel_calls=min(INTERLEAVE_FILES, len(files)),
            deterministic=True,
        )
        records = records.map(_pair_with_clip_index(table)).filter(lambda i, _: i >= 0)
        if record_shard:
            records = records.shard(size, rank)

        # a stateless shuffle inside consecutive blocks of SHUFFLE_RECORDS records, keyed by (seed, epoch,
        # block): exact on resume, and independent of TensorFlow's global seed (Dataset.shuffle with a tensor
        # seed fails to trace once keras.utils.set_random_seed(0) has set the global seed to 0)
        def permute(block: tf.Tensor, item: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
            key = tf.stack([seed64 * 1_000_003 + epoch, block])
            perm = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(item[0])[0]), seed=key)
            return tf.gather(item[0], perm), tf.gather(item[1], perm)

        return records.batch(SHUFFLE_RECORDS).enumerate().map(permute).unbatch()

    # resume: whole epochs are skipped without reading; at most one epoch of records is read and dropped
    start_epoch, skip = divmod(int(start_step) * batch_size, per_epoch)
    stream = (
        tf.data.Dataset.range(start_epoch, MAX_EPOCHS)
        .flat_map(one_epoch)
        .enumerate(start=start_epoch * per_epoch)
        .skip(skip)
    )
    to_input = _train_input(fmt, spec)

    def load(position: tf.Tensor, item: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        clip_index, serialized = item
        data, n_samples = parse_record(serialized)
        x = to_input(data, n_samples, tf.stack([seed64, position]))
        return x, tf.gather(labels, clip_index)

    return stream.map(load, num_parallel_calls=parallel)


def eval_examples(
    tfrecord_dir: str | Path,
    clips: Sequence[Clip],
    spec: ModelSpec,
    *,
    windows: int | str,
    rank: int = 0,
    size: int = 1,
    threads: int | None = None,
) -> tf.data.Dataset:
    """Finite unbatched evaluation rows ``(x, y [n_tags], clip_index int32)`` of this rank's share of the
    extraction (disjoint shard files, or ``clip_index % size == rank`` when files < ranks)."""
    index = load_index(tfrecord_dir)
    check_compatible(index, spec)
    files, record_shard = _rank_files(_split_files(index, clips), rank, size)
    table = _clip_id_table(clips)
    labels = tf.constant(np.stack([c.labels for c in clips]).astype(np.float32))
    rows_of = _eval_inputs(index["format"], spec, parse_windows(windows, "windows"))

    def keep(clip_index: tf.Tensor, _: tf.Tensor) -> tf.Tensor:
        mine = tf.equal(clip_index % size, rank) if record_shard else tf.constant(True)
        return tf.logical_and(clip_index >= 0, mine)

    def load(clip_index: tf.Tensor, serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        x = rows_of(*parse_record(serialized))
        k = tf.shape(x)[0]
        return (
            x,
            tf.tile(tf.gather(labels, clip_index)[None], [k, 1]),
            tf.fill([k], tf.cast(clip_index, tf.int32)),
        )

    ds = tf.data.TFRecordDataset(files).map(_pair_with_clip_index(table)).filter(keep)
    return ds.map(load, num_parallel_calls=threads or tf.data.AUTOTUNE).unbatch()
