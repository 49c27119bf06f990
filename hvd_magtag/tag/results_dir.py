"""A results folder: per-file records written atomically in parts, merged into tables; resumable.

Layout (``--out DIR``)::

    DIR/
      job.json          schema, the model's identity (weights SHA-256, spec, tags, precision), the options
                        that shape the records (top_k, arrays), and one entry per run (ranks, start, command)
      parts/            part-run0001-rank0000-000003.jsonl   one JSON record per file, as ranks finish them
                        part-run0001-rank0000-000003.npz     its taggrams / embeddings (--taggrams/--embeddings)
      tags.jsonl        merged: one record per file (below), sorted by path
      tags.csv          path, duration_s, n_windows, error, top_tags ("a;b;c"), then one probability column per tag
      tags.parquet      the same table (pyarrow)
      summary.json      files, tagged, failed (with reasons), hours of audio, this run's wall time per phase
      .lock             held (flock) by the job's rank 0 while it runs

Record (one line of a part, and of ``tags.jsonl``)::

    {"path": "/abs/song.mp3", "error": null,          # or a one-line reason (then the numbers are null)
     "duration_s": 29.1, "n_windows": 15,
     "top": [["guitar", 0.81], ...],                   # top_k, highest first
     "probs": [0.81, ...],                             # every tag, in job.json's order
     "arrays": "part-run0001-rank0000-000003.npz",     # where its taggram / embedding are, or null
     "run": 1, "rank": 0}

Why it is safe: a part is written whole or not at all (:mod:`hvd_magtag.fsutil`: temporary, fsync, rename;
the ``.npz`` before its ``.jsonl``), a file is *done* once a part holds its record, and every run assigns each
file that is not done to exactly one rank; so a rerun after a crash or ``kill -9`` of any rank tags only
what is missing and the merge finds exactly one record per file. A rerun with ``--retry-failed`` tags failed
files again; the merge then keeps the newest record (parts sort by run).

Arrays (``--taggrams``, ``--embeddings``): one ``.npz`` per part (numpy; every rank writes its own files, a
part is never appended to, so a killed writer cannot corrupt what is there): ``paths`` [n], ``offsets``
[n + 1] (file i's windows are rows ``offsets[i]:offsets[i+1]``), ``taggram`` [windows, n_tags],
``embedding`` [windows, D], ``clip_embedding`` [n, D]. :func:`load_arrays` reads them back by file.
Why not one HDF5 (or Zarr) store: speed is not the reason (a 64-file part, 960 windows x (50 + 512) float32,
took 4.1 ms as .npz + fsync and 5.5 ms as an HDF5 append + flush + fsync here); a single appended file needs
one writer or locking across ranks, and a rank killed mid-append can leave it unreadable, while a part file
is complete or absent.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hvd_magtag import fsutil
from hvd_magtag.errors import ConfigError, RunDirError
from hvd_magtag.tag.results import FileFailure, TagResult

#: Version of the results folder's layout and records.
RESULTS_SCHEMA = 1
#: Arrays that can be stored per window (and per file) with --taggrams / --embeddings.
ARRAYS = ("taggram", "embedding")
#: Fixed columns of tags.csv / tags.parquet (then one column per tag).
TABLE_COLUMNS = ("path", "duration_s", "n_windows", "error", "top_tags")
JOB_FILE, SUMMARY_FILE, LOCK_FILE = "job.json", "summary.json", ".lock"
PARTS = "parts"
MERGED_JSONL, MERGED_CSV, MERGED_PARQUET = "tags.jsonl", "tags.csv", "tags.parquet"


class ResultsError(ConfigError):
    """The results folder holds results of another model or other options (exit 2, like resuming a run
    directory with another architecture)."""


class ResultsBusyError(RunDirError):
    """Another job is writing the results folder (exit 4)."""


def record_of(result: TagResult | FileFailure, top_k: int, run: int, rank: int, arrays: str | None) -> dict:
    """The JSON record (module docstring) of one file's result."""
    if isinstance(result, FileFailure):
        return {"path": result.path, "error": result.error, "duration_s": None, "n_windows": None, "top": [],
                "probs": None, "arrays": None, "run": run, "rank": rank}  # fmt: skip
    return {
        "path": result.path,
        "error": None,
        "duration_s": round(float(result.duration), 6),
        "n_windows": int(result.taggram.shape[0]),
        "top": [[t, p] for t, p in result.top(top_k)],
        "probs": [float(p) for p in result.clip],
        "arrays": arrays,
        "run": run,
        "rank": rank,
    }


