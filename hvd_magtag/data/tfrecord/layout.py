"""What an extraction folder holds: ``index.json`` and one ``tf.train.Example`` per clip.

Both sides of :mod:`hvd_magtag.data.tfrecord` read the layout from here: the writer
(:mod:`~hvd_magtag.data.tfrecord.extract`) and the reader (:mod:`~hvd_magtag.data.tfrecord.read`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from hvd_magtag.data.catalog import Clip
from hvd_magtag.models.registry import ModelSpec

FORMATS = ("raw", "fbank", "windowed-raw", "windowed-fbank")
INDEX_FILE = "index.json"
INDEX_VERSION = 1
#: What each record holds (also written to the index).
RECORD_FIELDS = "clip_id, index, labels, n_samples (at spec.sample_rate), shape, data (float32 LE bytes)"


def check_format(fmt: str, spec: ModelSpec) -> None:
    """Raise (naming ``--format``) unless records of ``fmt`` can feed a model with ``spec``."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt.endswith("fbank") and spec.input != "fbank":
        raise ValueError(f"--format {fmt}: the model takes raw input; use raw or windowed-raw")
    if fmt == "windowed-raw" and spec.input != "raw":
        raise ValueError(
            "--format windowed-raw: the model takes fbank input; use raw, fbank or windowed-fbank"
        )


def encode_record(clip: Clip, index: int, data: np.ndarray, n_samples: int) -> bytes:
    """One serialized record (:data:`RECORD_FIELDS`): clip ``index`` of its split, its stored ``data`` and the
    clip's length ``n_samples`` at ``spec.sample_rate``."""
    feature = {
        "clip_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[clip.clip_id.encode()])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index])),
        "labels": tf.train.Feature(float_list=tf.train.FloatList(value=clip.labels.tolist())),
        "n_samples": tf.train.Feature(int64_list=tf.train.Int64List(value=[n_samples])),
        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=list(data.shape))),
        "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[data.astype("<f4").tobytes()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


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
