"""One document of tags for the files of one command: ``table`` (for people), ``json`` (schema 1), ``csv``.

JSON (``--format json``), schema version :data:`JSON_SCHEMA_VERSION`::

    {"schema": 1,
     "model": "/abs/path/of/model",          # as resolved
     "tags": ["guitar", ...],                 # the model's whole vocabulary, in output order
     "top_k": 5,
     "files": [{"path": "/abs/song.mp3",      # in the order given (folders: sorted)
                "duration": 29.1,             # seconds of audio decoded; null on error
                "top": [{"tag": "guitar", "prob": 0.81}, ...],   # top_k, highest first; [] on error
                "error": null}]}              # or a one-line message saying why the file failed

CSV (``--format csv``): a header ``path,rank,tag,prob,error`` and one row per (file, rank); a failed file has
one row with empty rank/tag/prob and the error.

A results folder (``--out DIR``, :mod:`hvd_magtag.tag.library`) has its own per-file tables.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from hvd_magtag.tag.results import FileFailure, TagResult

#: Version of the JSON document schema documented above.
JSON_SCHEMA_VERSION = 1
#: Output formats of one document.
OUTPUT_FORMATS = ("table", "json", "csv")


def to_json(
    model: str, tags: list[str], top_k: int, results: list[TagResult | FileFailure]
) -> dict[str, Any]:
    """The documented JSON document (schema version 1, see the module docstring)."""
    files = []
    for r in results:
        if isinstance(r, FileFailure):
            files.append({"path": r.path, "duration": None, "top": [], "error": r.error})
        else:
            top = [{"tag": t, "prob": round(p, 6)} for t, p in r.top(top_k)]
            files.append({"path": r.path, "duration": round(r.duration, 3), "top": top, "error": None})
    return {"schema": JSON_SCHEMA_VERSION, "model": model, "tags": list(tags), "top_k": top_k, "files": files}


def to_csv(results: list[TagResult | FileFailure], top_k: int) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "rank", "tag", "prob", "error"])
    for r in results:
        if isinstance(r, FileFailure):
            writer.writerow([r.path, "", "", "", r.error])
        else:
            for rank, (t, p) in enumerate(r.top(top_k), start=1):
                writer.writerow([r.path, rank, t, f"{p:.6f}", ""])
    return buf.getvalue()


def to_table(results: list[TagResult | FileFailure], top_k: int) -> str:
    lines = []
    for r in results:
        if isinstance(r, FileFailure):
            lines.append(f"{r.path}\n  FAILED: {r.error}")
            continue
        lines.append(f"{r.path}  ({r.duration:.1f} s)")
        width = max((len(t) for t, _ in r.top(top_k)), default=0)
        lines.extend(f"  {t:<{width}}  {p:.3f}" for t, p in r.top(top_k))
    return "\n".join(lines) + "\n"


def render(fmt: str, model: str, tags: list[str], top_k: int, results: list[TagResult | FileFailure]) -> str:
    """The document in ``fmt`` (one of :data:`OUTPUT_FORMATS`)."""
    if fmt == "json":
        return json.dumps(to_json(model, tags, top_k, results), indent=2) + "\n"
    if fmt == "csv":
        return to_csv(results, top_k)
    return to_table(results, top_k)
