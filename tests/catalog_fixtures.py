"""Writers for catalog fixtures in the exact distributed formats (used by tests and make_fixtures.py).

``annotations_final.csv`` is written as MTAT ships it: tab-separated, every field double-quoted (header
too), CRLF line ends, columns clip_id, the 188 tags (datasets/mtat/tag_columns_188.txt), mp3_path.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from hvd_magtag.data.mtat import load_tag_columns_188, load_top50_frequency, load_top50_tags

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "catalogs"
MTAT_INDEX = FIXTURES / "mtat_index_top50.tsv.gz"


def read_mtat_index() -> list[tuple[str, str, str]]:
    """(clip_id, mp3_path, top50) for all 25,863 real MTAT clips (see fixtures/catalogs/README.md)."""
    rows = []
    with gzip.open(MTAT_INDEX, "rt") as f:
        for line in f:
            if line.startswith("#") or line.startswith("clip_id\t"):
                continue
            clip_id, mp3_path, top50 = line.rstrip("\n").split("\t")
            rows.append((clip_id, mp3_path, top50))
    return rows


def _quoted(fields: list[str]) -> str:
    return "\t".join(f'"{f}"' for f in fields) + "\r\n"


def write_annotations(path: Path, rows: list[tuple[str, str, str]], *, seed: int = 0) -> None:
    """Write ``annotations_final.csv`` for ``rows`` = (clip_id, mp3_path, top50).

    top50 is "i,j,..." (indices into the canonical top-50 list: those tags exactly), "+" (one to three
    top-50 tags drawn with the published tag shares) or "" (no top-50 tag). About a third of the clips also
    get one tag outside the top 50, as in the real file.
    """
    columns = load_tag_columns_188()
    top50 = load_top50_tags()
    share = np.array(list(load_top50_frequency().values()))
    others = [c for c in columns if c not in set(top50)]
    position = {tag: j for j, tag in enumerate(columns)}
    rng = np.random.default_rng(seed)
    lines = [_quoted(["clip_id", *columns, "mp3_path"])]
    for clip_id, mp3_path, spec in rows:
        cells = ["0"] * len(columns)
        if spec == "+":
            chosen = rng.choice(
                len(top50), size=int(rng.integers(1, 4)), replace=False, p=share / share.sum()
            )
        else:
            chosen = [int(i) for i in spec.split(",")] if spec else []
        for i in chosen:
            cells[position[top50[i]]] = "1"
        if rng.random() < 0.35:
            cells[position[others[int(rng.integers(len(others)))]]] = "1"
        lines.append(_quoted([clip_id, *cells, mp3_path]))
    path.write_bytes("".join(lines).encode("utf-8"))


def write_clip_info(path: Path, rows: list[tuple[str, str]]) -> None:
    """``clip_info_final.csv`` (tab-separated, quoted, CRLF) for (clip_id, mp3_path); names taken from the
    path (``<artist>-<album>-<track>-<title>-<start>-<end>.mp3``), URLs illustrative."""
    from hvd_magtag.data.mtat import CLIP_INFO_COLUMNS

    header = list(CLIP_INFO_COLUMNS)
    lines = [_quoted(header)]
    for clip_id, mp3_path in rows:
        parts = Path(mp3_path).stem.split("-")
        artist, album, track = (p.replace("_", " ") for p in parts[:3])
        title = " ".join(parts[3:-2]).replace("_", " ")
        url = f"http://www.magnatune.com/artists/albums/{parts[1]}/"
        lines.append(
            _quoted([clip_id, track, title, artist, album, url, parts[-2], parts[-1], url, mp3_path])
        )
    path.write_bytes("".join(lines).encode("utf-8"))
