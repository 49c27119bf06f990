"""Writing the synthetic dataset: plan, render in a process pool, encode mp3, write the MTAT files.

``python -m hvd_magtag.data.synth --out DIR --clips N [--seconds S] [--seed K] [--workers W]`` (:func:`main`,
or :func:`generate` from Python) writes the layout described in :mod:`hvd_magtag.data.synth`; without
``--out``, to ``hvd_magtag.locations.dataset_dir("synthetic")``.

``--workers`` processes synthesize (numpy/scipy only, fast to start); this process encodes mp3 with
``tfio.audio.encode_mp3`` and writes, so only the parent imports TensorFlow. Every clip is rendered with its
own ``(seed, clip index)`` generator and written by this process in CSV order, so the files and the CSV are
byte-identical for any number of workers.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from hvd_magtag import cli, fsutil, locations
from hvd_magtag.data.mtat import (
    ANNOTATIONS,
    CLIP_INFO,
    CLIP_INFO_COLUMNS,
    DIRECTORY_SPLIT,
    load_tag_columns_188,
)
from hvd_magtag.data.synth.instruments import SR, render
from hvd_magtag.data.synth.scene import (
    BROKEN_RATE,
    FOLDERS,
    INAUDIBLE_DB,
    ClipPlan,
    drop_inaudible_tags,
    label_matrix,
    plan_dataset,
)

log = logging.getLogger(__name__)

DEFAULT_SECONDS = 29.1  # MTAT clip length (s); the demo uses shorter clips
STAMP = "synth.json"
GENERATOR_VERSION = 3  # bumped whenever the same arguments would give different audio or labels
#: Seconds between progress lines while clips are written.
PROGRESS_EVERY_S = 15


def encode_mp3(audio: np.ndarray) -> bytes:
    """mp3 bytes of float32 mono audio [samples] at :data:`SR` Hz (tfio.audio.encode_mp3, LAME)."""
    import tensorflow_io as tfio  # imports TensorFlow: here, so that the render workers never do

    return tfio.audio.encode_mp3(audio.reshape(-1, 1), rate=SR).numpy()


def _render_job(job: tuple[ClipPlan, float, int]) -> tuple[int, np.ndarray | None, tuple[str, ...]]:
    """Worker: (index, int16 audio [samples] or None for a broken clip, sources inaudible in the mix)."""
    plan, seconds, seed = job
    if plan.broken:
        return plan.index, None, ()
    audio, levels = render(plan, seconds, seed)
    pcm = np.round(audio * 32767.0).astype(np.int16)  # halves what travels back from the worker
    return plan.index, pcm, tuple(sorted(k for k, v in levels.items() if v < INAUDIBLE_DB))


def _write_clip(root: Path, plan: ClipPlan, pcm: np.ndarray | None) -> None:
    """Encode and write one clip atomically; a broken clip becomes a 0-byte file like MTAT's three."""
    path = root / plan.mp3_path
    data = b"" if pcm is None else encode_mp3(pcm.astype(np.float32) / 32767.0)
    fsutil.atomic_write(path, data)


def _quoted_tsv(header: list[str], rows: list[list[object]]) -> bytes:
    """MTAT csv style: tab-separated, every field double-quoted, CRLF line ends."""
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8")


def write_annotations(path: Path, plans: list[ClipPlan]) -> None:
    """annotations_final.csv: "clip_id", the 188 tags ("0"/"1"), "mp3_path"; rows sorted by clip_id."""
    tags = load_tag_columns_188()
    y = label_matrix(plans, tags)
    rows = [[p.clip_id, *y[i].tolist(), p.mp3_path] for i, p in enumerate(plans)]
    path.write_bytes(_quoted_tsv(["clip_id", *tags, "mp3_path"], rows))


@dataclass
class Summary:
    """What :func:`generate` did."""

    out: str
    clips: int
    broken: int
    seconds_per_clip: float
    wall_s: float
    clips_per_s: float
    workers: int
    reused: bool
    tags_dropped_inaudible: int
    split_counts: dict[str, int]


def generate(
    out: str | os.PathLike,
    n_clips: int,
    seconds: float = DEFAULT_SECONDS,
    seed: int = 0,
    workers: int | None = None,
    broken_rate: float = BROKEN_RATE,
    clip_info: bool = True,
    overwrite: bool = False,
) -> Summary:
    """Write the synthetic dataset to ``out`` (see the package docstring). Returns a :class:`Summary`.

    If ``out`` already holds a dataset made with the same parameters it is reused (nothing is written);
    a dataset made with other parameters is an error unless ``overwrite``.
    """
    if seconds < 0.5:
        raise ValueError(f"--seconds must be >= 0.5, got {seconds}")
    root = Path(out).resolve()
    params = {
        "clips": n_clips,
        "seconds": seconds,
        "seed": seed,
        "broken_rate": broken_rate,
        "version": GENERATOR_VERSION,
    }
    reused = _reusable(root, params, overwrite)
    if reused is not None:
        return reused
    t0 = time.perf_counter()
    plans, info = plan_dataset(n_clips, seed, broken_rate)
    _prepare(root, plans)
    workers = max(1, min(workers or os.cpu_count() or 1, n_clips))
    inaudible = _render_and_write(root, plans, seconds, seed, workers, t0)
    dropped = 0
    for i, quiet in inaudible.items():
        plans[i], n = drop_inaudible_tags(plans[i], quiet)
        dropped += n
    order = sorted(range(len(plans)), key=lambda i: plans[i].clip_id)
    write_annotations(root / ANNOTATIONS, [plans[i] for i in order])
    if clip_info:
        rows = [[info[i][c] for c in CLIP_INFO_COLUMNS] for i in order]
        (root / CLIP_INFO).write_bytes(_quoted_tsv(list(CLIP_INFO_COLUMNS), rows))
    wall = time.perf_counter() - t0
    splits: dict[str, int] = {}
    for p in plans:
        s = DIRECTORY_SPLIT[p.mp3_path.split("/", 1)[0]]
        splits[s] = splits.get(s, 0) + 1
    summary = Summary(
        out=str(root),
        clips=n_clips,
        broken=sum(p.broken for p in plans),
        seconds_per_clip=seconds,
        wall_s=round(wall, 2),
        clips_per_s=round(n_clips / wall, 2),
        workers=workers,
        reused=False,
        tags_dropped_inaudible=dropped,
        split_counts=splits,
    )
    (root / STAMP).write_text(json.dumps({"params": params, "summary": asdict(summary)}, indent=1))
    return summary


