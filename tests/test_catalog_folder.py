"""Folder catalog: recursive audio discovery, the optional tags.csv, its split column and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hvd_magtag.config import DataConfig
from hvd_magtag.data import folder, load_catalog
from hvd_magtag.data.catalog import MetadataError

FILES = ["rock/a.mp3", "rock/deep/b.WAV", "jazz/c, d.flac", "e.ogg", "notes.txt", ".hidden/f.mp3"]


@pytest.fixture
def root(tmp_path) -> Path:
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_without_tags_file_every_audio_file_is_an_unlabelled_clip(root):
    catalog = folder.load(root)
    assert [c.clip_id for c in catalog.clips] == ["e.ogg", "jazz/c, d.flac", "rock/a.mp3", "rock/deep/b.WAV"]
    assert catalog.tags == [] and all(c.split == "" and c.labels.shape == (0,) for c in catalog.clips)
    tags_file = root / "model_tags.txt"
    tags_file.write_text("rock\njazz\n")
    tagged = folder.load(root, vocabulary=str(tags_file))
    assert tagged.tags == ["rock", "jazz"] and tagged.labels().shape == (4, 2) and not tagged.labels().any()


def test_tags_file_labels_splits_and_exclusions(root):
    (root / "tags.csv").write_text(
        "path,tags,split\n"
        "rock/a.mp3,guitar;rock;male vocal,train\n"
        '"jazz/c, d.flac",piano;jazz,validation\n'
        "e.ogg,,test\n"
        "rock/missing.mp3,rock,train\n"
    )
    catalog = load_catalog(DataConfig(dataset="folder", root=str(root), vocabulary="top50"))
    assert catalog.tags[0] == "rock" and sorted(catalog.tags) == [
        "guitar",
        "jazz",
        "male vocal",
        "piano",
        "rock",
    ]
    by_id = {c.clip_id: c for c in catalog.clips}
    assert {catalog.tags[j] for j in np.flatnonzero(by_id["jazz/c, d.flac"].labels)} == {"piano", "jazz"}
    assert by_id["jazz/c, d.flac"].split == "valid" and by_id["e.ogg"].split == "test"
    assert not by_id["e.ogg"].labels.any()
    assert dict(catalog.excluded) == {
        "rock/missing.mp3": f"missing audio file: {root.resolve() / 'rock/missing.mp3'}",
        "rock/deep/b.WAV": "not listed in tags.csv",
    }
    top1 = folder.load(root, vocabulary="top1")
    assert top1.tags == ["rock"] and [c.clip_id for c in top1.clips if c.labels.any()] == ["rock/a.mp3"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("file,tags\na.mp3,x\n", r"tags\.csv:1: header lacks column\(s\) path"),
        ("path,tags,split\nrock/a.mp3,x,train\ne.ogg,y\n", r"tags\.csv:3: expected 3 comma-separated fields"),
        ("path,tags,split\nrock/a.mp3,x,dev\n", r"tags\.csv:2: split 'dev'; expected train, valid"),
        ("path,tags\nrock/a.mp3,x\nrock/a.mp3,y\n", r"tags\.csv:3: 'rock/a.mp3' is already listed on line 2"),
        ("path,tags\nnotes.txt,x\n", r"tags\.csv:2: 'notes.txt' is not an audio file"),
    ],
)
def test_bad_tags_file(root, text, message):
    (root / "tags.csv").write_text(text)
    with pytest.raises(MetadataError, match=message):
        folder.load(root)
