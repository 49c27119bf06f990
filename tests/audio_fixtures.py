"""The committed real-encoder audio fixtures (tests/fixtures/audio/, made by its make_fixtures.py) and a fast
"is this window an exact excerpt of that decode" index."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "audio"


@lru_cache(maxsize=1)
def catalog() -> dict:
    """fixtures.json: ``{"tools": {...}, "files": {relative path: {"kind", "usable", "bad"?, ...}}}``."""
    return json.loads((FIXTURES / "fixtures.json").read_text())


def path(name: str) -> Path:
    p = FIXTURES / name
    if not p.is_file():
        raise FileNotFoundError(
            f"{p}: fixture missing; regenerate with python {FIXTURES / 'make_fixtures.py'}"
        )
    return p


def names(prefix: str = "", *, usable: bool | None = True) -> list[str]:
    """Fixture names (relative paths) starting with ``prefix``; ``usable`` True / False / None = both."""
    files = catalog()["files"]
    return sorted(
        n for n, e in files.items() if n.startswith(prefix) and (usable is None or e["usable"] == usable)
    )


class ExcerptIndex:
    """Where windows lie in a 1-D signal ``full``: the positions of every ``key``-sample run are hashed once,
    so locating a window costs a dict lookup (cross-correlating thousands of windows would take minutes)."""

    def __init__(self, full: np.ndarray, key: int = 6):
        self.full = np.ascontiguousarray(full, np.float32)
        self.key = key
        runs = np.lib.stride_tricks.sliding_window_view(self.full, key)
        self.positions: dict[bytes, list[int]] = {}
        for i, run in enumerate(runs.view(np.dtype((np.void, 4 * key))).ravel().tolist()):
            self.positions.setdefault(run, []).append(i)

    def locate(self, window: np.ndarray) -> int:
        """Start of ``window`` in ``full`` when it is an exact (bit-identical) excerpt, else -1."""
        window = np.ascontiguousarray(window, np.float32)
        head = window[: self.key].tobytes()
        for start in self.positions.get(head, ()):
            if start + len(window) <= len(self.full) and np.array_equal(
                self.full[start : start + len(window)], window
            ):
                return start
        return -1
