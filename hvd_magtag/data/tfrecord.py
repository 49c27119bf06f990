"""Pre-extracted TFRecords: decode once, train many times.

    python -m hvd_magtag.data.tfrecord --dataset synthetic --model samplecnn --format raw --out DIR [--shards 8]

writes, for every split, ``DIR/<split>-00000-of-00008.tfrecord ...`` and ``DIR/index.json`` (format, model,
spec, tags, counts per split, files). Four formats (the study's comparison):

=============== ======================================================================= ====================
format          one record per clip holds (float32)                                     feeds
=============== ======================================================================= ====================
raw             the whole clip, mono, at ``spec.sample_rate``: ``[samples]``            raw and fbank models
fbank           python_speech_features logfbank of the whole clip: ``[frames, n_mels]`` fbank models
windowed-raw    the clip's windows: ``[k, window]``                                     raw models
windowed-fbank  logfbank of each window: ``[k, frames, n_mels]``                        fbank models
=============== ======================================================================= ====================

Windowed formats hold all consecutive windows (split models) or the ``n_windows`` evenly spaced ones
(superpool models), cut exactly as the audio pipeline cuts them. Audio is decoded by the same graph ops as
:mod:`hvd_magtag.data.pipeline`; fbank values come from python_speech_features, the reference.

Reading back (``train_dataset(..., tfrecord_dir=DIR)`` / ``eval_dataset``) feeds the same tail and models:

- raw: the identical waveform goes through the same windows and features: identical model inputs.
- fbank: windows are frame slices of the clip's filterbank at the same (hop-aligned) starts as the audio
  path. Interior frames equal the audio path's to :data:`~hvd_magtag.features.REFERENCE_TOLERANCE`; the
  first frame of a window differs (the audio path pre-emphasises from the window's first sample, the
  full-clip filterbank from the previous sample) and so does the last when ``window - win_length`` is not a
  multiple of the hop (the audio path zero-pads that frame).
- windowed-*: ``windows="all"`` (split) and superpool inputs equal the audio path's (fbank within the
  tolerance); training picks a random stored window (the audio path crops anywhere); ``windows=N`` picks N
  evenly spaced stored windows (the audio path spaces N windows over the clip itself).

Records are matched to the given clips by ``clip_id``, so labels are the catalog's metadata rows; records of
clips not in the list (e.g. left out by a later validation) are skipped. Training streams shuffle shard
files per epoch by (seed, epoch) and records within consecutive blocks of :data:`SHUFFLE_RECORDS` (a
stateless shuffle keyed by seed, epoch and block); ranks
read disjoint shard files (or every ``size``-th record when there are fewer files than ranks) and draw the
same number of batches from an endless stream. ``start_step`` skips whole epochs without reading (the index
lists each file's clips) and then at most one epoch of records, before their audio is parsed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from hvd_magtag import audio
from hvd_magtag.data.catalog import Clip
from hvd_magtag.features import LOG_FLOOR, features_for, hop_alignment, reference_logfbank
from hvd_magtag.models.registry import ModelSpec

log = logging.getLogger(__name__)

FORMATS = ("raw", "fbank", "windowed-raw", "windowed-fbank")
INDEX_FILE = "index.json"
INDEX_VERSION = 1
#: Records held by the training shuffle buffer (a raw 30 s clip at 16 kHz is ~1.9 MB).
SHUFFLE_RECORDS = 64
#: Shard files read concurrently by one training stream.
INTERLEAVE_FILES = 4
_MAX_EPOCHS = 2**40


# -- writing -------------------------------------------------------------------------------------------------


def _check_format(fmt: str, spec: ModelSpec) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt.endswith("fbank") and spec.input != "fbank":
        raise ValueError(f"--format {fmt}: the model takes raw input; use raw or windowed-raw")
    if fmt == "windowed-raw" and spec.input != "raw":
        raise ValueError(
            "--format windowed-raw: the model takes fbank input; use raw, fbank or windowed-fbank"
        )


def _clip_arrays(clips: Sequence[Clip], spec: ModelSpec, fmt: str, manifest: Any, threads: int | None):
    """Yield (waveform-derived array, n_samples) per clip, decoded in the graph in clip order."""
    from hvd_magtag.data.pipeline import ClipTable

    table = ClipTable(clips, manifest)
    align = hop_alignment(spec)

    def load(index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = table.waveform(index, spec.sample_rate)
        n = tf.shape(x)[0]
        if fmt.startswith("windowed"):
            if spec.windowing == "superpool":
                x = audio.even_windows(x, spec.window, spec.n_windows, align)
            else:
                x = audio.all_windows(x, spec.window, align)
        return x, n

    parallel = threads or tf.data.AUTOTUNE
    ds = tf.data.Dataset.range(len(clips)).map(load, num_parallel_calls=parallel, deterministic=True)
    for x, n in ds.prefetch(4).as_numpy_iterator():
        if fmt == "fbank":
            x = reference_logfbank(x, spec.fbank, spec.sample_rate)
        elif fmt == "windowed-fbank":
            x = np.stack([reference_logfbank(w, spec.fbank, spec.sample_rate) for w in x])
        yield np.ascontiguousarray(x, np.float32), int(n)


def _example(clip: Clip, index: int, data: np.ndarray, n_samples: int) -> bytes:
    feature = {
        "clip_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[clip.clip_id.encode()])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
        "labels": tf.train.Feature(float_list=tf.train.FloatList(value=clip.labels.tolist())),
        "n_samples": tf.train.Feature(int64_list=tf.train.Int64List(value=[n_samples])),
        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(data.shape))),
        "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data.astype("<f4").tobytes()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def extract(
    splits: Mapping[str, Sequence[Clip]],
    spec: ModelSpec,
    fmt: str,
    out_dir: str | Path,
    *,
    shards: int = 8,
    manifest: Any = None,
    tags: Sequence[str] = (),
    dataset: str = "",
    model: str = "",
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """Write ``splits`` ({split: clips}) in format ``fmt`` for ``spec`` to ``out_dir``; return the index.

    Each split is written to ``min(shards, n_clips)`` files, clip i to file ``i % shards``; a tqdm bar on
    stderr counts clips. ``manifest`` gives file rates as for the pipeline.
    """
    from tqdm import tqdm

    _check_format(fmt, spec)
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, Any] = {
        "version": INDEX_VERSION,
        "format": fmt,
        "dataset": dataset,
        "model": model,
        "spec": spec.to_dict(),
        "tags": list(tags),
        "record": "clip_id, index, labels, n_samples (at spec.sample_rate), shape, data (float32 LE bytes)",
        "counts": {},
        "files": {},
        "file_clips": {},  # file name -> clip ids in record order (epoch lengths without reading)
    }
    bar = tqdm(total=sum(len(c) for c in splits.values()), unit="clip", file=sys.stderr, disable=not progress)
    for split, clips in splits.items():
        if not clips:
            continue
        n_files = max(1, min(shards, len(clips)))
        names = [f"{split}-{j:05d}-of-{n_files:05d}.tfrecord" for j in range(n_files)]
        writers = [tf.io.TFRecordWriter(str(out / name)) for name in names]
        file_clips: dict[str, list[str]] = {name: [] for name in names}
        try:
            bar.set_description(f"{fmt} {split}")
            for i, (clip, (data, n_samples)) in enumerate(
                zip(clips, _clip_arrays(clips, spec, fmt, manifest, threads))
            ):
                writers[i % n_files].write(_example(clip, i, data, n_samples))
                file_clips[names[i % n_files]].append(clip.clip_id)
                bar.update(1)
        finally:
            for w in writers:
                w.close()
        index["counts"][split] = len(clips)
        index["files"][split] = names
        index["file_clips"].update(file_clips)
    bar.close()
    (out / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return index


# -- reading -------------------------------------------------------------------------------------------------


def load_index(tfrecord_dir: str | Path) -> dict:
    """The extraction's ``index.json`` (one-line error when it is missing or from another version)."""
    path = Path(tfrecord_dir).expanduser().resolve() / INDEX_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: extract first with python -m hvd_magtag.data.tfrecord --out {path.parent}"
        )
    index = json.loads(path.read_text())
    if index.get("version") != INDEX_VERSION:
        raise ValueError(f"{path}: index version {index.get('version')} != {INDEX_VERSION}; re-extract")
    index["dir"] = str(path.parent)
    return index


