"""What ships under datasets/: checksums hold, every loader's shipped list parses."""

from __future__ import annotations

import hashlib

import pytest

from hvd_magtag.data import fma, jamendo
from hvd_magtag.data.catalog import datasets_dir

SUMS = sorted(datasets_dir().glob("*/SHA256SUMS"))


@pytest.mark.parametrize("sums", SUMS, ids=[p.parent.name for p in SUMS])
def test_shipped_files_match_their_checksums(sums):
    entries = [line.split("  ", 1) for line in sums.read_text().splitlines() if line.strip()]
    assert entries
    for digest, name in entries:
        assert hashlib.sha256((sums.parent / name).read_bytes()).hexdigest() == digest, (
            f"{sums.parent / name}"
        )


def test_every_dataset_folder_has_a_readme():
    for name in ("mtat", "jamendo", "fma", "folder"):
        assert (datasets_dir() / name / "README.md").is_file()


def test_other_shipped_lists():
    top50 = jamendo.load_top50_tags()
    assert len(top50) == 50 and all(t.split("---")[0] in jamendo.CATEGORIES for t in top50)
    assert set(fma.load_broken_clips()) == {99134, 108925, 133297}
