"""Tag a whole music library into a resumable results folder, on one process or on many ranks.

    python -m hvd_magtag.tag ~/Music --model runs/demo --out ~/music-tags                     # one process
    horovodrun -np 4 python -m hvd_magtag.tag ~/Music --model runs/demo --out ~/music-tags    # four ranks
    launch/tag.sh 4 ~/Music --model runs/demo --out ~/music-tags                              # the same

What a job does (every rank runs this module; rank 0 alone writes the job file, merges and reports):

1. rank 0 locks the results folder (:mod:`hvd_magtag.tag.results_dir`), checks that it holds results of the
   same model and options (else a one-line error, exit 2), lists the library and the files already done;
   the plan is broadcast to every rank;
2. the files not done are validated once by :func:`hvd_magtag.data.manifest.scan`, each rank scanning a
   share balanced by file size; the results are exchanged (one broadcast per rank). Bad files (missing,
   empty, unsupported, garbage, truncated) become failure records with the manifest's reason;
3. the good files are sharded across ranks by the manifest's durations (longest first, each to the rank
   with the least audio so far), and every rank decodes and tags its share
   (:meth:`~hvd_magtag.tag.tagger.Tagger.iter_many`), committing a part every ``commit_files`` files or
   ``commit_seconds`` seconds;
4. after a barrier rank 0 merges the parts into ``tags.jsonl`` / ``tags.csv`` / ``tags.parquet`` and writes
   ``summary.json`` (files, failures with reasons, hours of audio, wall time per phase, peak memory per rank).

Rank 0 shows one progress bar for the whole job (files/s, hours of audio/s, ETA from the audio left), counting
the parts every rank commits. The results folder must be visible to every rank (one host, or a shared file
system across hosts).
"""

from __future__ import annotations

import mimetypes
import os
import resource
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hvd_magtag import distributed, fsutil
from hvd_magtag.audio import FORMATS
from hvd_magtag.errors import DataError
from hvd_magtag.tag.results import FileFailure, TagResult
from hvd_magtag.tag.results_dir import ARRAYS, ResultsDir, pack_arrays, record_of

#: Horovod's background cycle (ms) for a library job, unless HOROVOD_CYCLE_TIME is set: the job makes a few
#: collectives (plan, scan, barrier, summary), and at Horovod's default cycle each idle rank's background
#: thread used 35-40 % of its core (2 ranks, /proc thread ticks); at 100 ms it uses ~3 %.
HOROVOD_CYCLE_MS = 100
#: Files per committed part (at most): bounds the work a crash can lose.
COMMIT_FILES = 64
#: Seconds between commits (at most, checked when a file finishes).
COMMIT_SECONDS = 30.0
#: Seconds between progress bar refreshes (rank 0 counts the committed parts).
PROGRESS_SECONDS = 1.0
#: MIME types of playlists, not audio (``mimetypes`` files them under audio/).
_PLAYLISTS = ("audio/mpegurl", "audio/x-mpegurl", "audio/x-scpls")


@dataclass
class Options:
    """What shapes the records (stored in job.json; a rerun must match) and how the job runs."""

    top_k: int = 10
    arrays: tuple[str, ...] = ()
    workers: int | None = None
    retry_failed: bool = False
    commit_files: int = COMMIT_FILES
    commit_seconds: float = COMMIT_SECONDS
    progress: bool = True

    def recorded(self) -> dict:
        return {"top_k": self.top_k, "arrays": sorted(self.arrays)}


