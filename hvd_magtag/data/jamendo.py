"""MTG-Jamendo autotagging: ``splits/split-N/autotagging_<subset>-{train,validation,test}.tsv`` -> Catalog.

Each split file is tab-separated with CRLF line ends and the header
``TRACK_ID ARTIST_ID ALBUM_ID PATH DURATION TAGS``; a track's tags are *extra tab-separated columns* after
DURATION (1 to 16 of them here), each ``category---name`` with category genre | instrument | mood/theme.
PATH is ``<NN>/<id>.mp3`` relative to the audio folder (full-quality release; the low-quality release names
the same file ``<NN>/<id>.low.mp3`` and is picked up when the full-quality file is absent).

``data.vocabulary``:

- ``top50``: the shipped top-50 list (``hvd_magtag/resources/datasets/jamendo/top50.txt``, MTG's ``data/tags/top50.txt``), read
  from the ``autotagging_top50tags`` split files;
- ``genre`` | ``instrument`` | ``mood/theme``: one category's benchmark, read from ``autotagging_genre``,
  ``autotagging_instrument`` or ``autotagging_moodtheme`` split files; the vocabulary is every tag of that
  category found in the three files, sorted;
- ``top50:<category>`` (e.g. ``top50:genre``): the top-50 split files restricted to one category's tags;
  tracks left without a tag are left out and reported.

``data.split`` is ``split-0`` ... ``split-4`` ("" = split-0); the file named ``validation`` becomes the
``valid`` split. Split files are looked up under ``root/splits/split-N``, ``root/data/splits/split-N`` (a clone
of the MTG repository) or ``root/split-N``; ``data.split`` may also be the absolute path of a split folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hvd_magtag.config import ConfigError
from hvd_magtag.data import drop_missing_audio, read_tag_list, resolve_root
from hvd_magtag.data.catalog import Catalog, Clip, MetadataError
from hvd_magtag.resources import dataset_file

if TYPE_CHECKING:
    from hvd_magtag.config import DataConfig

HEADER = ("TRACK_ID", "ARTIST_ID", "ALBUM_ID", "PATH", "DURATION", "TAGS")
CATEGORIES = ("genre", "instrument", "mood/theme")

#: file part name -> split name
SPLIT_FILES = {"train": "train", "validation": "valid", "test": "test"}

#: vocabulary -> subset part of the split file names (autotagging_<subset>-<part>.tsv)
SUBSET_FILES = {"top50": "top50tags", "genre": "genre", "instrument": "instrument", "mood/theme": "moodtheme"}

_TAG = re.compile(r"(genre|instrument|mood/theme)---\S.*")
_SPLIT = re.compile(r"split-(\d+)")


def load_top50_tags() -> list[str]:
    """MTG-Jamendo's top-50 tags (``category---name``), in the order of the shipped list (MTG's top50.txt)."""
    return read_tag_list(dataset_file("jamendo", "top50.txt"))


def read_split_file(path: str | Path) -> list[tuple[str, str, str, str, float, list[str]]]:
    """Rows (track_id, artist_id, album_id, path, duration s, tags) of one split tsv.

    Raises :class:`MetadataError` (file, line, what was expected) for a wrong header, a row with fewer than 6
    fields (no tag), a non-numeric DURATION, a tag that is not ``category---name`` or a repeated TRACK_ID.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise MetadataError(f"{path}: cannot read ({e.strerror})") from None
    lines = text.splitlines()
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        got = lines[0].split("\t") if lines else "an empty file"
        raise MetadataError(f"{path}:1: expected the header {' '.join(HEADER)} (tab-separated), got {got}")
    rows = []
    seen: set[str] = set()
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < len(HEADER):
            raise MetadataError(
                f"{path}:{lineno}: expected TRACK_ID, ARTIST_ID, ALBUM_ID, PATH, DURATION and at least one tag "
                f"(>= {len(HEADER)} tab-separated fields), got {len(fields)}; the file may be truncated"
            )
        track_id, artist_id, album_id, audio_path, duration = fields[:5]
        if track_id in seen:
            raise MetadataError(f"{path}:{lineno}: TRACK_ID {track_id} appears twice")
        seen.add(track_id)
        try:
            seconds = float(duration)
        except ValueError:
            raise MetadataError(
                f"{path}:{lineno}: DURATION must be a number of seconds, got {duration!r}"
            ) from None
        tags = fields[5:]
        bad = next((t for t in tags if not _TAG.fullmatch(t)), None)
        if bad is not None:
            raise MetadataError(
                f"{path}:{lineno}: tag {bad!r} is not category---name with category one of {', '.join(CATEGORIES)}"
            )
        rows.append((track_id, artist_id, album_id, audio_path, seconds, tags))
    if not rows:
        raise MetadataError(f"{path}: header only, no track rows")
    return rows


