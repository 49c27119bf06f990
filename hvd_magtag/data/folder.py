"""Any folder of audio (every suffix of ``hvd_magtag.audio.AUDIO_SUFFIXES``, searched recursively) -> Catalog,
optionally with tags.

Tags come from ``root/tags.csv`` when it exists: a comma-separated file with a header naming the columns
``path`` and ``tags`` and, optionally, ``split``::

    path,tags,split
    rock/song1.mp3,guitar;male vocal;rock,train
    "jazz/a, b.flac",piano;jazz,valid
    ambient/pad.wav,,test

- ``path``: the audio file, relative to ``root`` (or absolute);
- ``tags``: the clip's tags separated by ``;`` (may be empty: a clip with no tag);
- ``split``: train | valid | validation | test | "" (no split). Without the column every clip is unsplit.

With a tags file the file decides which clips exist: its rows whose audio is missing and audio files it
does not list are left out and reported. Without one, every audio file under ``root`` is an unlabelled clip
(for tagging a folder with a trained model). ``clip_id`` is the path relative to ``root``.

``data.vocabulary``: ``topN`` (the N most frequent tags of the tags file; ``top50`` too, or fewer if the
file has fewer tags) or a tag list file (e.g. a trained model's tags).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hvd_magtag.data import AUDIO_SUFFIXES, SPLITS, choose_vocabulary, read_tag_list, resolve_root
from hvd_magtag.data.catalog import Catalog, Clip, MetadataError

if TYPE_CHECKING:
    from hvd_magtag.config import DataConfig

TAGS_FILE = "tags.csv"
TAG_SEPARATOR = ";"

#: split cell -> split name
SPLIT_NAMES = {**{s: s for s in SPLITS}, "validation": "valid", "": ""}


def audio_files(root: str | Path) -> list[Path]:
    """Every audio file under ``root`` (suffix in AUDIO_SUFFIXES, any case), sorted; hidden folders skipped."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        found += [Path(folder) / n for n in names if Path(n).suffix.lower() in AUDIO_SUFFIXES]
    return sorted(found)


def read_tags_file(path: str | Path) -> list[tuple[str, list[str], str, int]]:
    """Rows (path, tags, split, line) of a tags file (format in the module docstring).

    Raises :class:`MetadataError` (file, line, what was expected) for a header without ``path``/``tags``, a row
    with another number of fields than the header, an unknown split or a path listed twice.
    """
    path = Path(path)
    rows: list[tuple[str, list[str], str, int]] = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in ("path", "tags") if c not in header]
        if missing:
            raise MetadataError(
                f"{path}:1: header lacks column(s) {', '.join(missing)}; expected path,tags[,split] "
                f"(tags separated by '{TAG_SEPARATOR}')"
            )
        at = {c: header.index(c) for c in header}
        seen: dict[str, int] = {}
        for row in reader:
            line = reader.line_num
            if not row or not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise MetadataError(
                    f"{path}:{line}: expected {len(header)} comma-separated fields ({','.join(header)}), "
                    f"got {len(row)}; quote paths that contain commas"
                )
            audio = row[at["path"]].strip()
            if audio in seen:
                raise MetadataError(f"{path}:{line}: {audio!r} is already listed on line {seen[audio]}")
            seen[audio] = line
            split_cell = row[at["split"]].strip() if "split" in at else ""
            if split_cell not in SPLIT_NAMES:
                raise MetadataError(
                    f"{path}:{line}: split {split_cell!r}; expected train, valid (or validation), test or empty"
                )
            tags = [t.strip() for t in row[at["tags"]].split(TAG_SEPARATOR) if t.strip()]
            rows.append((audio, tags, SPLIT_NAMES[split_cell], line))
    return rows


def load(
    root: str | Path,
    *,
    vocabulary: str = "top50",
    tags_file: str | Path | None = None,
    check_audio: bool = True,
) -> Catalog:
    """A catalog of the audio under ``root`` (see the module docstring for the tags file and vocabularies).

    Args:
        root: the folder searched recursively for audio files (``AUDIO_SUFFIXES``).
        vocabulary: ``topN`` or a tag list file.
        tags_file: the tags CSV; default ``root/tags.csv`` if it exists.
        check_audio: leave out (and report) listed files that do not exist.
    """
    root = Path(root).resolve()
    found = audio_files(root)
    tags_path = Path(tags_file) if tags_file else root / TAGS_FILE
    excluded: list[tuple[str, str]] = []
    if not tags_path.is_file():
        if tags_file:
            raise MetadataError(f"{tags_path}: tags file not found")
        tags = read_tag_list(vocabulary) if os.path.isfile(vocabulary) else []
        clips = [
            Clip(p.relative_to(root).as_posix(), str(p), np.zeros(len(tags), np.float32), "") for p in found
        ]
        if not clips:
            raise MetadataError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) and no {TAGS_FILE}")
        return Catalog(name="folder", root=str(root), tags=tags, clips=clips)

    rows = read_tags_file(tags_path)
    if not rows:
        raise MetadataError(f"{tags_path}: header only; expected one row per audio file")
    counts = Counter(t for _, row_tags, _, _ in rows for t in row_tags)
    tags = choose_vocabulary(_fit_top_n(vocabulary, len(counts)), counts, source=str(tags_path))
    index = {tag: j for j, tag in enumerate(tags)}
    clips = []
    listed: set[str] = set()
    for audio, row_tags, split, line in rows:
        full = (root / audio).resolve()
        listed.add(str(full))
        clip_id = full.relative_to(root).as_posix() if full.is_relative_to(root) else str(full)
        if full.suffix.lower() not in AUDIO_SUFFIXES:
            raise MetadataError(
                f"{tags_path}:{line}: {audio!r} is not an audio file ({', '.join(AUDIO_SUFFIXES)})"
            )
        if check_audio and not full.is_file():
            excluded.append((clip_id, f"missing audio file: {full}"))
            continue
        labels = np.zeros(len(tags), np.float32)
        for t in row_tags:
            if t in index:
                labels[index[t]] = 1.0
        clips.append(Clip(clip_id, str(full), labels, split))
    excluded += [
        (p.relative_to(root).as_posix(), f"not listed in {tags_path.name}")
        for p in found
        if str(p) not in listed
    ]
    return Catalog(name="folder", root=str(root), tags=tags, clips=clips, excluded=excluded)


def _fit_top_n(vocabulary: str, n_tags: int) -> str:
    """``topN`` asks for at most the tags there are (a folder's tags file may have fewer than 50)."""
    if vocabulary.startswith("top") and vocabulary[3:].isdigit() and int(vocabulary[3:]) > n_tags > 0:
        return f"top{n_tags}"
    return vocabulary


def from_config(data_cfg: DataConfig, *, check_audio: bool = True) -> Catalog:
    """``load`` with ``data_cfg``: data.root (the folder), data.vocabulary; the split comes from tags.csv."""
    root = resolve_root(
        data_cfg.root,
        what="a folder of audio files (mp3, wav, flac, ogg, opus, aiff, m4a...), optionally with tags.csv",
    )
    return load(root, vocabulary=data_cfg.vocabulary, check_audio=check_audio)