def library_files(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """Files and folders -> sorted absolute paths of the audio files in them: the suffixes the tagger reads
    and any other audio type (``mimetypes``: audio/*, playlists excepted), which the manifest names
    "unsupported". Files given explicitly are kept whatever they are."""

    out: set[str] = set()
    for item in inputs:
        p = Path(item).expanduser().resolve()
        if not p.is_dir():
            out.add(str(p))
            continue
        for f in p.rglob("*"):
            suffix = f.suffix.lower().lstrip(".")
            kind = mimetypes.guess_type(f.name)[0] or ""
            audio = suffix in FORMATS or (kind.startswith("audio/") and kind not in _PLAYLISTS)
            if audio and f.is_file():
                out.add(str(f))
    return sorted(out)


def balanced_shards(weights: Sequence[float], size: int) -> list[list[int]]:
    """Indices of ``weights`` split into ``size`` shards of nearly equal total: heaviest first, each to the
    lightest shard so far (ties: lowest rank), each shard in ascending index order. Deterministic, so every
    rank computes the same shards."""
    loads = [0.0] * size
    shards: list[list[int]] = [[] for _ in range(size)]
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        r = min(range(size), key=lambda r: (loads[r], r))
        shards[r].append(i)
        loads[r] += weights[i]
    return [sorted(s) for s in shards]


def gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank (one broadcast per rank; collective)."""
    ctx = distributed.context()
    return [
        distributed.broadcast_object(obj if r == ctx.rank else None, root_rank=r) for r in range(ctx.size)
    ]


def from_root(fn):
    """Run ``fn()`` on rank 0 and give every rank its result, or raise its error on every rank (so that a
    refusal on rank 0 never leaves the other ranks waiting in a collective)."""
    outcome = None
    if distributed.context().is_root:
        try:
            outcome = ("ok", fn())
        except Exception as e:  # handed to every rank, re-raised there
            outcome = ("error", e)
    kind, value = distributed.broadcast_object(outcome, root_rank=0)
    if kind == "error":
        raise value
    return value


# -- writing parts ------------------------------------------------------------------------------------------
@dataclass
class PartWriter:
    """Buffers one rank's records and commits them as parts (every ``commit_files`` files or
    ``commit_seconds`` seconds)."""

    results: ResultsDir
    run: int
    rank: int
    options: Options
    records: list[dict] = field(default_factory=list)
    tagged: list[TagResult] = field(default_factory=list)
    seq: int = 0
    last_commit: float = field(default_factory=time.monotonic)
    committed_files: int = 0
    committed_seconds: float = 0.0

    def add(self, result: TagResult | FileFailure) -> None:
        name = self.results.part_name(self.run, self.rank, self.seq + 1)
        arrays = f"{name}.npz" if self.options.arrays and isinstance(result, TagResult) else None
        self.records.append(record_of(result, self.options.top_k, self.run, self.rank, arrays))
        if isinstance(result, TagResult) and self.options.arrays:
            self.tagged.append(result)
        due = time.monotonic() - self.last_commit >= self.options.commit_seconds
        if len(self.records) >= self.options.commit_files or due:
            self.commit()

    def commit(self) -> None:
        if not self.records:
            return
        self.seq += 1
        name = self.results.part_name(self.run, self.rank, self.seq)
        arrays = pack_arrays(self.tagged, self.options.arrays) if self.tagged else None
        self.results.write_part(name, self.records, arrays)
        self.committed_files += len(self.records)
        self.committed_seconds += sum(r["duration_s"] or 0.0 for r in self.records)
        self.records, self.tagged, self.last_commit = [], [], time.monotonic()


# -- progress -----------------------------------------------------------------------------------------------
class Progress:
    """Rank 0's bar for the whole job: files and hours of audio committed by every rank (read from this run's
    parts) plus rank 0's own uncommitted files; ETA from the audio still to tag."""

    def __init__(
        self, results: ResultsDir, run: int, files: int, seconds: float, writer: PartWriter, show: bool
    ):
        self.results, self.run, self.writer = results, run, writer
        self.total_seconds = seconds
        self._seen: dict[Path, tuple[int, float]] = {}
        self._done = threading.Event()
        self.bar = None
        if show:
            self.bar = tqdm(total=files, unit="file", file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
                            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} files [{elapsed}{postfix}]")  # fmt: skip
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="tag-progress")

    def __enter__(self) -> Progress:
        if self.bar is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self.bar is not None:
            self._thread.join()
            self.refresh()
            self.bar.close()

    def counts(self) -> tuple[int, float]:
        """(files, seconds of audio) finished in this run so far, over every rank."""
        for part in self.results.part_files(self.run):
            if part not in self._seen and f"rank{self.writer.rank:04d}" not in part.name:
                records = list(self.results.iter_records([part]))
                self._seen[part] = (len(records), sum(r["duration_s"] or 0.0 for r in records))
        files = (
            sum(n for n, _ in self._seen.values()) + self.writer.committed_files + len(self.writer.records)
        )
        pending = sum(r["duration_s"] or 0.0 for r in self.writer.records)
        seconds = sum(s for _, s in self._seen.values()) + self.writer.committed_seconds + pending
        return files, seconds

    def refresh(self) -> None:
        files, seconds = self.counts()
        elapsed = max(time.monotonic() - self.started, 1e-9)
        hours_rate = seconds / 3600 / elapsed
        left = max(self.total_seconds - seconds, 0.0)
        eta = time.strftime("%H:%M:%S", time.gmtime(left / (seconds / elapsed))) if seconds > 0 else "?"
        self.bar.n = files
        self.bar.set_postfix_str(f"ETA {eta}, {files / elapsed:.2f} files/s, {hours_rate:.3f} h audio/s")

    def _loop(self) -> None:
        while not self._done.wait(PROGRESS_SECONDS):
            self.refresh()


