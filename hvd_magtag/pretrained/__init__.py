"""Released pretrained models as run directories: musicnn's four checkpoints, imported into Keras 3 models.

    python -m hvd_magtag.pretrained list
    python -m hvd_magtag.pretrained import musicnn:MTT_musicnn [--out DIR] [--force]
    python -m hvd_magtag.tag song.mp3 --model MTT_musicnn          # imported on first use into the cache
    hvd_magtag.top_tags("song.mp3", model="MTT_musicnn")

A pretrained name (``MTT_musicnn`` or ``musicnn:MTT_musicnn``) is accepted wherever a run directory or export
folder is (``tag``, ``evaluate``, ``analysis``, ``export``, the Python API): :func:`resolve_model` is the one
resolver they call. An existing path always wins over a name; a name is imported once into
``locations.cache_dir("pretrained")/<name>`` (``$HVD_MAGTAG_CACHE`` or ``$XDG_CACHE_HOME/hvd_magtag``) and reused.

The weights come from the ``musicnn`` wheel (0.1.0, ISC licence, Pons & Serra 2019), which must be installed:
``pip install --no-deps musicnn==0.1.0`` (``--no-deps``: its 2019 metadata pins numpy < 1.17 and TensorFlow 1;
none of its code is imported, only its checkpoint files are read with TensorFlow 2.16's checkpoint reader).
:mod:`hvd_magtag.pretrained.musicnn` has the variable-by-variable mapping.

This module imports no TensorFlow (the table and the resolver are cheap); importing a model does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hvd_magtag import locations
from hvd_magtag.errors import ConfigError


class PretrainedError(ConfigError):
    """A pretrained model cannot be imported; the message names it and says what to do (exit code 2)."""


#: What to install for the musicnn checkpoints (the one home of this requirement; the Makefile reads it).
MUSICNN_REQUIREMENT = "musicnn==0.1.0"
MUSICNN_INSTALL = f"pip install --no-deps {MUSICNN_REQUIREMENT}"


@dataclass(frozen=True)
class Pretrained:
    """One released model: ``source:name`` -> a registry architecture and the data it was trained on."""

    source: str  # distribution that ships the weights
    name: str  # its folder in that distribution
    architecture: str  # registry model name
    trained_on: str
    licence: str
    labels: str  # musicnn.configuration list the outputs follow

    @property
    def key(self) -> str:
        return f"{self.source}:{self.name}"


_MTT = "MagnaTagATune (25,863 clips; the 50 most frequent tags)"
_MSD = "Million Song Dataset (the 50 most frequent Last.fm tags)"
#: The released models, by name.
PRETRAINED: dict[str, Pretrained] = {
    p.name: p
    for p in (
        Pretrained("musicnn", "MTT_musicnn", "musicnn", _MTT, "ISC", "MTT_LABELS"),
        Pretrained("musicnn", "MTT_vgg", "vgg_musicnn", _MTT, "ISC", "MTT_LABELS"),
        Pretrained("musicnn", "MSD_musicnn", "musicnn", _MSD, "ISC", "MSD_LABELS"),
        Pretrained("musicnn", "MSD_vgg", "vgg_musicnn", _MSD, "ISC", "MSD_LABELS"),
    )
}


def lookup(name: str) -> Pretrained | None:
    """The released model called ``name`` (``MTT_musicnn`` or ``musicnn:MTT_musicnn``), or None."""
    source, _, short = str(name).rpartition(":")
    entry = PRETRAINED.get(short)
    return entry if entry is not None and source in ("", entry.source) else None


def cache_root() -> Path:
    """Folder of imported models: ``locations.cache_dir("pretrained")``."""

    return locations.cache_dir("pretrained")


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """The run directory or export folder that ``name_or_path`` means, as an absolute path.

    An existing path is returned as it is (resolved). A pretrained name (:data:`PRETRAINED`) that is not an
    existing path is imported on first use into :func:`cache_root` and that run directory returned. Anything
    else is returned resolved, for the caller to report as missing.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path.resolve()
    entry = lookup(str(name_or_path))
    if entry is None:
        return path.resolve()
    target = cache_root() / entry.name
    if not (target / "run.json").is_file():
        import_model(entry.key, target)
    return target


def import_model(
    name: str, out: str | os.PathLike | None = None, *, force: bool = False, export: bool = True
):
    """Import released model ``name`` into run directory ``out`` (default: the cache's) and return its path.

    Writes ``config.json``, ``run.json`` (tags, spec, provenance), ``best/model.weights.h5`` and, with
    ``export``, ``export/`` (a tagging SavedModel). An existing complete import is kept unless ``force``.
    """
    entry = lookup(name)
    if entry is None:
        known = ", ".join(p.key for p in PRETRAINED.values())
        raise PretrainedError(f"unknown pretrained model {name!r}; choose one of: {known}")
    from hvd_magtag.pretrained import musicnn

    target = Path(out).expanduser().resolve() if out else cache_root() / entry.name
    return musicnn.import_run(entry, target, force=force, export=export)


__all__ = [
    "MUSICNN_INSTALL",
    "MUSICNN_REQUIREMENT",
    "PRETRAINED",
    "Pretrained",
    "PretrainedError",
    "cache_root",
    "import_model",
    "lookup",
    "resolve_model",
]
