"""The committed musicnn parity fixtures (tests/fixtures/musicnn, made by its make_references.py)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "musicnn"
CLIPS_DIR = FIXTURES / "clips"


@lru_cache(maxsize=1)
def summary() -> dict:
    return json.loads((FIXTURES / "references.json").read_text())


@lru_cache(maxsize=1)
def arrays() -> dict[str, np.ndarray]:
    with np.load(FIXTURES / "references.npz") as f:
        return {k: f[k] for k in f.files}


def clip_names() -> list[str]:
    return sorted(summary()["clips"])


def clip_path(name: str) -> Path:
    return CLIPS_DIR / f"{name}.flac"


def clip_samples(name: str) -> np.ndarray:
    """The clip's samples as float32 [samples] in [-1, 1) (16-bit FLAC / 32768, as librosa reads it)."""
    import soundfile

    y, rate = soundfile.read(clip_path(name), dtype="float32")
    assert rate == summary()["settings"]["sr"]
    return y
