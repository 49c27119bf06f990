"""MTAT catalog: the distributed annotations_final.csv format, vocabularies, both splits, broken/missing clips.

The full-size file is rebuilt from real public metadata committed in fixtures/catalogs/real (the real index of
all 25,863 clips, the real top-50 labels of folders c-f, Lee et al.'s clean train list for 0-b).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from catalog_fixtures import FIXTURES, read_mtat_index, real_lines, write_annotations

from hvd_magtag.config import ConfigError, DataConfig
from hvd_magtag.data import load_catalog, mtat
from hvd_magtag.data.catalog import MetadataError

SMALL = FIXTURES / "mtat"
BROKEN = {"35644", "55753", "57881"}


@pytest.fixture(scope="module")
def full_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mtat_full")
    write_annotations(root / "annotations_final.csv", read_mtat_index(), seed=1)
    return root


def test_small_fixture_is_in_the_distributed_format():
    raw = (SMALL / "annotations_final.csv").read_bytes()
    lines = raw.split(b"\r\n")
    assert lines[-1] == b"" and b"\n" not in b"".join(lines), "CRLF line ends only"
    header = lines[0].split(b"\t")
    assert len(header) == 190 and header[0] == b'"clip_id"' and header[-1] == b'"mp3_path"'
    assert all(
        cell.startswith(b'"') and cell.endswith(b'"') for line in lines[:-1] for cell in line.split(b"\t")
    )


def test_full_size_file_has_the_size_of_the_real_one(full_root):
    # 21,517,373 bytes is the size a third-party download script expects for the real annotations_final.csv:
    # quoting, CRLF, the 188 columns and all 25,863 real mp3 paths add up to exactly that
    assert (full_root / "annotations_final.csv").stat().st_size == 21_517_373


def test_directory_split_reproduces_published_counts(full_root):
    catalog = mtat.load(full_root, split="directory", check_audio=False)
    assert catalog.split_counts() == {"train": 18706, "valid": 1825, "test": 5329}
    assert {clip_id for clip_id, _ in catalog.excluded} == BROKEN


def test_clean_split_reproduces_published_counts(full_root):
    catalog = mtat.load(full_root, split="clean", check_audio=False)
    assert catalog.split_counts() == {"train": 15244, "valid": 1529, "test": 4332}
    broken = [reason for clip_id, reason in catalog.excluded if clip_id in BROKEN]
    assert len(broken) == 3 and all(r.startswith("known broken clip") for r in broken)
    assert catalog.tags == mtat.load_top50_tags()
    assert all(c.labels.any() for c in catalog.clips)


def test_clean_valid_and_test_are_lee_et_al_lists(full_root):
    catalog = mtat.load(full_root, split="clean", check_audio=False)
    root = str(full_root) + "/"
    for split, name in (("valid", "valid"), ("test", "test")):
        lee = real_lines(f"mtat/{name}_list_pub.txt")
        assert len(lee) == {"valid": 1529, "test": 4332}[split]
        ours = {c.path[len(root) :] for c in catalog.split(split)}
        assert ours == {p.replace(".npy", ".mp3") for p in lee}


def test_labels_are_the_real_top50_labels(full_root):
    catalog = mtat.load(full_root, split="directory", check_audio=False)
    by_id = {c.clip_id: c for c in catalog.clips}
    checked = 0
    for clip_id, mp3_path, top50 in read_mtat_index():
        if mp3_path[0] in "cdef":
            expected = np.zeros(50, np.float32)
            expected[[int(i) for i in top50.split(",") if i]] = 1
            np.testing.assert_array_equal(by_id[clip_id].labels, expected)
            assert by_id[clip_id].split == ("valid" if mp3_path[0] == "c" else "test")
            checked += 1
    assert checked == 1825 + 5329


def test_top_n_matches_pandas_counts(full_root):
    path = full_root / "annotations_final.csv"
    frame = pd.read_csv(path, sep="\t")  # strips the quotes, as formats/README.md says
    counts = frame.drop(columns=["clip_id", "mp3_path"]).sum()
    expected = sorted(counts.index, key=lambda t: (-counts[t], list(counts.index).index(t)))[:12]
    catalog = mtat.load(full_root, split="directory", vocabulary="top12", check_audio=False)
    assert catalog.tags == expected
    column = catalog.tags[5]
    labelled = {c.clip_id for c in catalog.clips if c.labels[5]}
    assert labelled == {str(i) for i in frame.loc[frame[column] == 1, "clip_id"]} - BROKEN


def test_custom_vocabulary_file(tmp_path):
    tags_file = tmp_path / "mine.txt"
    tags_file.write_text("# my tags\npiano\n\nclassical\nno voice\n")
    catalog = mtat.load(SMALL, split="clean", vocabulary=str(tags_file), check_audio=False)
    assert catalog.tags == ["piano", "classical", "no voice"]
    frame = pd.read_csv(SMALL / "annotations_final.csv", sep="\t").set_index("clip_id")
    for clip in catalog.clips:
        np.testing.assert_array_equal(clip.labels, frame.loc[int(clip.clip_id), catalog.tags].to_numpy())
    kept = {c.clip_id for c in catalog.clips}
    has_tag = frame[catalog.tags].sum(axis=1) > 0
    assert kept == {str(i) for i in frame.index[has_tag]} - BROKEN

    tags_file.write_text("piano\nbanjo solo\n")
    with pytest.raises(MetadataError, match=r"mine\.txt.*'banjo solo'"):
        mtat.load(SMALL, vocabulary=str(tags_file), check_audio=False)


def test_unknown_options_are_one_line_errors():
    with pytest.raises(ConfigError, match="data.split='random'.*directory, clean"):
        mtat.load(SMALL, split="random", check_audio=False)
    with pytest.raises(ConfigError, match="data.vocabulary='best50'"):
        mtat.load(SMALL, vocabulary="best50", check_audio=False)
    with pytest.raises(ConfigError, match="data.dataset 'mp3s': choose one of .*mtat"):
        load_catalog(DataConfig(dataset="mp3s", root=str(SMALL)))


def test_missing_audio_is_left_out_and_reported(tmp_path):
    (tmp_path / "annotations_final.csv").write_bytes((SMALL / "annotations_final.csv").read_bytes())
    everything = mtat.load(tmp_path, split="directory", check_audio=False)
    present = everything.clips[::3]
    for clip in present:
        Path(clip.path).parent.mkdir(parents=True, exist_ok=True)
        Path(clip.path).write_bytes(b"\xff\xf3")
    catalog = mtat.load(tmp_path, split="directory")
    assert [c.clip_id for c in catalog.clips] == [c.clip_id for c in present]
    missing = [(i, r) for i, r in catalog.excluded if r.startswith("missing audio file")]
    assert len(missing) == len(everything.clips) - len(present)
    assert missing[0][1].endswith(".mp3") and str(tmp_path) in missing[0][1]


def test_no_audio_at_all_names_the_root(tmp_path):
    (tmp_path / "annotations_final.csv").write_bytes((SMALL / "annotations_final.csv").read_bytes())
    with pytest.raises(FileNotFoundError, match="annotations_final.csv.*datasets/mtat/README.md"):
        mtat.load(tmp_path)


def test_clip_info_is_joined(tmp_path, caplog):
    catalog = mtat.load(SMALL, split="directory", check_audio=False)
    assert catalog.info["2"]["artist"] == "american bach soloists"
    assert catalog.info["2"]["track_number"] == "01"
    assert set(catalog.info) >= {c.clip_id for c in catalog.clips}

    lines = (SMALL / "clip_info_final.csv").read_bytes().split(b"\r\n")
    lines[2] = b"\t".join(lines[2].split(b"\t")[:4])  # a malformed row only costs that clip its names
    (tmp_path / "clip_info_final.csv").write_bytes(b"\r\n".join(lines))
    (tmp_path / "annotations_final.csv").write_bytes((SMALL / "annotations_final.csv").read_bytes())
    partial = mtat.load(tmp_path, split="directory", check_audio=False)
    assert "6" not in partial.info and partial.info["2"] == catalog.info["2"]
    assert "clip_info_final.csv:3: 1 row(s)" in caplog.text


def test_dispatcher_and_synthetic_root():
    cfg = DataConfig(dataset="mtat", root=str(SMALL), split="directory")
    catalog = load_catalog(cfg, check_audio=False)
    assert catalog.name == "mtat" and catalog.root == str(SMALL.resolve())
    synthetic = load_catalog(
        DataConfig(dataset="synthetic", root=str(SMALL), split="directory"), check_audio=False
    )
    assert synthetic.name == "synthetic" and len(synthetic.clips) == len(catalog.clips)
    with pytest.raises(ConfigError, match="data.root is empty"):
        load_catalog(DataConfig(dataset="mtat"))


def test_shipped_tag_lists_agree():
    top50, columns, share = mtat.load_top50_tags(), mtat.load_tag_columns_188(), mtat.load_top50_frequency()
    assert len(top50) == len(set(top50)) == 50 and len(columns) == len(set(columns)) == 188
    assert set(top50) <= set(columns)
    assert list(share) == top50 and all(0 < s < 0.2 for s in share.values())
    assert {int(i) for i in mtat.load_broken_clips()} == {int(i) for i in BROKEN}


# -- wrong or truncated files ---------------------------------------------------------------------------------


def _lines() -> list[str]:
    return (SMALL / "annotations_final.csv").read_bytes().decode().split("\r\n")


def _write(tmp_path: Path, lines: list[str]) -> Path:
    (tmp_path / "annotations_final.csv").write_bytes("\r\n".join(lines).encode())
    return tmp_path


def test_row_with_150_columns(tmp_path):
    lines = _lines()
    lines[5] = "\t".join(lines[5].split("\t")[:150])
    with pytest.raises(
        MetadataError, match=r"annotations_final\.csv:6: expected 190 tab-separated fields.*got 150"
    ):
        mtat.load(_write(tmp_path, lines), check_audio=False)


def test_tag_cell_2(tmp_path):
    lines = _lines()
    cells = lines[3].split("\t")
    cells[7] = '"2"'
    lines[3] = "\t".join(cells)
    column = _lines()[0].split("\t")[7].strip('"')
    with pytest.raises(
        MetadataError, match=rf"annotations_final\.csv:4: tag cell '2' in column 8 \('{column}'\)"
    ):
        mtat.load(_write(tmp_path, lines), check_audio=False)


def test_missing_header_column(tmp_path):
    lines = _lines()
    lines[0] = "\t".join(lines[0].split("\t")[:-1])
    with pytest.raises(MetadataError, match=r"annotations_final\.csv:1: header must be clip_id.*mp3_path"):
        mtat.load(_write(tmp_path, lines), check_audio=False)


def test_truncated_file(tmp_path):
    raw = (SMALL / "annotations_final.csv").read_bytes()
    cut = raw[: raw.index(b"\r\n", len(raw) // 2) + 300]  # the middle of a row
    (tmp_path / "annotations_final.csv").write_bytes(cut)
    n_lines = cut.count(b"\r\n") + 1
    with pytest.raises(MetadataError, match=rf"annotations_final\.csv:{n_lines}: .*(truncated|unreadable)"):
        mtat.load(tmp_path, check_audio=False)


def test_missing_or_empty_file(tmp_path):
    with pytest.raises(MetadataError, match=r"annotations_final\.csv: cannot read.*datasets/mtat/README\.md"):
        mtat.load(tmp_path, check_audio=False)
    (tmp_path / "annotations_final.csv").write_bytes(b"")
    with pytest.raises(MetadataError, match="empty file"):
        mtat.load(tmp_path, check_audio=False)
