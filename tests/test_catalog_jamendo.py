"""MTG-Jamendo catalog: split tsv files with a variable number of tag columns, vocabularies, splits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from catalog_fixtures import FIXTURES, real_bytes

from hvd_magtag.config import ConfigError, DataConfig
from hvd_magtag.data import jamendo, load_catalog
from hvd_magtag.data.catalog import MetadataError

SMALL = FIXTURES / "jamendo"


def _rows(part: str, subset: str = "top50tags") -> list[list[str]]:
    text = (SMALL / "splits/split-0" / f"autotagging_{subset}-{part}.tsv").read_bytes().decode()
    return [line.split("\t") for line in text.split("\r\n")[1:] if line]


def test_top50_parses_variable_tag_columns():
    catalog = jamendo.load(SMALL, check_audio=False)
    assert catalog.tags == jamendo.load_top50_tags() and len(catalog.tags) == 50
    rows = {part: _rows(part) for part in ("train", "validation", "test")}
    assert catalog.split_counts() == {"train": 12, "valid": 12, "test": 12}
    assert {c.clip_id for c in catalog.split("valid")} == {r[0] for r in rows["validation"]}
    by_id = {c.clip_id: c for c in catalog.clips}
    multi = [r for part in rows.values() for r in part if len(r) > 7]
    assert multi, "the fixture must hold tracks with several tag columns"
    for row in multi + rows["test"]:
        clip = by_id[row[0]]
        assert sorted(catalog.tags[j] for j in np.flatnonzero(clip.labels)) == sorted(row[5:])
        assert clip.path == str(SMALL.resolve() / row[3])
        assert catalog.info[row[0]]["artist_id"] == row[1]


def test_category_vocabularies():
    genre = jamendo.load(SMALL, vocabulary="genre", check_audio=False)
    expected = sorted(
        {t for part in ("train", "validation", "test") for r in _rows(part, "genre") for t in r[5:]}
    )
    assert genre.tags == expected and all(t.startswith("genre---") for t in genre.tags)

    top50_genre = jamendo.load(SMALL, vocabulary="top50:genre", check_audio=False)
    assert top50_genre.tags == [t for t in jamendo.load_top50_tags() if t.startswith("genre---")]
    no_genre = {r[0] for part in ("train", "validation", "test") for r in _rows(part)} - {
        c.clip_id for c in top50_genre.clips
    }
    assert no_genre == {
        i for i, reason in top50_genre.excluded if reason.startswith("no tag of the vocabulary")
    }

    instrument = jamendo.load(SMALL, vocabulary="top50:instrument", check_audio=False)
    assert all(t.startswith("instrument---") for t in instrument.tags)
    with pytest.raises(MetadataError, match="autotagging_instrument-train.tsv not found.*datasets/jamendo"):
        jamendo.load(SMALL, vocabulary="instrument", check_audio=False)
    with pytest.raises(ConfigError, match="data.vocabulary='top50:tempo'"):
        jamendo.load(SMALL, vocabulary="top50:tempo", check_audio=False)


def test_real_split_0_counts(tmp_path):
    """MTG's published split-0 files (fixtures/catalogs/real), read as distributed."""
    split = tmp_path / "splits" / "split-0"
    split.mkdir(parents=True)
    for part in ("train", "validation", "test"):
        name = f"autotagging_top50tags-{part}.tsv"
        (split / name).write_bytes(real_bytes(f"jamendo/split-0/{name}"))
    catalog = jamendo.load(tmp_path, check_audio=False)
    assert catalog.split_counts() == {"train": 32136, "valid": 10888, "test": 11356}
    assert not catalog.excluded


def test_dispatcher_split_folder_and_low_quality_audio(tmp_path):
    shutil.copytree(SMALL / "splits", tmp_path / "data" / "splits")  # layout of a clone of the MTG repository
    rows = _rows("test")
    full, low = rows[0][3], rows[1][3]
    (tmp_path / full).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / full).write_bytes(b"\xff\xfb")
    (tmp_path / low).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / low.replace(".mp3", ".low.mp3")).write_bytes(b"\xff\xfb")
    catalog = load_catalog(DataConfig(dataset="jamendo", root=str(tmp_path), split="split-0"))
    assert {Path(c.path).name for c in catalog.clips} == {
        Path(full).name,
        Path(low).name.replace(".mp3", ".low.mp3"),
    }
    assert sum(r.startswith("missing audio file") for _, r in catalog.excluded) == 36 - 2
    with pytest.raises(ConfigError, match="MTAT split rule; for jamendo use split-0"):
        load_catalog(DataConfig(dataset="jamendo", root=str(tmp_path), split="clean"))
    default = load_catalog(DataConfig(dataset="jamendo", root=str(tmp_path)))  # "" = split-0
    assert {c.clip_id for c in default.clips} == {c.clip_id for c in catalog.clips}
    with pytest.raises(MetadataError, match="split-3"):
        jamendo.load(tmp_path, split="split-3", check_audio=False)


def _broken_copy(tmp_path: Path, part: str, line: int, new: str | None) -> Path:
    shutil.copytree(SMALL / "splits", tmp_path / "splits")
    path = tmp_path / "splits/split-0" / f"autotagging_top50tags-{part}.tsv"
    lines = path.read_bytes().decode().split("\r\n")
    if new is None:
        del lines[line - 1 :]
        lines.append("track_0009999\tartist_000001\talbum_000001\t99/9999.mp3\t12")  # truncated: no tag
    else:
        lines[line - 1] = new
    path.write_bytes("\r\n".join(lines).encode())
    return tmp_path


def test_truncated_row(tmp_path):
    root = _broken_copy(tmp_path, "validation", 9, None)
    with pytest.raises(
        MetadataError, match=r"autotagging_top50tags-validation\.tsv:9: expected .*got 5.*truncated"
    ):
        jamendo.load(root, check_audio=False)


def test_tag_without_category(tmp_path):
    row = "\t".join(_rows("train")[2][:5] + ["rock"])
    root = _broken_copy(tmp_path, "train", 4, row)
    with pytest.raises(MetadataError, match=r"-train\.tsv:4: tag 'rock' is not category---name"):
        jamendo.load(root, check_audio=False)


def test_wrong_header(tmp_path):
    root = _broken_copy(tmp_path, "test", 1, "TRACK_ID\tARTIST_ID\tPATH\tDURATION\tTAGS")
    with pytest.raises(MetadataError, match=r"-test\.tsv:1: expected the header TRACK_ID ARTIST_ID ALBUM_ID"):
        jamendo.load(root, check_audio=False)


def test_track_in_two_splits(tmp_path):
    row = "\t".join(_rows("train")[0])
    root = _broken_copy(tmp_path, "test", 3, row)
    with pytest.raises(MetadataError, match="is also in .*-train.tsv; splits must not overlap"):
        jamendo.load(root, check_audio=False)
