"""MagnaTagATune (MTAT): ``annotations_final.csv`` -> :class:`~hvd_magtag.data.catalog.Catalog`.

The file is read exactly as distributed: tab-separated, every field double-quoted (header too), CRLF line
ends, one header line then one row per clip with 190 fields: ``clip_id``, the 188 tag columns (``"0"`` or
``"1"``) and ``mp3_path`` (``<hex folder>/<artist>-<album>-<track>-<title>-<start>-<end>.mp3``). The tag
columns are taken from the header itself, so a file with other tag columns (the synthetic dataset) reads the
same way.

Layout expected under ``root``::

    root/annotations_final.csv
    root/clip_info_final.csv         optional: artist / album / title per clip (catalog.info)
    root/0/ ... root/f/              the 16 mp3 folders of mp3.zip.001-003

Splits (``data.split``), both from the folder a clip sits in (:data:`DIRECTORY_SPLIT`):

- ``directory``: folders 0-b train, c valid, d-f test (Dieleman & Schrauwen 2014; musicnn):
  18,706 / 1,825 / 5,329 clips on the real file once the 3 broken clips are left out.
- ``clean``: the same folders, keeping only clips with at least one tag of the vocabulary (Lee et al. 2017,
  Won et al. 2020): 15,244 / 1,529 / 4,332 with the top-50 vocabulary.

The three 0-byte mp3s of the distribution (``hvd_magtag/resources/datasets/mtat/broken_clips.tsv``) are always left out and
reported in ``catalog.excluded``; so is every row whose audio file is missing.

Other modules take the dataset's constants from here: :data:`MTAT_SAMPLE_RATE`, :func:`load_top50_tags`,
:func:`load_tag_columns_188`, :func:`load_top50_frequency`.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hvd_magtag.config import ConfigError
from hvd_magtag.data import (
    choose_vocabulary,
    drop_missing_audio,
    read_shipped_table,
    read_tag_list,
    resolve_root,
)
from hvd_magtag.data.catalog import Catalog, Clip, MetadataError
from hvd_magtag.locations import dataset_dir
from hvd_magtag.resources import dataset_file

if TYPE_CHECKING:
    from hvd_magtag.config import DataConfig

log = logging.getLogger(__name__)

#: The MTAT mp3s are 16 kHz mono (32 kbit/s); clips last about 29.1 s.
MTAT_SAMPLE_RATE = 16000

ANNOTATIONS = "annotations_final.csv"
CLIP_INFO = "clip_info_final.csv"
#: Columns of clip_info_final.csv, in the distributed order.
CLIP_INFO_COLUMNS = (
    "clip_id",
    "track_number",
    "title",
    "artist",
    "album",
    "url",
    "segmentStart",
    "segmentEnd",
    "original_url",
    "mp3_path",
)

#: Folder of the clip (first component of mp3_path) -> split, shared by the "directory" and "clean" splits.
DIRECTORY_SPLIT: dict[str, str] = {
    **{folder: "train" for folder in "0123456789ab"},
    "c": "valid",
    **{folder: "test" for folder in "def"},
}

#: data.split -> keep only clips with at least one vocabulary tag?
SPLIT_RULES: dict[str, bool] = {"directory": False, "clean": True}

#: clip_info_final.csv columns kept in catalog.info (the rest are URLs and segment bounds).
INFO_COLUMNS = ("artist", "album", "title", "track_number")


def _shipped(name: str) -> Path:
    return dataset_file("mtat", name)


def load_top50_tags() -> list[str]:
    """The 50 most frequent MTAT tags in canonical order (descending frequency; musicnn / Won et al.)."""
    return read_tag_list(_shipped("top50_tags.txt"))


def load_tag_columns_188() -> list[str]:
    """The 188 tag columns of ``annotations_final.csv`` in column order (reconstructed from public lists)."""
    return read_tag_list(_shipped("tag_columns_188.txt"))


def load_top50_frequency() -> dict[str, float]:
    """Top-50 tag -> share of clips carrying it (0..1), measured on the test folders d-f; canonical order."""
    path = _shipped("top50_tag_frequency.tsv")
    shares: dict[str, float] = {}
    for tag, share, lineno in read_shipped_table(path):
        try:
            shares[tag] = float(share)
        except ValueError:
            raise MetadataError(f"{path}:{lineno}: share must be a number, got {share!r}") from None
    return shares


def load_broken_clips() -> dict[str, str]:
    """clip_id -> mp3_path of the clips that are 0-byte files in the MTAT distribution."""
    return {clip_id: mp3_path for clip_id, mp3_path, _ in read_shipped_table(_shipped("broken_clips.tsv"))}


# -- annotations_final.csv ----------------------------------------------------------------------------------


def read_annotations(path: str | Path) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """Parse ``annotations_final.csv``: (tag columns, clip ids, mp3 paths, labels uint8 [n_clips, n_columns]).

    Raises :class:`MetadataError` naming the file, the line and what was expected for: a missing or
    misnamed ``clip_id`` / ``mp3_path`` header column, a row with the wrong number of fields (a truncated
    file), a tag cell other than "0"/"1", a non-integer or repeated clip_id, an mp3_path outside 0-f.
    """
    path = Path(path)
    try:
        handle = open(path, encoding="utf-8", newline="")
    except OSError as e:
        raise MetadataError(
            f"{path}: cannot read ({e.strerror}); the MTAT root must hold {ANNOTATIONS} "
            "(see datasets/mtat/README.md in the hvd_magtag source repository)"
        ) from None
    with handle:
        reader = csv.reader(handle, delimiter="\t", quotechar='"', strict=True)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise MetadataError(
                f"{path}: empty file; expected a header line clip_id, <tags>, mp3_path"
            ) from None
        except csv.Error as e:
            raise MetadataError(f"{path}:1: unreadable header ({e})") from None
        if len(header) < 3 or header[0] != "clip_id" or header[-1] != "mp3_path":
            raise MetadataError(
                f"{path}:1: header must be clip_id, the tag columns, mp3_path (tab-separated); "
                f"got {len(header)} columns starting {header[:2]} and ending {header[-1:]}"
            )
        tags = header[1:-1]
        _no_repeats(tags, path)
        n_fields, n_tags = len(header), len(tags)
        ids: list[str] = []
        paths: list[str] = []
        cells: list[str] = []
        seen: set[str] = set()
        try:
            for row in reader:
                line = reader.line_num
                if len(row) != n_fields:
                    if not any(cell.strip() for cell in row):
                        continue  # a blank line (e.g. after the last CRLF)
                    raise MetadataError(
                        f"{path}:{line}: expected {n_fields} tab-separated fields (clip_id, {n_tags} tags, "
                        f"mp3_path), got {len(row)}; the file may be truncated or re-saved with another separator"
                    )
                clip_id, mp3_path = row[0].strip(), row[-1].strip()
                if not clip_id.isdigit():
                    raise MetadataError(f"{path}:{line}: clip_id must be an integer, got {row[0]!r}")
                if clip_id in seen:
                    raise MetadataError(f"{path}:{line}: clip_id {clip_id} appears twice")
                seen.add(clip_id)
                if mp3_path.split("/", 1)[0] not in DIRECTORY_SPLIT or "/" not in mp3_path:
                    raise MetadataError(
                        f"{path}:{line}: mp3_path {mp3_path!r} must start with one of the folders 0-f"
                    )
                row_cells = "".join(row[1:-1])
                if len(row_cells) != n_tags or row_cells.strip("01"):
                    column, cell = next(
                        (j, c) for j, c in enumerate(row[1:-1], start=1) if c not in ("0", "1")
                    )
                    raise MetadataError(
                        f"{path}:{line}: tag cell {cell!r} in column {column + 1} ({header[column]!r}); "
                        'tag cells must be "0" or "1"'
                    )
                ids.append(clip_id)
                paths.append(mp3_path)
                cells.append(row_cells)
        except csv.Error as e:
            raise MetadataError(
                f"{path}:{reader.line_num}: unreadable row ({e}); the file may be truncated"
            ) from None
    if not ids:
        raise MetadataError(f"{path}: header only, no clip rows")
    labels = (np.frombuffer("".join(cells).encode("ascii"), np.uint8) - ord("0")).reshape(len(ids), n_tags)
    return tags, ids, paths, labels


def _no_repeats(tags: list[str], path: Path) -> None:
    seen: set[str] = set()
    for tag in tags:
        if tag in seen:
            raise MetadataError(f"{path}:1: tag column {tag!r} appears twice in the header")
        seen.add(tag)


def read_clip_info(path: str | Path) -> dict[str, dict[str, str]]:
    """``clip_info_final.csv`` (tab-separated, quoted) -> clip_id -> {artist, album, title, track_number}.

    The file only adds names, so a malformed row is skipped with a warning (file, first bad line) rather than
    failing the load; a header without the needed columns is still a :class:`MetadataError`.
    """
    path = Path(path)
    info: dict[str, dict[str, str]] = {}
    skipped: list[int] = []
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quotechar='"')
        header = [h.strip() for h in next(reader, [])]
        missing = [c for c in ("clip_id", *INFO_COLUMNS) if c not in header]
        if missing:
            raise MetadataError(
                f"{path}:1: header lacks column(s) {', '.join(missing)}; expected {', '.join(CLIP_INFO_COLUMNS)}"
            )
        where = {c: header.index(c) for c in ("clip_id", *INFO_COLUMNS)}
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                skipped.append(reader.line_num)
                continue
            info[row[where["clip_id"]].strip()] = {c: row[where[c]].strip() for c in INFO_COLUMNS}
    if skipped:
        log.warning(
            "%s:%d: %d row(s) without the %d tab-separated fields of the header skipped (names only)",
            path,
            skipped[0],
            len(skipped),
            len(header),
        )
    return info


# -- catalog ------------------------------------------------------------------------------------------------


def load(
    root: str | Path,
    *,
    split: str = "clean",
    vocabulary: str = "top50",
    name: str = "mtat",
    check_audio: bool = True,
) -> Catalog:
    """The MTAT catalog under ``root`` (see the module docstring for layout and split rules).

    Args:
        root: folder holding ``annotations_final.csv`` and the mp3 folders 0-f.
        split: ``clean`` | ``directory``.
        vocabulary: ``top50`` (the shipped canonical list), ``topN`` (the N most frequent tag columns of the
            file, counted over all its rows, ties in column order) or a tag list file.
        name: catalog name ("mtat", or "synthetic" for the synthetic dataset in the same layout).
        check_audio: leave out (and report) rows whose mp3 file does not exist.
    """
    split = split or "clean"  # "" = the dataset's default split (data.split's default)
    if split not in SPLIT_RULES:
        raise ConfigError(
            f"data.split={split!r} is not an MTAT split; choose one of {', '.join(SPLIT_RULES)}"
        )
    root = Path(root).resolve()
    annotations = root / ANNOTATIONS
    columns, ids, mp3_paths, all_labels = read_annotations(annotations)
    counts = dict(zip(columns, all_labels.sum(axis=0).tolist()))
    tags = choose_vocabulary(vocabulary, counts, source=str(annotations), canonical_top50=load_top50_tags())
    labels = all_labels[:, [columns.index(t) for t in tags]].astype(np.float32)

    broken = load_broken_clips()
    excluded: list[tuple[str, str]] = []
    clips: list[Clip] = []
    needs_tag = SPLIT_RULES[split]
    for clip_id, mp3_path, clip_labels in zip(ids, mp3_paths, labels):
        if broken.get(clip_id) == mp3_path:
            excluded.append((clip_id, f"known broken clip (0-byte mp3 in the distribution): {mp3_path}"))
        elif needs_tag and not clip_labels.any():
            excluded.append((clip_id, f"no tag of the vocabulary ({split} split rule)"))
        else:
            split_name = DIRECTORY_SPLIT[mp3_path.split("/", 1)[0]]
            clips.append(Clip(clip_id, str(root / mp3_path), clip_labels, split_name))
    if check_audio:
        clips, missing = drop_missing_audio(clips, metadata=annotations, dataset="mtat")
        excluded += missing

    info_path = root / CLIP_INFO
    info = read_clip_info(info_path) if info_path.is_file() else {}
    return Catalog(name=name, root=str(root), tags=tags, clips=clips, excluded=excluded, info=info)


def from_config(data_cfg: DataConfig, *, check_audio: bool = True) -> Catalog:
    """``load`` with the options of ``data_cfg`` (dataset "mtat"; ``data.root`` is required)."""
    root = resolve_root(
        data_cfg.root, what="the MTAT folder holding annotations_final.csv and mp3 folders 0-f"
    )
    return load(root, split=data_cfg.split, vocabulary=data_cfg.vocabulary, check_audio=check_audio)


def synthetic_from_config(data_cfg: DataConfig, *, check_audio: bool = True) -> Catalog:
    """The synthetic MTAT-layout dataset (``data.root``, default :func:`hvd_magtag.locations.dataset_dir`
    ``("synthetic")``) read by :func:`load`."""
    root = Path(data_cfg.root).expanduser() if data_cfg.root else dataset_dir("synthetic")
    if not (root / ANNOTATIONS).is_file():
        raise MetadataError(
            f"{root / ANNOTATIONS}: not found; generate the synthetic dataset first "
            f"(python -m hvd_magtag.data.synth --out {root} --clips 400) or set data.root to where it was written"
        )
    return load(
        root, split=data_cfg.split, vocabulary=data_cfg.vocabulary, name="synthetic", check_audio=check_audio
    )
