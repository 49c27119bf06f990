"""FMA (Free Music Archive): ``fma_metadata/tracks.csv`` + ``genres.csv`` -> Catalog.

``tracks.csv`` is a pandas CSV with a two-level column header (read as the FMA authors do,
``pd.read_csv(path, index_col=0, header=[0, 1])``); the loader uses ``('set', 'split')`` (training |
validation | test -> train | valid | test), ``('set', 'subset')`` (small | medium | large, nested:
small ⊂ medium ⊂ large), ``('track', 'genre_top')``, ``('track', 'genres_all')`` (a list of genre ids written as
a Python literal), ``('track', 'title')`` and ``('artist', 'name')``. ``genres.csv``
(``genre_id,#tracks,parent,title,top_level``) turns genre ids into titles.

Layout expected under ``root`` (as unzipped)::

    root/fma_metadata/tracks.csv, genres.csv
    root/fma_small/000/000002.mp3 ...         audio of the chosen subset: fma_<subset>/<3 digits>/<6 digits>.mp3

``data.subset``: small (default) | medium | large | full (every track, untrimmed audio in ``fma_full``).
``data.vocabulary``: ``genre_top`` (single label: the top-level genre; tracks without one are left out),
``genres_all`` (multi-label over every genre id in the subset, most frequent first), ``topN`` (the N most
frequent of ``genres_all``; ``top50`` too) or a tag list file of genre titles. The split is always FMA's own
(``data.split`` "" or "fma"). The known empty mp3s (``hvd_magtag/resources/datasets/fma/broken_clips.tsv``) are left out and
reported.
"""

from __future__ import annotations

import ast
import csv
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from hvd_magtag.config import ConfigError
from hvd_magtag.data import choose_vocabulary, drop_missing_audio, read_shipped_table, resolve_root
from hvd_magtag.data.catalog import Catalog, Clip, MetadataError
from hvd_magtag.resources import dataset_file

if TYPE_CHECKING:
    from hvd_magtag.config import DataConfig

#: subset -> the subsets it contains (small ⊂ medium ⊂ large; full = every track)
SUBSETS: dict[str, tuple[str, ...]] = {
    "small": ("small",),
    "medium": ("small", "medium"),
    "large": ("small", "medium", "large"),
    "full": ("small", "medium", "large"),
}

#: ('set', 'split') value -> split name
SPLITS = {"training": "train", "validation": "valid", "test": "test"}

#: columns the loader reads from tracks.csv
COLUMNS = (
    ("set", "split"),
    ("set", "subset"),
    ("track", "genre_top"),
    ("track", "genres_all"),
    ("track", "title"),
    ("artist", "name"),
)

GENRE_COLUMNS = ("genre_id", "#tracks", "parent", "title", "top_level")


def audio_path(root: str | Path, subset: str, track_id: int) -> Path:
    """``root/fma_<subset>/<first 3 digits>/<6-digit id>.mp3`` (e.g. fma_small/000/000002.mp3)."""
    name = f"{track_id:06d}"
    return Path(root) / f"fma_{subset}" / name[:3] / f"{name}.mp3"


def load_broken_clips() -> dict[int, str]:
    """track_id -> why, for the known empty files of the FMA distribution."""
    path = dataset_file("fma", "broken_clips.tsv")
    return {int(track_id): reason for track_id, reason, _ in read_shipped_table(path)}


def _records(path: Path):
    """(first line, fields) of every CSV record of ``path`` (a quoted field may span several lines)."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        ended = 0
        for row in reader:
            yield ended + 1, row
            ended = reader.line_num


def _line_of(path: Path, track_id: int) -> str:
    """The line where ``track_id``'s record starts; only used for error messages."""
    return next((str(line) for line, row in _records(path) if row and row[0] == str(track_id)), "?")


def _locate_problem(path: Path) -> str:
    """ "<line>: <what>" for the first record that is cut or has the wrong number of fields."""
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        ended, n_fields = 0, 0
        try:
            for row in reader:
                start, ended = ended + 1, reader.line_num
                n_fields = n_fields or len(row)
                if row and len(row) != n_fields:
                    return f"{start}: expected {n_fields} comma-separated fields, got {len(row)}"
        except csv.Error as e:
            return f"{ended + 1}: the record starting here is cut ({e}): truncated file?"
    return "?: unreadable"


def read_genres(path: str | Path) -> dict[int, str]:
    """``genres.csv`` -> genre_id -> title."""
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise MetadataError(f"{path}: cannot read genres ({e})") from None
    missing = [c for c in GENRE_COLUMNS if c not in frame.columns]
    if missing:
        raise MetadataError(
            f"{path}:1: header lacks {', '.join(missing)}; expected {','.join(GENRE_COLUMNS)}"
        )
    bad = frame["genre_id"].isna() | frame["title"].isna()
    if bad.any():
        raise MetadataError(f"{path}:{int(np.flatnonzero(bad)[0]) + 2}: genre_id and title must be set")
    return {int(g): str(t) for g, t in zip(frame["genre_id"], frame["title"])}


