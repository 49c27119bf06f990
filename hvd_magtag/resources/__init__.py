"""The files the package itself needs, shipped inside it and read with :mod:`importlib.resources`.

=============================== ==========================================================================
``datasets/<name>/``            per dataset: tag lists, known-broken clips, checksums (``SHA256SUMS``); the
                                human documentation (how to obtain the audio) is ``datasets/<name>/README.md``
                                in the source repository
``configs/<name>.yaml``         experiment files; ``demo.yaml`` is ``make demo``'s
``notebooks/<name>.ipynb``      papermill notebooks (experiment driver, report, dataset exploration);
                                ``python -m hvd_magtag.notebooks copy DIR`` copies them out to edit
``notebooks/grids/<name>.yaml`` experiment grids for ``python -m hvd_magtag.experiments run``
``templates/<name>.j2``         Jinja2 templates of the pages the package writes (the featuremaps page)
=============================== ==========================================================================

They are installed with the package (wheel or editable), so nothing here depends on a source checkout or the
current folder. Paths are handed to other processes (``--config``, papermill), so the package must be
installed as files (pip always does), not imported from a zip archive.

    >>> from hvd_magtag import resources
    >>> resources.config("demo")                   # doctest: +SKIP
    PosixPath('.../site-packages/hvd_magtag/resources/configs/demo.yaml')
"""

from __future__ import annotations

from importlib import resources as _importlib_resources
from pathlib import Path

__all__ = [
    "ResourceError",
    "config",
    "configs",
    "dataset_file",
    "grid",
    "grids",
    "notebook",
    "notebooks",
    "notebooks_dir",
    "path",
]


class ResourceError(FileNotFoundError):
    """A packaged file is missing (a broken install) or a name is not one of the packaged ones."""


def path(*parts: str) -> Path:
    """The file-system path of the packaged file (or folder) ``parts`` under ``hvd_magtag/resources``.

    Raises :class:`ResourceError` when it is absent, e.g. a wheel built without its package data.
    """
    root = _importlib_resources.files(__name__)
    if not isinstance(root, Path):  # zip import: no real path to hand to a subprocess
        raise ResourceError(
            f"hvd_magtag is imported from {root}, not from files; install it with pip (unpacked) to use its "
            "packaged data"
        )
    target = root.joinpath(*parts)
    if not target.exists():
        raise ResourceError(
            f"{target}: packaged file missing; the installation is incomplete (reinstall hvd_magtag: "
            "pip install --force-reinstall --no-deps <wheel or source folder>)"
        )
    return target


def dataset_file(dataset: str, name: str) -> Path:
    """A shipped list of one dataset, e.g. ``dataset_file("mtat", "top50_tags.txt")``."""
    return path("datasets", dataset, name)


def _names(folder: Path, suffix: str) -> list[str]:
    return sorted(p.stem for p in folder.glob(f"*{suffix}") if p.is_file())


def _named(kind: str, folder: Path, name_or_path: str | Path, suffix: str) -> Path:
    """``name_or_path`` itself when it is an existing file, else the packaged ``folder/<name><suffix>``."""
    candidate = Path(name_or_path).expanduser()
    if candidate.is_file():
        return candidate
    stem = str(name_or_path)
    if stem.endswith(suffix):
        stem = stem[: -len(suffix)]
    packaged = folder / f"{stem}{suffix}"
    if "/" not in stem and packaged.is_file():
        return packaged
    raise ResourceError(
        f"{name_or_path}: no such {kind} file, nor a packaged {kind} (packaged: "
        f"{', '.join(_names(folder, suffix)) or 'none'})"
    )


def configs() -> list[str]:
    """Names of the packaged experiment files (``demo``, ...)."""
    return _names(path("configs"), ".yaml")


def config(name_or_path: str | Path) -> Path:
    """An experiment file: an existing path as given, else a packaged config by name (``demo``, ``demo.yaml``)."""
    return _named("config", path("configs"), name_or_path, ".yaml")


def notebooks_dir() -> Path:
    """The packaged notebooks folder (``*.ipynb`` and ``grids/``); copy it out with ``python -m hvd_magtag.notebooks copy``."""
    return path("notebooks")


def notebooks() -> list[str]:
    """Names of the packaged notebooks (``experiment``, ``explore``, ``report``)."""
    return _names(notebooks_dir(), ".ipynb")


def notebook(name_or_path: str | Path) -> Path:
    """A notebook: an existing path as given, else a packaged notebook by name (``experiment``, ``report.ipynb``)."""
    return _named("notebook", notebooks_dir(), name_or_path, ".ipynb")


def grids() -> list[str]:
    """Names of the packaged experiment grids (``kernel_size``, ``dilation``, ...)."""
    return _names(notebooks_dir() / "grids", ".yaml")


def grid(name_or_path: str | Path) -> Path:
    """A grid file: an existing path as given, else a packaged grid by name (``kernel_size``)."""
    return _named("grid", notebooks_dir() / "grids", name_or_path, ".yaml")
