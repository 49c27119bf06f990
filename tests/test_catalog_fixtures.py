"""The committed public metadata (fixtures/catalogs/real) is the published bytes, and the small fixtures are
what make_fixtures.py derives from it."""

from __future__ import annotations

import hashlib
import importlib.util

from catalog_fixtures import FIXTURES, REAL, real_bytes


def test_real_files_are_the_published_bytes():
    entries = [line.split("  ", 1) for line in (REAL / "SHA256SUMS").read_text().splitlines() if line]
    assert len(entries) == 9
    assert {name for _, name in entries} == {
        p.relative_to(REAL).as_posix()[: -len(".xz")] for p in REAL.rglob("*.xz")
    }, "every committed file is summed"
    for digest, name in entries:
        assert hashlib.sha256(real_bytes(name)).hexdigest() == digest, name


def test_small_fixtures_are_regenerated_byte_for_byte(tmp_path):
    spec = importlib.util.spec_from_file_location("make_fixtures", FIXTURES / "make_fixtures.py")
    make_fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_fixtures)
    make_fixtures.mtat(tmp_path)
    make_fixtures.jamendo(tmp_path)
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert len(written) == 2 + 6
    for rel in written:
        assert (tmp_path / rel).read_bytes() == (FIXTURES / rel).read_bytes(), rel
