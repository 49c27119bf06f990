"""FMA catalog: tracks.csv with its two-level header, genre vocabularies, subsets, splits, known empty files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from catalog_fixtures import FIXTURES

from hvd_magtag.config import ConfigError, DataConfig
from hvd_magtag.data import fma, load_catalog
from hvd_magtag.data.catalog import MetadataError

SMALL = FIXTURES / "fma"
TRACKS = SMALL / "fma_metadata" / "tracks.csv"


@pytest.fixture(scope="module")
def tracks() -> pd.DataFrame:
    return pd.read_csv(TRACKS, index_col=0, header=[0, 1])  # the documented reader


def test_genre_top_on_small(tracks):
    catalog = fma.load(SMALL, subset="small", check_audio=False)
    small = tracks[tracks[("set", "subset")] == "small"]
    assert catalog.tags == sorted(small[("track", "genre_top")].dropna().unique())
    broken = {"099134", "108925", "133297"}
    assert {i for i, r in catalog.excluded if r.startswith("known broken clip")} == broken
    expected_ids = {f"{t:06d}" for t in small.index} - broken
    assert {c.clip_id for c in catalog.clips} == expected_ids
    for clip in catalog.clips:
        row = small.loc[int(clip.clip_id)]
        assert catalog.tags[int(np.argmax(clip.labels))] == row[("track", "genre_top")]
        assert clip.labels.sum() == 1
        assert (
            clip.split == {"training": "train", "validation": "valid", "test": "test"}[row[("set", "split")]]
        )
    assert catalog.info["000010"] == {"artist": "Kurt Vile", "title": "Freeway"}
    assert Path(next(c.path for c in catalog.clips if c.clip_id == "000002")) == (
        SMALL.resolve() / "fma_small/000/000002.mp3"
    )


def test_subsets_are_nested(tracks):
    sizes = {
        s: len(fma.load(SMALL, subset=s, vocabulary="genres_all", check_audio=False).clips)
        for s in fma.SUBSETS
    }
    by_subset = tracks[("set", "subset")].value_counts()
    n_broken = 3
    assert sizes["small"] == by_subset["small"] - n_broken
    assert sizes["medium"] == by_subset["small"] + by_subset["medium"] - n_broken
    assert sizes["large"] == sizes["full"] == len(tracks) - n_broken
    large = fma.load(SMALL, subset="large", vocabulary="genre_top", check_audio=False)
    assert ("000020", "no tag of the vocabulary (genre_top)") in large.excluded  # genre_top is NaN


def test_genres_all_is_multi_label_with_titles():
    catalog = fma.load(SMALL, subset="large", vocabulary="genres_all", check_audio=False)
    clip = next(c for c in catalog.clips if c.clip_id == "000020")
    assert {catalog.tags[j] for j in np.flatnonzero(clip.labels)} == {
        "Folk",
        "Pop",
        "Experimental Pop",
        "Singer-Songwriter",
    }
    assert catalog.tags[0] == "Hip-Hop"  # the most frequent genre of the fixture (4 tracks)
    assert clip.path.endswith("fma_large/000/000020.mp3")
    top2 = fma.load(SMALL, subset="large", vocabulary="top2", check_audio=False)
    assert top2.tags == catalog.tags[:2]


def test_dispatcher_options(tmp_path):
    shutil.copytree(SMALL / "fma_metadata", tmp_path / "fma_metadata")
    audio = fma.audio_path(tmp_path, "small", 140)
    audio.parent.mkdir(parents=True)
    audio.write_bytes(b"\xff\xfb")
    catalog = load_catalog(DataConfig(dataset="fma", root=str(tmp_path), split="", vocabulary="genre_top"))
    assert [c.clip_id for c in catalog.clips] == ["000140"] and catalog.clips[0].split == "valid"
    with pytest.raises(ConfigError, match="FMA has its own training/validation/test split"):
        load_catalog(DataConfig(dataset="fma", root=str(tmp_path), split="clean"))
    with pytest.raises(ConfigError, match="data.subset='tiny'"):
        fma.load(tmp_path, subset="tiny", check_audio=False)


def _edit(tmp_path: Path, edit) -> Path:
    shutil.copytree(SMALL / "fma_metadata", tmp_path / "fma_metadata")
    path = tmp_path / "fma_metadata" / "tracks.csv"
    path.write_text(edit(path.read_text()))
    return tmp_path


def test_truncated_tracks_csv(tmp_path):
    lines = TRACKS.read_text().split("\n")
    last = next(i for i in range(len(lines) - 1, 0, -1) if lines[i].startswith("182,"))
    # cut inside the quoted multi-line artist bio of the last record
    root = _edit(tmp_path, lambda t: "\n".join(lines[: last + 1]))
    with pytest.raises(MetadataError, match=rf"tracks\.csv:{last + 1}: the record starting here is cut"):
        fma.load(root, subset="medium", check_audio=False)
    # cut before any quote: pandas pads the row, the check of ('set', 'split') names the line
    shutil.rmtree(root / "fma_metadata")
    root = _edit(tmp_path, lambda t: "\n".join(lines[:last] + ["182,0,2008-11-26"]) + "\n")
    with pytest.raises(
        MetadataError, match=rf"tracks\.csv:{last + 1}: track 182 has \('set', 'split'\) = nan"
    ):
        fma.load(root, subset="medium", check_audio=False)


def test_bad_genres_all_cell(tmp_path):
    root = _edit(tmp_path, lambda t: t.replace('"[17, 10, 76, 103]"', '"17;10"'))
    line = next(i for i, s in enumerate(TRACKS.read_text().split("\n"), 1) if s.startswith("20,"))
    with pytest.raises(MetadataError, match=rf"tracks\.csv:{line}: track 20 .*expected a list of genre ids"):
        fma.load(root, subset="large", vocabulary="genres_all", check_audio=False)


def test_missing_column(tmp_path):
    root = _edit(tmp_path, lambda t: t.replace(",genres_all,", ",genres_every,", 1))
    with pytest.raises(
        MetadataError, match=r"tracks\.csv:1-2: header lacks column\(s\) \('track', 'genres_all'\)"
    ):
        fma.load(root, check_audio=False)