# -- the job ------------------------------------------------------------------------------------------------
def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _plan(results: ResultsDir, inputs: Sequence[str], tagger, options: Options, ranks: int) -> dict:
    """Rank 0: lock, check and record the run; the files to do."""
    files = library_files(inputs)
    if not files:
        raise DataError(f"no audio files found in {' '.join(map(str, inputs))}")
    results.path.mkdir(parents=True, exist_ok=True)
    _LOCKS[results.path] = results.lock()  # released by tag_library when the job ends
    run = results.start_run(tagger.identity(), options.recorded(), ranks, " ".join(sys.argv))
    results.clean()
    done = results.done(options.retry_failed)
    return {"run": run, "files": len(files), "todo": [f for f in files if f not in done]}


#: Results-folder locks held by this process (rank 0) while its job runs.
_LOCKS: dict[Path, object] = {}


def _scan(todo: list[str], ctx, workers: int) -> dict:
    """Validate ``todo`` once (each rank its share, balanced by bytes); every rank gets every FileInfo."""
    from hvd_magtag.data.manifest import scan

    sizes = [os.path.getsize(p) if os.path.exists(p) else 0 for p in todo]
    mine = [todo[i] for i in balanced_shards(sizes, ctx.size)[ctx.rank]]
    infos: dict = {}
    for part in gather_objects(scan(mine, workers) if mine else {}):
        infos.update(part)
    return infos


def tag_library(tagger, inputs: Sequence[str], out: str | os.PathLike, options: Options) -> dict:
    """Run the job (module docstring) on this rank; returns the summary (``summary.json``) on every rank.

    Collective: every rank calls it with the same arguments, after :func:`hvd_magtag.distributed.init`."""
    ctx = distributed.context()
    results = ResultsDir(Path(out))
    try:
        return _job(tagger, inputs, results, options, ctx)
    finally:
        lock = _LOCKS.pop(results.path, None)
        if lock is not None:
            lock.close()


