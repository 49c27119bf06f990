"""Catalog fixtures: the real public metadata committed under ``fixtures/catalogs/real`` (xz-compressed, see
``fixtures/catalogs/README.md``) and writers for the exact distributed formats (used by tests and
make_fixtures.py).

``annotations_final.csv`` is written as MTAT ships it: tab-separated, every field double-quoted (header
too), CRLF line ends, columns clip_id, the 188 tags (``load_tag_columns_188``), mp3_path.
"""

from __future__ import annotations

import functools
import json
import lzma
from pathlib import Path

import numpy as np

from hvd_magtag.data.mtat import load_tag_columns_188, load_top50_frequency, load_top50_tags

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "catalogs"
#: The public files themselves (each ``<name>.xz`` decompresses to the published bytes; SHA256SUMS holds them).
REAL = FIXTURES / "real"


def real_bytes(name: str) -> bytes:
    """The published bytes of ``REAL/<name>`` (stored as ``<name>.xz``), e.g. ``"mtat/index_MAGNA.tsv"``."""
    return lzma.decompress((REAL / f"{name}.xz").read_bytes())


def real_lines(name: str) -> list[str]:
    return real_bytes(name).decode("utf-8").splitlines()


@functools.cache
def _mtat_index() -> tuple[tuple[str, str, str], ...]:
    index = [line.split("\t") for line in real_lines("mtat/index_MAGNA.tsv")]
    labels: dict[str, str] = {}
    for name in ("mtat/val_gt_mtt.tsv", "mtat/test_gt_mtt.tsv"):  # folder c / folders d-f, top-50 vectors
        for line in real_lines(name):
            clip_id, vector = line.split("\t")
            labels[clip_id] = ",".join(str(i) for i, v in enumerate(json.loads(vector)) if v)
    lee_train = {p.strip().replace(".npy", ".mp3") for p in real_lines("mtat/train_list_pub.txt")}
    rows = []
    for clip_id, mp3_path in index:
        if mp3_path[0] in "cdef":
            top50 = labels[clip_id]
        else:
            top50 = "+" if mp3_path in lee_train else ""
        rows.append((clip_id, mp3_path, top50))
    return tuple(rows)


def read_mtat_index() -> list[tuple[str, str, str]]:
    """(clip_id, mp3_path, top50) for all 25,863 real MTAT clips, in the file order of the real index.

    top50 is "i,j,..." (indices into the canonical top-50 list: the real labels of folders c-f, from
    musicnn-training's val/test ground truth), "+" for a clip of folders 0-b in Lee et al.'s clean train list
    (at least one top-50 tag; its labels are not in a small public file) or "" (none).
    """
    return list(_mtat_index())


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
