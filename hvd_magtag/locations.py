"""Where the toolkit reads and writes when no path is given: the one home of every default location.

=========================== ======================= ===============================================================
what                        environment variable    default
=========================== ======================= ===============================================================
run directories             ``HVD_MAGTAG_RUNS``     ``./runs`` (the current folder when the command starts)
datasets it builds itself   ``HVD_MAGTAG_DATA``     ``$XDG_DATA_HOME/hvd_magtag`` (``~/.local/share/hvd_magtag``);
(the synthetic dataset)                             the synthetic dataset is ``<that>/synthetic``
caches (manifests of        ``HVD_MAGTAG_CACHE``    ``$XDG_CACHE_HOME/hvd_magtag`` (``~/.cache/hvd_magtag``), one
read-only datasets,                                 sub-folder per kind: ``manifests/``, ``pretrained/``
imported models)
=========================== ======================= ===============================================================

Explicit paths always win (``--run-dir``, ``--runs``, ``--data``, ``data.root``, ``cache_dir=``). Real datasets
(MTAT, Jamendo, FMA, a folder of songs) have no default: ``data.root`` names them.

Every function reads the environment when it is called (nothing is computed at import) and returns an
absolute path without creating it; the caller creates what it writes. A variable set to an empty string
counts as unset. The README's "Where files go" table is this one.
"""

from __future__ import annotations

import os
from pathlib import Path

RUNS_ENV = "HVD_MAGTAG_RUNS"
DATA_ENV = "HVD_MAGTAG_DATA"
CACHE_ENV = "HVD_MAGTAG_CACHE"

#: Cache kinds in use (sub-folders of :func:`cache_dir`); a new kind is added here, with its owner.
CACHE_KINDS = {
    "manifests": "hvd_magtag.data.manifest: validation results of datasets whose folder is read-only",
    "pretrained": "hvd_magtag.pretrained: imported released models",
}


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "")
    return Path(value).expanduser().absolute() if value else None


def _xdg(name: str, fallback: str) -> Path:
    """``$name`` (an XDG base directory) if set and absolute (as the XDG spec requires), else ``~/fallback``."""
    value = os.environ.get(name, "")
    return Path(value) if value and os.path.isabs(value) else Path.home() / fallback


def runs_dir() -> Path:
    """Folder that receives run directories without ``--run-dir``: ``$HVD_MAGTAG_RUNS``, else ``./runs``."""
    return _env_path(RUNS_ENV) or Path.cwd() / "runs"


def data_dir() -> Path:
    """Folder of the datasets the toolkit builds itself: ``$HVD_MAGTAG_DATA``, else ``$XDG_DATA_HOME/hvd_magtag``."""
    return _env_path(DATA_ENV) or _xdg("XDG_DATA_HOME", ".local/share") / "hvd_magtag"


def dataset_dir(name: str) -> Path:
    """Default folder of a built dataset, e.g. ``dataset_dir("synthetic")`` (``data.root`` left empty)."""
    return data_dir() / name


def cache_dir(kind: str = "") -> Path:
    """Cache folder: ``$HVD_MAGTAG_CACHE``, else ``$XDG_CACHE_HOME/hvd_magtag``; ``kind`` (one of
    :data:`CACHE_KINDS`) selects its sub-folder. Everything under it can be deleted and is rebuilt on use."""
    if kind and kind not in CACHE_KINDS:
        raise ValueError(
            f"cache kind {kind!r} is not one of {', '.join(CACHE_KINDS)} (add it to CACHE_KINDS)"
        )
    base = _env_path(CACHE_ENV) or _xdg("XDG_CACHE_HOME", ".cache") / "hvd_magtag"
    return base / kind if kind else base