def read_tracks(path: str | Path) -> pd.DataFrame:
    """``tracks.csv`` with its two-level header, checked: the columns the loader needs exist, every row has a
    known split and subset and a parseable ``genres_all``. Errors name the file and line."""
    path = Path(path)
    try:
        tracks = pd.read_csv(path, index_col=0, header=[0, 1], low_memory=False)
    except OSError as e:
        raise MetadataError(f"{path}: cannot read ({e.strerror}); expected fma_metadata/tracks.csv") from None
    except ValueError as e:  # pandas' ParserError counts data rows, not lines: find the line ourselves
        raise MetadataError(f"{path}:{_locate_problem(path)} [pandas: {e}]") from None
    missing = [c for c in COLUMNS if c not in tracks.columns]
    if missing:
        raise MetadataError(
            f"{path}:1-2: header lacks column(s) {', '.join(map(str, missing))}; is this FMA's tracks.csv "
            "(two header lines: group, field)?"
        )
    for column, allowed in ((("set", "split"), SPLITS), (("set", "subset"), SUBSETS["large"])):
        wrong = ~tracks[column].isin(list(allowed))
        if wrong.any():
            track_id = int(tracks.index[wrong][0])
            raise MetadataError(
                f"{path}:{_line_of(path, track_id)}: track {track_id} has {column} = "
                f"{tracks[column][wrong].iloc[0]!r}; expected one of {', '.join(allowed)} (truncated row?)"
            )
    return tracks


def _genre_ids(path: Path, track_id: int, cell: object) -> list[int]:
    try:
        ids = ast.literal_eval(cell) if isinstance(cell, str) else None
    except (ValueError, SyntaxError):
        ids = None
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise MetadataError(
            f"{path}:{_line_of(path, track_id)}: track {track_id} ('track', 'genres_all') = {cell!r}; "
            "expected a list of genre ids like [17, 10, 76]"
        )
    return ids


def load(
    root: str | Path, *, subset: str = "small", vocabulary: str = "genre_top", check_audio: bool = True
) -> Catalog:
    """The FMA catalog of one subset (see the module docstring for files, vocabularies and layout).

    Args:
        root: folder holding ``fma_metadata/`` and ``fma_<subset>/``.
        subset: small | medium | large | full.
        vocabulary: genre_top | genres_all | topN | a tag list file of genre titles.
        check_audio: leave out (and report) tracks whose mp3 does not exist.
    """
    if subset not in SUBSETS:
        raise ConfigError(f"data.subset={subset!r} is not an FMA subset; choose one of {', '.join(SUBSETS)}")
    root = Path(root).resolve()
    meta = root / "fma_metadata" if (root / "fma_metadata").is_dir() else root
    tracks_path = meta / "tracks.csv"
    tracks = read_tracks(tracks_path)
    titles = read_genres(meta / "genres.csv")
    tracks = tracks[tracks[("set", "subset")].isin(SUBSETS[subset])]

    excluded: list[tuple[str, str]] = []
    genre_lists: dict[int, list[str]] = {}
    for track_id, cell in tracks[("track", "genres_all")].items():
        ids = _genre_ids(tracks_path, int(track_id), cell)
        unknown = [i for i in ids if i not in titles]
        if unknown:
            raise MetadataError(
                f"{tracks_path}:{_line_of(tracks_path, int(track_id))}: track {track_id} has genre id "
                f"{unknown[0]}, not in {meta / 'genres.csv'}"
            )
        genre_lists[int(track_id)] = [titles[i] for i in ids]

    if vocabulary == "genre_top":
        top = tracks[("track", "genre_top")]
        tags = sorted(top.dropna().astype(str).unique())
        labels_of = {int(t): ([str(g)] if isinstance(g, str) else []) for t, g in top.items()}
    else:
        counts = Counter(title for genres in genre_lists.values() for title in genres)
        ordered = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        if vocabulary == "genres_all":
            tags = list(ordered)
        else:
            tags = choose_vocabulary(
                vocabulary, ordered, source=str(tracks_path), other_choices="genre_top, genres_all"
            )
        labels_of = genre_lists
    if not tags:
        raise ConfigError(f"{tracks_path}: subset {subset!r} has no track with a {vocabulary} label")
    index = {tag: j for j, tag in enumerate(tags)}

    broken = load_broken_clips()
    clips: list[Clip] = []
    info: dict[str, dict[str, str]] = {}
    for track_id, split, artist, title in zip(
        tracks.index,
        tracks[("set", "split")],
        tracks[("artist", "name")],
        tracks[("track", "title")],
    ):
        tid = int(track_id)
        clip_id = f"{tid:06d}"
        if tid in broken:
            excluded.append((clip_id, f"known broken clip ({broken[tid]})"))
            continue
        labels = np.zeros(len(tags), np.float32)
        for genre in labels_of[tid]:
            if genre in index:
                labels[index[genre]] = 1.0
        if not labels.any():
            excluded.append((clip_id, f"no tag of the vocabulary ({vocabulary})"))
            continue
        clips.append(Clip(clip_id, str(audio_path(root, subset, tid)), labels, SPLITS[split]))
        info[clip_id] = {"artist": str(artist), "title": str(title)}
    if check_audio:
        clips, missing = drop_missing_audio(clips, metadata=tracks_path, dataset="fma")
        excluded += missing
    return Catalog(name="fma", root=str(root), tags=tags, clips=clips, excluded=excluded, info=info)


def from_config(data_cfg: DataConfig, *, check_audio: bool = True) -> Catalog:
    """``load`` with ``data_cfg``: data.root, data.subset ("" = small), data.vocabulary; data.split must be ""
    or "fma" (FMA's own split)."""
    if data_cfg.split not in ("", "fma"):
        raise ConfigError(
            f"data.split={data_cfg.split!r}: FMA has its own training/validation/test split; set data.split to ''"
        )
    root = resolve_root(data_cfg.root, what="the FMA folder holding fma_metadata/ and fma_<subset>/")
    return load(
        root, subset=data_cfg.subset or "small", vocabulary=data_cfg.vocabulary, check_audio=check_audio
    )
