"""Tag any song or a whole library: a Python API and a CLI that mirror each other.

Python::

    import hvd_magtag
    hvd_magtag.top_tags("song.mp3", model="runs/samplecnn", top_k=5)   # [("guitar", 0.81), ...]
    tags, grid = hvd_magtag.taggram("song.mp3", model=RUN)              # grid: [n_windows, n_tags]
    hvd_magtag.embed("song.mp3", model=RUN)                             # {"windows": [n_windows, D], "clip": [D]}
    tagger = hvd_magtag.Tagger(RUN)                                      # load once, reuse
    result = tagger.tag("song.mp3"); result.top(5)

Command line::

    python -m hvd_magtag.tag song.mp3 [more files or folders] --model RUN_DIR --top-k 5 \\
        [--format table|json|csv] [--out FILE] [--workers N] [--precision float32|bfloat16]

``model`` / ``--model`` is a run directory (``run.json``; its Keras model is rebuilt in memory with the best
weights) or an exported SavedModel folder (``saved_model.pb``, see :mod:`hvd_magtag.export`). Both run the
same graph functions (:func:`hvd_magtag.serving.tagging_module`).

Input: every format of :mod:`hvd_magtag.audio.formats` (mp3, wav of any sample type, flac, ogg Vorbis / Opus,
aiff, m4a AAC / ALAC, aac): decoded in the graph where its graph decoder takes the file, else in Python
(soundfile / PyAV); files the manifest would call unusable fail with its one-line reason. Mono or
multi-channel (averaged to mono); any
sample rate (resampled to the model's ``spec.sample_rate``); any length. The audio is cut into consecutive
windows of ``spec.window`` samples over the whole file, the last one zero-padded (a file shorter than one
window gives one zero-padded window). Probabilities are sigmoid outputs in [0, 1]; a file's clip
probabilities are the mean of its window probabilities (split models; see :mod:`hvd_magtag.export` for
superpool models). Long files are streamed in segments, so memory stays bounded for hour-long files
(:mod:`hvd_magtag.tag.stream`). Folders are searched recursively for files with an extension in
``hvd_magtag.audio.FORMATS``; a progress bar (stderr) is shown when a folder is given, unless ``--quiet``.

Modules: :mod:`~hvd_magtag.tag.model` (which model, its identity), :mod:`~hvd_magtag.tag.stream` (decode ->
windows -> model, overlapped), :mod:`~hvd_magtag.tag.tagger` (the Tagger), :mod:`~hvd_magtag.tag.results`,
:mod:`~hvd_magtag.tag.api` (top_tags, taggram, embed), :mod:`~hvd_magtag.tag.output` (one document: table,
JSON, CSV), :mod:`~hvd_magtag.tag.cli` (the command line and its exit codes).

Importing this package imports no TensorFlow: names are loaded on first use (PEP 562), so that
``hvd_magtag.top_tags`` and ``--help`` stay fast.
"""

from __future__ import annotations

import importlib

#: public name -> submodule defining it
_LAZY = {
    "Tagger": "hvd_magtag.tag.tagger",
    "TagResult": "hvd_magtag.tag.results",
    "FileFailure": "hvd_magtag.tag.results",
    "TaggerError": "hvd_magtag.tag.model",
    "MODEL_NOT_FOUND": "hvd_magtag.tag.model",
    "PRECISIONS": "hvd_magtag.tag.model",
    "top_tags": "hvd_magtag.tag.api",
    "taggram": "hvd_magtag.tag.api",
    "embed": "hvd_magtag.tag.api",
    "get_tagger": "hvd_magtag.tag.api",
    "audio_files": "hvd_magtag.tag.inputs",
    "to_json": "hvd_magtag.tag.output",
    "to_csv": "hvd_magtag.tag.output",
    "to_table": "hvd_magtag.tag.output",
    "JSON_SCHEMA_VERSION": "hvd_magtag.tag.output",
    "OUTPUT_FORMATS": "hvd_magtag.tag.output",
    "main": "hvd_magtag.tag.cli",
    "build_parser": "hvd_magtag.tag.cli",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hvd_magtag.tag' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
