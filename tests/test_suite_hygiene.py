"""The suite stands on the repository alone: no test looks outside it, none turns a broken install into a
skip, and every skip that remains is listed with its reason in the README."""

from __future__ import annotations

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
README = TESTS.parent / "README.md"
SOURCES = sorted(p for p in TESTS.rglob("*.py") if p != Path(__file__).resolve())


def test_no_test_refers_outside_the_repository():
    outside = re.compile(r"""["'/](work|shared)/|\.\./shared|parents\[[2-9]\]\s*/\s*["']shared""")
    assert not [
        f"{p.relative_to(TESTS)}:{i}"
        for p in SOURCES
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if outside.search(line)
    ]


def test_no_importorskip():
    assert not [p.name for p in SOURCES if "importorskip" in p.read_text()]


def test_every_skip_is_listed_in_the_readme():
    table = README.read_text().split("The only skips", 1)[1].split("\n## ", 1)[0]
    skipping = re.compile(r"pytest\.skip\(|mark\.skip(if)?\b|pytest\.xfail|mark\.xfail")
    sites = {p.name for p in SOURCES if skipping.search(p.read_text())}
    assert sites, "no skip is left: drop the README's table of skips"
    assert sites == set(re.findall(r"`(test_\w+\.py)::", table))