def check_compatible(index: dict, spec: ModelSpec) -> None:
    """Raise (naming the folder and the mismatch) when the extraction cannot feed a model with ``spec``."""
    saved = ModelSpec.from_dict(index["spec"])
    fmt, where = index["format"], index["dir"]
    problems = []
    if saved.sample_rate != spec.sample_rate:
        problems.append(f"sample_rate {saved.sample_rate} != {spec.sample_rate}")
    if fmt.endswith("fbank") and (spec.input != "fbank" or saved.fbank != spec.fbank):
        problems.append(f"filterbank {saved.fbank} != the model's {spec.fbank}")
    if fmt == "windowed-raw" and spec.input != "raw":
        problems.append("windowed-raw records cannot feed an fbank model")
    if fmt.startswith("windowed"):
        for name in ("window", "windowing") + (("n_windows",) if spec.windowing == "superpool" else ()):
            if getattr(saved, name) != getattr(spec, name):
                problems.append(f"{name} {getattr(saved, name)} != {getattr(spec, name)}")
    if problems:
        raise ValueError(
            f"{where}: {fmt} records were extracted for another input ({'; '.join(problems)}); "
            "re-extract for this model or drop data.tfrecord_dir"
        )


def _files(index: dict, clips: Sequence[Clip]) -> list[str]:
    splits = sorted({c.split for c in clips})
    missing = [s for s in splits if s not in index["files"]]
    if missing:
        raise ValueError(
            f"{index['dir']}: no records for split(s) {', '.join(missing)}; re-extract including them"
        )
    return [str(Path(index["dir"]) / name) for s in splits for name in index["files"][s]]


