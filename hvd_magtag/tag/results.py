"""What tagging a file gives: a :class:`TagResult`, or a :class:`FileFailure` with a one-line reason."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TagResult:
    """Tags of one file (or waveform).

    clip:      float32 [n_tags] clip probabilities.
    taggram:   float32 [n_rows, n_tags] window-level probabilities (one row per window).
    embedding: float32 [n_windows, D] per-window embeddings.
    duration:  seconds of audio read (at the source rate).
    """

    path: str
    tags: list[str]
    clip: np.ndarray
    taggram: np.ndarray
    embedding: np.ndarray
    duration: float

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` most probable tags, highest first, as (tag, probability)."""
        order = np.argsort(-self.clip, kind="stable")[: max(k, 0)]
        return [(self.tags[i], float(self.clip[i])) for i in order]


@dataclass
class FileFailure:
    """A file that could not be tagged: ``error`` is a one-line reason."""

    path: str
    error: str
