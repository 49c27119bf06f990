"""Which files to tag: files and folders from the command line, expanded into a sorted list of paths."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from hvd_magtag.audio import FORMATS


def audio_files(inputs: Iterable[str | os.PathLike]) -> tuple[list[Path], bool]:
    """Expand files and folders (recursively, sorted; extensions of ``audio.FORMATS``) into a file list.

    Returns (files, any_folder). Paths given explicitly are kept even when missing or of another
    extension, so that they are reported as failures by name."""

    files: list[Path] = []
    any_folder = False
    for item in inputs:
        p = Path(item).expanduser().resolve()
        if p.is_dir():
            any_folder = True
            found = [f for f in p.rglob("*") if f.is_file() and f.suffix.lower().lstrip(".") in FORMATS]
            files.extend(sorted(found))
        else:
            files.append(p)
    return files, any_folder


def extensions() -> list[str]:
    """The audio file extensions that are tagged, sorted."""

    return sorted(FORMATS)