def _lookup(clips: Sequence[Clip]) -> tf.lookup.StaticHashTable:
    init = tf.lookup.KeyValueTensorInitializer(
        tf.constant([c.clip_id for c in clips]), tf.range(len(clips), dtype=tf.int64)
    )
    return tf.lookup.StaticHashTable(init, default_value=-1)


def _clip_index(table: tf.lookup.StaticHashTable):
    def parse(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        clip_id = tf.io.parse_single_example(serialized, {"clip_id": tf.io.FixedLenFeature([], tf.string)})
        return table.lookup(clip_id["clip_id"]), serialized

    return parse


_FEATURES = {
    "n_samples": tf.io.FixedLenFeature([], tf.int64),
    "shape": tf.io.VarLenFeature(tf.int64),
    "data": tf.io.FixedLenFeature([], tf.string),
}


def parse_record(serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(data float32 in its stored shape, n_samples int64) of one serialized record."""
    ex = tf.io.parse_single_example(serialized, _FEATURES)
    shape = tf.sparse.to_dense(ex["shape"])
    return tf.reshape(tf.io.decode_raw(ex["data"], tf.float32), shape), ex["n_samples"]


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
            from hvd_magtag.data.pipeline import train_example

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
            from hvd_magtag.data.pipeline import eval_windows

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
    files, record_shard = _rank_files(_files(index, clips), rank, size)
    member = {c.clip_id for c in clips}
    n_member = sum(cid in member for f in files for cid in index["file_clips"][Path(f).name])
    per_epoch = len(range(rank, n_member, size)) if record_shard else n_member  # this rank's records/epoch
    if per_epoch == 0:
        raise ValueError(
            f"{index['dir']}: rank {rank} of {size} gets no training records; re-extract with --shards >= {size}"
        )
    table = _lookup(clips)
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
        records = records.map(_clip_index(table)).filter(lambda i, _: i >= 0)
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
        tf.data.Dataset.range(start_epoch, _MAX_EPOCHS)
        .flat_map(one_epoch)
        .enumerate(start=start_epoch * per_epoch)
        .skip(skip)
    )
    to_input = _train_input(fmt, spec)

    def load(position: tf.Tensor, item: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        index_, serialized = item
        data, n_samples = parse_record(serialized)
        x = to_input(data, n_samples, tf.stack([seed64, position]))
        return x, tf.gather(labels, index_)

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
    files, record_shard = _rank_files(_files(index, clips), rank, size)
    table = _lookup(clips)
    labels = tf.constant(np.stack([c.labels for c in clips]).astype(np.float32))
    rows_of = _eval_inputs(index["format"], spec, windows)

    def keep(index_: tf.Tensor, _: tf.Tensor) -> tf.Tensor:
        mine = tf.equal(index_ % size, rank) if record_shard else tf.constant(True)
        return tf.logical_and(index_ >= 0, mine)

    def load(index_: tf.Tensor, serialized: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        x = rows_of(*parse_record(serialized))
        k = tf.shape(x)[0]
        return x, tf.tile(tf.gather(labels, index_)[None], [k, 1]), tf.fill([k], tf.cast(index_, tf.int32))

    ds = tf.data.TFRecordDataset(files).map(_clip_index(table)).filter(keep)
    return ds.map(load, num_parallel_calls=threads or tf.data.AUTOTUNE).unbatch()


# -- command line --------------------------------------------------------------------------------------------


def _parse_override(text: str) -> tuple[str, Any]:
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--override {text!r}: expected key=value, e.g. n_windows=4")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value)


def main(argv: list[str] | None = None) -> int:
    from hvd_magtag.config import DataConfig
    from hvd_magtag.data import SPLITS, load_catalog
    from hvd_magtag.models.registry import get_spec

    parser = argparse.ArgumentParser(
        prog="python -m hvd_magtag.data.tfrecord", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", default="synthetic", help="catalog to extract (synthetic | mtat | ...)")
    parser.add_argument("--data-root", default="", help="dataset folder (default: the dataset's own default)")
    parser.add_argument("--vocabulary", default="top50", help="data.vocabulary (default top50)")
    parser.add_argument(
        "--model", default="samplecnn", help="registered model whose input spec to extract for"
    )
    parser.add_argument("--override", action="append", default=[], type=_parse_override, metavar="KEY=VALUE",
                        help="model override changing its spec (repeatable), e.g. n_windows=4")  # fmt: skip
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="record format (default: raw for raw models, fbank for fbank models)")  # fmt: skip
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--shards", type=int, default=8, help="files per split (default 8)")
    parser.add_argument("--splits", default=",".join(SPLITS), help="comma-separated splits (default all)")
    parser.add_argument("--threads", type=int, default=None, help="decode parallelism (default AUTOTUNE)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    spec = get_spec(args.model, **dict(args.override))
    fmt = args.format or spec.input
    catalog = load_catalog(DataConfig(dataset=args.dataset, root=args.data_root, vocabulary=args.vocabulary))
    manifest = None
    try:
        from hvd_magtag.data import manifest as manifest_module
    except ImportError:
        log.warning("hvd_magtag.data.manifest unavailable: probing file rates without validation")
    else:
        catalog, manifest = manifest_module.validate(catalog)
    splits = {s: catalog.split(s) for s in args.splits.split(",") if s}
    index = extract(
        splits, spec, fmt, args.out, shards=args.shards, manifest=manifest, tags=catalog.tags,
        dataset=args.dataset, model=args.model, threads=args.threads,
    )  # fmt: skip
    log.info("wrote %s records to %s: %s", fmt, args.out, index["counts"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
