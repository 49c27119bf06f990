"""The Python API, mirroring the command line: ``top_tags``, ``taggram``, ``embed`` (musicnn's shape).

Importing this module (``hvd_magtag.top_tags``) does not import TensorFlow; the first call loads the model
(once per path and weights, then reused).
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np

from hvd_magtag.pretrained import resolve_model


@lru_cache(maxsize=4)
def _cached_tagger(path: str, weights: str):
    from hvd_magtag.tag.tagger import Tagger  # TensorFlow: only when a model is first used

    return Tagger(path, weights=weights)


def get_tagger(model, weights: str = "best"):
    """A :class:`~hvd_magtag.tag.tagger.Tagger` for ``model``: a Tagger is returned as is; a path (run
    directory, export folder or pretrained name such as ``MTT_musicnn``) is loaded once per process and reused."""
    if not isinstance(model, (str, os.PathLike)):
        return model

    return _cached_tagger(str(resolve_model(model)), weights)


def top_tags(path: str | os.PathLike, model, top_k: int = 10) -> list[tuple[str, float]]:
    """The ``top_k`` most probable tags of an audio file, highest first, as (tag, probability in [0, 1]).

    ``model`` is a run directory, an exported SavedModel folder or a Tagger."""
    return get_tagger(model).tag(path).top(top_k)


def taggram(path: str | os.PathLike, model) -> tuple[list[str], np.ndarray]:
    """(tag names, probabilities float32 [n_windows, n_tags]): the window-level tags over time, one row per
    ``spec.window`` samples (``Tagger(model).spec.window_seconds`` seconds) of the file."""
    result = get_tagger(model).tag(path)
    return result.tags, result.taggram


def embed(path: str | os.PathLike, model) -> dict[str, np.ndarray]:
    """Embeddings of a file: ``{"windows": float32 [n_windows, D], "clip": float32 [D]}`` (clip = mean of
    windows); the features before the model's classifier."""
    emb = get_tagger(model).tag(path).embedding
    return {"windows": emb, "clip": emb.mean(axis=0)}