def _reusable(root: Path, params: dict, overwrite: bool) -> Summary | None:
    """The stamped summary when ``root`` holds a dataset made with ``params`` (and not ``overwrite``);
    None when it must be written; FileExistsError when it holds another dataset and not ``overwrite``."""
    stamp = root / STAMP
    if (root / ANNOTATIONS).exists() and not stamp.exists() and not overwrite:
        raise FileExistsError(
            f"{root / ANNOTATIONS} exists and was not written by hvd_magtag.data.synth (no {STAMP}); "
            "choose another --out, or pass --overwrite to replace it"
        )
    if stamp.exists() and (root / ANNOTATIONS).exists():
        old = json.loads(stamp.read_text())
        if old.get("params") == params and not overwrite:
            log.info("synthetic dataset in %s is up to date (%s)", root, params)
            s = old["summary"]
            s["reused"] = True
            return Summary(**s)
        if not overwrite:
            raise FileExistsError(
                f"{root} holds a synthetic dataset made with {old.get('params')}; pass --overwrite "
                f"(overwrite=True) or choose another --out"
            )
    return None


def _prepare(root: Path, plans: list[ClipPlan]) -> None:
    """Create ``root`` and its folders; remove the files that mark a dataset complete (written last), and,
    in a dataset this module made before, the clips the new plan does not list."""
    root.mkdir(parents=True, exist_ok=True)
    ours = (root / STAMP).exists()
    for name in (STAMP, ANNOTATIONS, CLIP_INFO):  # written last: their presence means "complete"
        (root / name).unlink(missing_ok=True)
    keep = {p.mp3_path for p in plans}
    for f in FOLDERS:
        (root / f).mkdir(exist_ok=True)
        if ours:
            for old in (root / f).iterdir():
                if old.suffix in (".mp3", ".part") and f"{f}/{old.name}" not in keep:
                    old.unlink()


def _render_and_write(
    root: Path, plans: list[ClipPlan], seconds: float, seed: int, workers: int, t0: float
) -> dict[int, tuple[str, ...]]:
    """Render every clip (``workers`` spawned processes, or this one when 1) and write it here, in plan
    order; returns clip index -> the sources that were inaudible in its mix."""
    jobs = [(p, float(seconds), seed) for p in plans]
    inaudible: dict[int, tuple[str, ...]] = {}
    last = time.perf_counter()
    pool = None if workers == 1 else ProcessPoolExecutor(workers, mp_context=get_context("spawn"))
    try:
        results = map(_render_job, jobs) if pool is None else pool.map(_render_job, jobs, chunksize=2)
        for done, (index, pcm, quiet) in enumerate(results, start=1):
            _write_clip(root, plans[index], pcm)
            inaudible[index] = quiet
            if time.perf_counter() - last > PROGRESS_EVERY_S:
                last = time.perf_counter()
                log.info("%d/%d clips (%.1f clips/s)", done, len(plans), done / (last - t0))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return inaudible


def main(argv: list[str] | None = None) -> int:
    p = cli.OneLineParser(
        prog="python -m hvd_magtag.data.synth",
        description="Write a synthetic dataset in the MagnaTagATune layout (16 folders of 16 kHz mono mp3s, "
        "annotations_final.csv with the 188 MTAT tags) whose tags are audible.",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"dataset root to create (default: {locations.dataset_dir('synthetic')}, where data.dataset="
        "synthetic looks when data.root is empty)",
    )
    p.add_argument("--clips", type=int, required=True, help="number of clips")
    p.add_argument(
        "--seconds",
        type=float,
        default=DEFAULT_SECONDS,
        help="clip length in s (MTAT: 29.1; the demo may use 10)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed; output is identical for any --workers")
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    p.add_argument(
        "--broken-rate",
        type=float,
        default=BROKEN_RATE,
        help="share of 0-byte mp3s (0 disables; at least 1 when N >= 200 otherwise)",
    )
    p.add_argument("--no-clip-info", action="store_true", help="do not write clip_info_final.csv")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset made with other parameters")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        s = generate(
            args.out or locations.dataset_dir("synthetic"),
            args.clips,
            args.seconds,
            args.seed,
            args.workers,
            args.broken_rate,
            not args.no_clip_info,
            args.overwrite,
        )
    except (ValueError, FileExistsError) as e:
        p.error(str(e))
    log.info(
        "%s: %d clips (%d broken) of %.1f s in %.1f s = %.2f clips/s with %d workers; splits %s%s",
        s.out,
        s.clips,
        s.broken,
        s.seconds_per_clip,
        s.wall_s,
        s.clips_per_s,
        s.workers,
        s.split_counts,
        " (reused)" if s.reused else "",
    )
    return 0
