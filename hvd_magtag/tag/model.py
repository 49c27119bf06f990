"""Which model tags: resolve a ``--model`` argument to a run directory or an export folder, and identify it.

TensorFlow-free, so that the command line answers "model not found" before TensorFlow is imported; loading
the model is :class:`hvd_magtag.tag.tagger.Tagger`'s job.

A model is identified (:func:`model_identity`) by its folder, its kind, the SHA-256 of its weight files, its
``ModelSpec`` and tag vocabulary: a results folder written with one model refuses results of another
(:mod:`hvd_magtag.tag.library`).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from hvd_magtag.errors import RunDirError
from hvd_magtag.export import SAVED_MODEL_FILE, is_export_dir
from hvd_magtag.pretrained import resolve_model as resolve_pretrained
from hvd_magtag.rundir import RunDir

#: Error text for a --model path that does not exist.
MODEL_NOT_FOUND = "model not found; pass a run directory or an export folder (--model)"
#: Inference precisions: ``bfloat16`` computes convolutions and dense layers in bfloat16 on float32 weights
#: (the Keras ``mixed_bfloat16`` policy; the output layer stays float32). Run directories only: an exported
#: SavedModel's graph is fixed at float32.
PRECISIONS = ("float32", "bfloat16")
#: Kinds of model folder.
RUN_DIR, SAVED_MODEL = "keras", "savedmodel"
#: Bytes read at a time while hashing weight files.
_HASH_BLOCK = 1 << 20


class TaggerError(RunDirError):
    """The model or an input cannot be used; the message names the path and what to do. On the command line
    it means the model (run directory or export folder) is not usable: exit code 4."""


def resolve_model(model: str | os.PathLike) -> Path:
    """The folder a ``--model`` argument names (absolute): a path, or a pretrained name such as
    ``MTT_musicnn`` (:func:`hvd_magtag.pretrained.resolve_model`: imported on first use into the cache);
    TaggerError naming it when it does not exist."""

    path = resolve_pretrained(model)
    if not path.exists():
        raise TaggerError(f"{path}: {MODEL_NOT_FOUND}")
    return path


def model_kind(path: Path) -> str:
    """:data:`SAVED_MODEL` (``saved_model.pb``) or :data:`RUN_DIR` (``run.json``); TaggerError otherwise."""
    if is_export_dir(path):
        return SAVED_MODEL
    if (path / "run.json").is_file():
        return RUN_DIR
    raise TaggerError(
        f"{path}: neither a run directory (no run.json) nor an exported model (no {SAVED_MODEL_FILE})"
    )


def check_precision(precision: str, kind: str, path: Path | None) -> None:
    """TaggerError unless ``precision`` is one of :data:`PRECISIONS` and possible for this kind of model."""
    if precision not in PRECISIONS:
        raise TaggerError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision != "float32" and kind == SAVED_MODEL:
        raise TaggerError(
            f"{path}: precision {precision} needs a run directory (an exported SavedModel computes in float32)"
        )


def weight_files(path: Path, kind: str, weights: str = "best") -> list[Path]:
    """The files holding the model's weights: the run's ``weights`` file, or an export's graph + variables."""
    if kind == RUN_DIR:
        return [RunDir(path).weights_path(weights)]
    return [path / SAVED_MODEL_FILE, *sorted((path / "variables").glob("*"))]


def sha256_files(files: list[Path]) -> str:
    """SHA-256 over the names (relative order) and contents of ``files``."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b"\0")
        with open(f, "rb") as handle:
            while block := handle.read(_HASH_BLOCK):
                digest.update(block)
    return digest.hexdigest()


def sha256_arrays(arrays) -> str:
    """SHA-256 over the shapes, dtypes and bytes of numpy ``arrays`` (an in-memory model's weights)."""
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(f"{a.shape}{a.dtype}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def model_identity(
    path: Path | None, kind: str, spec: dict[str, Any], tags: list[str], precision: str, weights_sha256: str
) -> dict[str, Any]:
    """What makes two taggings comparable: the same weights, input spec, vocabulary and precision."""
    return {
        "path": str(path) if path else None,
        "kind": kind,
        "weights_sha256": weights_sha256,
        "spec": json.loads(json.dumps(spec, sort_keys=True)),
        "tags": list(tags),
        "precision": precision,
    }