def _job(tagger, inputs: Sequence[str], results: ResultsDir, options: Options, ctx) -> dict:
    started = time.monotonic()
    plan = from_root(lambda: _plan(results, inputs, tagger, options, ctx.size))
    run, todo = plan["run"], plan["todo"]
    workers = options.workers or ctx.threads
    tagger.predict_windows(np.zeros((1, tagger.spec.window), np.float32))  # trace the model once, up front
    distributed.barrier()  # every rank ready: a rank slower to start would otherwise count as scan time
    clock = {"started": started, "ready": time.monotonic()}  # start-up: the plan and the models' traces
    infos = _scan(todo, ctx, workers)
    clock["scanned"] = time.monotonic()

    writer = PartWriter(results, run, ctx.rank, options)
    bad = sorted(p for p in todo if not infos[p].ok)
    for i in balanced_shards([1.0] * len(bad), ctx.size)[ctx.rank]:  # each rank records a share
        writer.add(FileFailure(bad[i], infos[bad[i]].reason))
    good = [p for p in todo if infos[p].ok]
    durations = [infos[p].duration for p in good]
    mine = [good[i] for i in balanced_shards(durations, ctx.size)[ctx.rank]]
    with Progress(results, run, len(todo), sum(durations), writer, options.progress and ctx.is_root):
        for _, result in tagger.iter_many(mine, workers=workers):
            writer.add(result)
        writer.commit()
        distributed.barrier()
    clock["tagged"] = time.monotonic()
    rss = gather_objects(_peak_rss_mb())
    return from_root(
        lambda: _summary(results, plan, results.merge(tagger.tags), ctx.size, clock, rss, sum(durations))
    )


def _summary(results, plan, records, ranks, clock: dict, rss, seconds_todo) -> dict:
    """``clock``: monotonic seconds at which the job ``started``, was ``ready`` (planned and the model traced),
    had ``scanned`` its files and ``tagged`` them."""
    failures = [{"path": r["path"], "reason": r["error"]} for r in records if r["error"]]
    this_run = [r for r in records if r["run"] == plan["run"]]
    summary = {
        "schema": 1,
        "results": str(results.path),
        "files": len(records),
        "tagged": len(records) - len(failures),
        "failed": len(failures),
        "failures": failures,
        "hours_of_audio": round(sum(r["duration_s"] or 0.0 for r in records) / 3600, 4),
        "this_run": {
            "run": plan["run"],
            "ranks": ranks,
            "files_in_inputs": plan["files"],
            "already_done": plan["files"] - len(plan["todo"]),
            "tagged": sum(1 for r in this_run if not r["error"]),
            "failed": sum(1 for r in this_run if r["error"]),
            "hours_of_audio": round(seconds_todo / 3600, 4),
            "wall_seconds": round(time.monotonic() - clock["started"], 2),
            "startup_seconds": round(clock["ready"] - clock["started"], 2),
            "scan_seconds": round(clock["scanned"] - clock["ready"], 2),
            "tag_seconds": round(clock["tagged"] - clock["scanned"], 2),
            "peak_rss_mb_per_rank": [round(x, 1) for x in rss],
        },
    }

    fsutil.atomic_write_json(results.summary_path, summary)
    return summary


def format_summary(summary: dict) -> str:
    """A few lines for people (stderr)."""
    run = summary["this_run"]
    lines = [
        f"{summary['files']} files in {summary['results']}: {summary['tagged']} tagged, {summary['failed']} "
        f"failed, {summary['hours_of_audio']:.2f} h of audio",
        f"this run ({run['ranks']} rank(s)): {run['tagged']} tagged, {run['failed']} failed, "
        f"{run['already_done']} already done; {run['wall_seconds']:.1f} s (start-up {run['startup_seconds']:.1f} s, scan {run['scan_seconds']:.1f} s, "
        f"tag {run['tag_seconds']:.1f} s), peak memory per rank {', '.join(f'{m:.0f}' for m in run['peak_rss_mb_per_rank'])} MB",
    ]
    lines += [f"  FAILED {f['path']}: {f['reason']}" for f in summary["failures"]]
    return "\n".join(lines)


__all__ = ["ARRAYS", "Options", "balanced_shards", "format_summary", "library_files", "tag_library"]
