"""Atomic writes: a file or folder is either the old one or the complete new one, even after SIGKILL or a
power cut. The one home for this in hvd_magtag (run directories, checkpoints, weights, manifests, exports...).

    fsutil.atomic_write(path, "text")                 # str or bytes
    fsutil.atomic_write_json(path, {"step": 3})
    with fsutil.atomic_path(path) as tmp:             # for writers that need a path
        model.save_weights(str(tmp))                  # tmp keeps path's suffixes (.weights.h5, .npz)
    with fsutil.atomic_dir(folder) as tmp:            # a whole folder (checkpoint, SavedModel)
        np.savez(tmp / "model.npz", ...)

Each writes a hidden temporary (``.tmp-<name>-<random><suffixes>``) in the destination's own folder (so the
rename never crosses file systems), fsyncs it, ``os.replace``s it over the destination, fsyncs the folder
(the rename itself is durable), and removes the temporary if anything fails. Temporaries left by a killed
process match :data:`TEMP_PREFIX` + name; :func:`remove_stale` clears them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Temporaries are named TEMP_PREFIX + destination name + "-" + random part (+ the destination's suffixes).
TEMP_PREFIX = ".tmp-"


def _fsync_path(path: Path) -> None:
    """fsync a file or a folder (a folder's entry list: makes renames inside it durable)."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:  # some file systems refuse to open folders; the data itself was synced
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _temp_name(path: Path) -> str:
    return f"{TEMP_PREFIX}{path.name}-"


@contextlib.contextmanager
def atomic_path(path: str | Path, temp_stem: str | None = None) -> Iterator[Path]:
    """Yield a temporary file path beside ``path`` (same suffixes) to write by name; on a clean exit it is
    synced and renamed onto ``path``, on an exception removed. Creates the parent folder.

    ``temp_stem`` names the temporary instead of ``path``'s name (and drops the suffixes), for folders whose
    readers pick files by name (TensorBoard reads every file with "tfevents" in its name)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = _temp_name(path) if temp_stem is None else f"{TEMP_PREFIX}{temp_stem}-"
    suffix = "".join(path.suffixes) if temp_stem is None else ""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_path(path.parent)


def atomic_write(
    path: str | Path, data: str | bytes, encoding: str = "utf-8", temp_stem: str | None = None
) -> Path:
    """Write ``data`` (text or bytes) to ``path`` atomically; returns ``path`` (``temp_stem``: see
    :func:`atomic_path`)."""
    with atomic_path(path, temp_stem) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding=encoding)
        else:
            tmp.write_bytes(data)
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2, sort_keys: bool = True) -> Path:
    """``obj`` as JSON (plus a final newline) written atomically to ``path``."""
    return atomic_write(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on a clean exit every file in it is synced and the
    folder takes ``path``'s place (an existing ``path`` is swapped out, then removed); on an exception the
    temporary folder is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=_temp_name(path)))
    try:
        yield tmp
        for sub in sorted(tmp.rglob("*"), reverse=True):  # files first, then their folders
            _fsync_path(sub)
        _fsync_path(tmp)
        if path.exists():
            old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f"{TEMP_PREFIX}old-{path.name}-"))
            os.replace(path, old)  # onto the empty folder just made: atomic
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_path(path.parent)


def remove_stale(folder: str | Path, name_prefix: str = "", keep: tuple[Path, ...] = ()) -> list[Path]:
    """Remove temporaries a killed writer left in ``folder`` (those whose destination name starts with
    ``name_prefix``), except ``keep``; returns what was removed. Only call it when no other process writes
    there (e.g. rank 0 in a run directory)."""
    removed = []
    for stale in Path(folder).glob(f"{TEMP_PREFIX}{name_prefix}*"):
        if stale in keep:
            continue
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed
