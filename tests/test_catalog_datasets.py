"""What ships with the package for each dataset: checksums hold, every loader's shipped list parses, and the
human documentation of each dataset (how to obtain it) is in the repository's datasets/ folder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hvd_magtag import resources
from hvd_magtag.data import fma, jamendo

SHIPPED = resources.path("datasets")
SUMS = sorted(SHIPPED.glob("*/SHA256SUMS"))
DOCS = Path(__file__).resolve().parents[1] / "datasets"


@pytest.mark.parametrize("sums", SUMS, ids=[p.parent.name for p in SUMS])
def test_shipped_files_match_their_checksums(sums):
    entries = [line.split("  ", 1) for line in sums.read_text().splitlines() if line.strip()]
    assert entries
    listed = {name for _, name in entries}
    assert listed == {p.name for p in sums.parent.iterdir()} - {"SHA256SUMS"}, "every shipped file is summed"
    for digest, name in entries:
        assert hashlib.sha256((sums.parent / name).read_bytes()).hexdigest() == digest, (
            f"{sums.parent / name}"
        )


def test_every_dataset_has_documentation_and_only_documentation_in_datasets():
    for name in ("mtat", "jamendo", "fma", "folder"):
        assert (DOCS / name / "README.md").is_file()
    assert {p.parent.name for p in SUMS} == {"mtat", "jamendo", "fma"}
    # one home: the files the code reads live in the package, the datasets/ folder holds only READMEs
    assert {p.name for p in DOCS.rglob("*") if p.is_file()} == {"README.md"}


def test_other_shipped_lists():
    top50 = jamendo.load_top50_tags()
    assert len(top50) == 50 and all(t.split("---")[0] in jamendo.CATEGORIES for t in top50)
    assert set(fma.load_broken_clips()) == {99134, 108925, 133297}