@dataclass
class ResultsDir:
    """A results folder (see the module docstring)."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path).expanduser().resolve()

    parts = property(lambda self: self.path / PARTS)
    job_path = property(lambda self: self.path / JOB_FILE)
    summary_path = property(lambda self: self.path / SUMMARY_FILE)

    # -- the job ------------------------------------------------------------------------------------
    def lock(self):
        """Hold the folder's lock for the caller's life (an open file; the OS releases it when the process
        ends, even on SIGKILL). ResultsBusyError when another job holds it."""
        self.parts.mkdir(parents=True, exist_ok=True)
        handle = open(self.path / LOCK_FILE, "a+")  # noqa: SIM115 - kept open: the lock lives with it
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise ResultsBusyError(
                f"{self.path}: another tagging job is writing this results folder; wait for it or use another --out"
            ) from None
        return handle

    def read_job(self) -> dict | None:
        if not self.job_path.is_file():
            return None
        try:
            return json.loads(self.job_path.read_text())
        except ValueError as e:
            raise RunDirError(f"{self.job_path}: unreadable ({e}); use a new --out folder") from None

    def start_run(self, identity: dict, options: dict, ranks: int, command: str) -> int:
        """Check that this job may add to the folder (same model and options), record the run; its number."""
        job = self.read_job()
        if job is None:
            if any(self.parts.glob("part-*.jsonl")):
                raise RunDirError(f"{self.path}: has result parts but no {JOB_FILE}; use a new --out folder")
            job = {"schema": RESULTS_SCHEMA, "model": identity, "options": options, "runs": []}
        else:
            problem = mixing_problem(job, identity, options)
            if problem:
                raise ResultsError(f"{self.path}: {problem}")
        run = len(job["runs"]) + 1
        job["runs"].append({"run": run, "ranks": ranks, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "command": command})  # fmt: skip
        fsutil.atomic_write_json(self.job_path, job)
        return run

    def clean(self) -> None:
        """Remove what killed writers left: temporaries and array files whose records were never written.
        Call it only while holding :meth:`lock`, before any rank writes."""
        fsutil.remove_stale(self.parts)
        for arrays in self.parts.glob("part-*.npz"):
            if not arrays.with_suffix(".jsonl").exists():
                arrays.unlink()

    # -- parts --------------------------------------------------------------------------------------
    def part_name(self, run: int, rank: int, seq: int) -> str:
        return f"part-run{run:04d}-rank{rank:04d}-{seq:06d}"

    def write_part(self, name: str, records: list[dict], arrays: dict[str, np.ndarray] | None) -> None:
        """One part, atomically: its arrays first, then the records that point at them."""
        if arrays is not None:
            with fsutil.atomic_path(self.parts / f"{name}.npz") as tmp:
                np.savez(tmp, **arrays)
        text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        fsutil.atomic_write(self.parts / f"{name}.jsonl", text)

    def part_files(self, run: int | None = None) -> list[Path]:
        pattern = f"part-run{run:04d}-*.jsonl" if run else "part-*.jsonl"
        return sorted(self.parts.glob(pattern))

    def iter_records(self, files: Iterable[Path] | None = None) -> Iterator[dict]:
        """Every record of every part (or of ``files``), in part order (oldest run first)."""
        for part in self.part_files() if files is None else files:
            for line in part.read_text().splitlines():
                if line.strip():
                    yield json.loads(line)

    def latest_records(self) -> dict[str, dict]:
        """path -> its newest record."""
        return {r["path"]: r for r in self.iter_records()}

    def done(self, retry_failed: bool = False) -> set[str]:
        """Paths that have a record (a successful one, with ``retry_failed``)."""
        return {p for p, r in self.latest_records().items() if not (retry_failed and r["error"])}

    # -- merging ------------------------------------------------------------------------------------
    def merge(self, tags: list[str]) -> list[dict]:
        """Write tags.jsonl, tags.csv and tags.parquet (one row per file, sorted by path); the records."""
        records = sorted(self.latest_records().values(), key=lambda r: r["path"])
        fsutil.atomic_write(self.path / MERGED_JSONL, "".join(json.dumps(r) + "\n" for r in records))
        columns, rows = table(records, tags)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
        fsutil.atomic_write(self.path / MERGED_CSV, buf.getvalue())
        write_parquet(self.path / MERGED_PARQUET, columns, rows)
        return records


def mixing_problem(job: dict, identity: dict, options: dict) -> str | None:
    """Why results of ``identity`` / ``options`` must not join ``job``'s, or None (the model's folder may
    have moved: its weights, spec, tags and precision are what count)."""
    old = {k: v for k, v in job.get("model", {}).items() if k != "path"}
    new = {k: v for k, v in identity.items() if k != "path"}
    if job.get("schema") != RESULTS_SCHEMA:
        return (
            f"written by results schema {job.get('schema')}, this is {RESULTS_SCHEMA}; use a new --out folder"
        )
    if old != new:
        what = ", ".join(k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))
        return (
            f"holds results of another model ({what} differ: {job['model'].get('path')}); use a new --out "
            "folder or the same --model"
        )
    if job.get("options") != options:
        what = ", ".join(f"{k} {job['options'].get(k)!r} -> {v!r}" for k, v in options.items()
                         if job["options"].get(k) != v)  # fmt: skip
        return f"was written with other options ({what}); use a new --out folder or the same options"
    return None


def table(records: list[dict], tags: list[str]) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows) of the per-file table: :data:`TABLE_COLUMNS` then one probability column per tag."""
    clash = sorted(set(tags) & set(TABLE_COLUMNS))
    if clash:
        raise ConfigError(f"tag names {clash} collide with the table's own columns {TABLE_COLUMNS}")
    rows = []
    for r in records:
        probs = r["probs"] or [None] * len(tags)
        top = ";".join(t for t, _ in r["top"])
        rows.append([r["path"], r["duration_s"], r["n_windows"], r["error"], top, *probs])
    return [*TABLE_COLUMNS, *tags], rows


