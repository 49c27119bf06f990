"""The common record every dataset loader produces: clips with multi-hot labels over a tag vocabulary.

A :class:`Catalog` is pure Python/numpy metadata (no audio is touched); the manifest validates files and the
pipeline reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hvd_magtag.errors import DataError

#: A metadata file is wrong or truncated; the message names the file, the line and what was expected.
#: The catalogs' name for :class:`hvd_magtag.errors.DataError` (exit code 3).
MetadataError = DataError


@dataclass(frozen=True)
class Clip:
    clip_id: str  # the dataset's own id (MTAT clip_id, Jamendo TRACK_ID, FMA track id, file stem)
    path: str  # absolute path of the audio file
    labels: np.ndarray  # float32 multi-hot [n_tags] over the catalog's vocabulary
    split: str  # train | valid | test | "" (unsplit)


@dataclass
class Catalog:
    name: str  # dataset name, e.g. "mtat", "synthetic", "jamendo", "fma", "folder"
    root: str  # dataset root folder (absolute)
    tags: list[str]  # the vocabulary, in model output order
    clips: list[Clip]
    excluded: list[tuple[str, str]] = field(default_factory=list)  # (clip id or path, reason) left out
    info: dict[str, dict[str, str]] = field(default_factory=dict)  # clip_id -> {"artist": .., "title": ..}

    @property
    def n_tags(self) -> int:
        return len(self.tags)

    def split(self, name: str) -> list[Clip]:
        """Clips of one split (train | valid | test)."""
        return [c for c in self.clips if c.split == name]

    def labels(self, clips: list[Clip] | None = None) -> np.ndarray:
        clips = self.clips if clips is None else clips
        if not clips:
            return np.zeros((0, self.n_tags), np.float32)
        return np.stack([c.labels for c in clips]).astype(np.float32)

    def split_counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.clips:
            out[c.split] = out.get(c.split, 0) + 1
        return out

    def without(self, bad_paths: set[str], reason: str = "failed validation") -> Catalog:
        """A copy without clips whose path is in ``bad_paths`` (recorded in ``excluded``)."""
        keep = [c for c in self.clips if c.path not in bad_paths]
        gone = [(c.clip_id, reason) for c in self.clips if c.path in bad_paths]
        return Catalog(self.name, self.root, list(self.tags), keep, self.excluded + gone, self.info)