def _split_dir(root: Path, split: str, subset: str) -> Path:
    split = split or "split-0"
    if os.path.isabs(split):
        candidates = [Path(split)]
    elif _SPLIT.fullmatch(split):
        candidates = [root / "splits" / split, root / "data" / "splits" / split, root / split]
    else:
        raise ConfigError(
            f"data.split={split!r} is not a Jamendo split; use split-0 ... split-4 (or the path of a split folder)"
        )
    for folder in candidates:
        if (folder / f"autotagging_{subset}-train.tsv").is_file():
            return folder
    raise MetadataError(
        f"autotagging_{subset}-train.tsv not found in {', '.join(map(str, candidates))}; copy data/splits from "
        "the MTG-Jamendo repository there (see datasets/jamendo/README.md in the hvd_magtag source repository)"
    )


def _resolve_audio(root: Path, relative: str) -> Path:
    full = root / relative
    if full.is_file():
        return full
    low = full.with_suffix(".low.mp3")
    return low if low.is_file() else full


def load(
    root: str | Path, *, split: str = "split-0", vocabulary: str = "top50", check_audio: bool = True
) -> Catalog:
    """The MTG-Jamendo catalog (see the module docstring for files, vocabularies and splits).

    Args:
        root: the audio folder (``<NN>/<id>.mp3``), also searched for the split files.
        split: ``split-N`` or the absolute path of a folder holding the split files.
        vocabulary: ``top50`` | ``genre`` | ``instrument`` | ``mood/theme`` | ``top50:<category>``.
        check_audio: leave out (and report) tracks whose mp3 does not exist.
    """
    root = Path(root).resolve()
    base, _, category = vocabulary.partition(":")
    if base == "moodtheme":
        base = "mood/theme"
    if base not in SUBSET_FILES or (category and (base != "top50" or category not in CATEGORIES)):
        raise ConfigError(
            f"data.vocabulary={vocabulary!r} is not a Jamendo vocabulary; choose top50, genre, instrument, "
            "mood/theme or top50:<category> (e.g. top50:genre)"
        )
    subset = SUBSET_FILES[base]
    folder = _split_dir(root, split, subset)
    files = {name: folder / f"autotagging_{subset}-{part}.tsv" for part, name in SPLIT_FILES.items()}
    rows = {name: read_split_file(path) for name, path in files.items()}
    _no_track_in_two_splits(files, rows)

    if base == "top50":
        tags = load_top50_tags()
        known = set(tags)
        for name, split_rows in rows.items():
            for track_id, *_, track_tags in split_rows:
                extra = [t for t in track_tags if t not in known]
                if extra:
                    raise MetadataError(
                        f"{files[name]}: track {track_id} has tag {extra[0]!r}, not in "
                        f"{dataset_file('jamendo', 'top50.txt')}; is this a top-50 split file?"
                    )
        if category:
            tags = [t for t in tags if t.startswith(category + "---")]
    else:
        tags = sorted(
            {t for split_rows in rows.values() for *_, track_tags in split_rows for t in track_tags}
        )
        tags = [t for t in tags if t.startswith(base + "---")]
    index = {tag: j for j, tag in enumerate(tags)}

    clips: list[Clip] = []
    excluded: list[tuple[str, str]] = []
    info: dict[str, dict[str, str]] = {}
    for name, split_rows in rows.items():
        for track_id, artist_id, album_id, audio_path, seconds, track_tags in split_rows:
            labels = np.zeros(len(tags), np.float32)
            for t in track_tags:
                if t in index:
                    labels[index[t]] = 1.0
            if not labels.any():
                excluded.append((track_id, f"no tag of the vocabulary ({vocabulary})"))
                continue
            clips.append(Clip(track_id, str(_resolve_audio(root, audio_path)), labels, name))
            info[track_id] = {"artist_id": artist_id, "album_id": album_id, "duration": f"{seconds:g}"}
    if check_audio:
        clips, missing = drop_missing_audio(clips, metadata=folder, dataset="jamendo")
        excluded += missing
    return Catalog(name="jamendo", root=str(root), tags=tags, clips=clips, excluded=excluded, info=info)


def _no_track_in_two_splits(files: dict[str, Path], rows: dict[str, list]) -> None:
    owner: dict[str, str] = {}
    for name, split_rows in rows.items():
        for track_id, *_ in split_rows:
            if track_id in owner:
                raise MetadataError(
                    f"{files[name]}: track {track_id} is also in {files[owner[track_id]]}; splits must not overlap"
                )
            owner[track_id] = name


def from_config(data_cfg: DataConfig, *, check_audio: bool = True) -> Catalog:
    """``load`` with ``data_cfg`` (``data.root`` = the audio folder; ``data.split`` = split-N, "" = split-0)."""
    if data_cfg.split in ("clean", "directory"):
        raise ConfigError(
            f"data.split={data_cfg.split!r} is an MTAT split rule; for jamendo use split-0 ... split-4"
        )
    root = resolve_root(data_cfg.root, what="the MTG-Jamendo audio folder (<NN>/<id>.mp3)")
    return load(root, split=data_cfg.split, vocabulary=data_cfg.vocabulary, check_audio=check_audio)