def write_parquet(path: Path, columns: list[str], rows: list[list[Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = {c: [row[i] for row in rows] for i, c in enumerate(columns)}
    types = {"path": pa.string(), "duration_s": pa.float64(), "n_windows": pa.int64(), "error": pa.string(),
             "top_tags": pa.string()}  # fmt: skip
    schema = pa.schema([(c, types.get(c, pa.float32())) for c in columns])
    with fsutil.atomic_path(path) as tmp:
        pq.write_table(pa.table(data, schema=schema), tmp)


def load_arrays(
    results: str | os.PathLike, paths: Iterable[str] | None = None
) -> dict[str, dict[str, np.ndarray]]:
    """``{path: {"taggram": [n_windows, n_tags], "embedding": [n_windows, D], "clip_embedding": [D]}}`` for
    every tagged file of a results folder (or those in ``paths``), with whichever arrays were stored."""
    folder = ResultsDir(Path(results))
    wanted = set(paths) if paths is not None else None
    by_part: dict[str, list[str]] = {}
    for path, r in folder.latest_records().items():
        if r["arrays"] and (wanted is None or path in wanted):
            by_part.setdefault(r["arrays"], []).append(path)
    out: dict[str, dict[str, np.ndarray]] = {}
    for part, members in by_part.items():
        with np.load(folder.parts / part) as data:
            index = {p: i for i, p in enumerate(data["paths"].tolist())}
            offsets = data["offsets"]
            for path in members:
                i = index[path]
                arrays = {k: data[k][offsets[i] : offsets[i + 1]] for k in ARRAYS if k in data}
                if "clip_embedding" in data:
                    arrays["clip_embedding"] = data["clip_embedding"][i]
                out[path] = arrays
    return out


def pack_arrays(results: list[TagResult], wanted: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The ``.npz`` content (module docstring) for the successful ``results`` of one part."""
    lengths = [r.taggram.shape[0] for r in results]
    out: dict[str, np.ndarray] = {
        "paths": np.array([r.path for r in results]),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
    }
    if "taggram" in wanted:
        out["taggram"] = np.concatenate([r.taggram for r in results]).astype(np.float32)
    if "embedding" in wanted:
        out["embedding"] = np.concatenate([r.embedding for r in results]).astype(np.float32)
        out["clip_embedding"] = np.stack([r.embedding.mean(axis=0) for r in results]).astype(np.float32)
    return out
