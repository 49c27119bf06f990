"""Horovod scaling benchmark: ``python -m hvd_magtag.bench scaling [--np 2] [--batch 16] [--quick]``.

In the manner of Horovod's ``tensorflow2_synthetic_benchmark.py``: the same worker runs as a real
``horovodrun -np 1`` job and a ``horovodrun -np N`` job (``--np``; ``--controller mpi|gloo``; Open MPI ranks
get ``OMPI_MCA_mpi_yield_when_idle=1`` so a waiting rank does not spin on a core another process needs),
one after the other, each rank with a
thread budget of ``--threads`` (default 1: TF intra-/inter-op pools via
:func:`hvd_magtag.distributed.init`, ``OMP_NUM_THREADS``), training the registry model
(:func:`hvd_magtag.train.make_train_step`, SGD Nesterov, gradients averaged by Horovod) on random
in-memory batches of ``--batch`` per rank: ``--warmup`` untimed steps, then ``--iters`` timed rounds of
``--steps`` steps. Throughput is samples/s summed over ranks, per round (the slowest rank's time); mean ±
stdev over rounds. ``--repeats R`` runs the two jobs alternately R times each and pools their rounds.

Rows:

- ``train np=K``: aggregate samples/s, per-rank samples/s and peak resident memory per rank
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, max over ranks);
- ``scaling np=N / np=1``: the speed-up (target :data:`TARGET_SCALING` for 2 ranks x 1 thread) and
  ``peak RSS per rank`` against :data:`TARGET_RSS_GB`;
- ``allreduce``: at np=N, latency and algorithm bandwidth (payload bytes / time) of one allreduce of the
  model's gradients (one tensor per trainable variable, fused by Horovod as in the training step), with
  ``compression="none"`` and ``"fp16"``, and the ratio between them.

The worker is this module run with ``--worker`` (``horovodrun -np N python -m hvd_magtag.bench.scaling
--worker --out FILE ...``); rank 0 writes the JSON result. Each job runs in its own session and is killed
whole after ``--timeout`` s. Both jobs share this machine's cores with whatever else runs: the ``load1``
column is the 1-minute load average at the end of each job (mean over repeats).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hvd_magtag import distributed, jobs
from hvd_magtag.bench import row
from hvd_magtag.config import PRECISIONS, TrainConfig, check_choice
from hvd_magtag.errors import ConfigError, HvdMagtagError

log = logging.getLogger(__name__)

BENCH = "scaling"
#: Targets printed as ratios (never asserted).
TARGET_SCALING = 1.8
TARGET_RSS_GB = 3.0
#: ``--quick``: tiny settings running both jobs in seconds (smoke tests), not meaningful numbers.
QUICK = {"batch": 4, "width": 0.0625, "blocks": 4, "warmup": 1, "iters": 2, "steps": 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--np", type=int, default=2, help="ranks of the scaled job (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="thread budget per rank (default: 1)")
    parser.add_argument("--model", default="samplecnn", help="registry model (default: samplecnn = 3^9)")
    parser.add_argument("--batch", type=int, default=16, help="examples per step per rank (default: 16)")
    parser.add_argument("--n-tags", type=int, default=50, help="output tags (default: 50)")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier override (default: 1.0)")
    parser.add_argument("--blocks", type=int, default=None, help="SampleCNN override n (default: model's)")
    parser.add_argument(
        "--precision",
        default="float32",
        help="train.precision: float32 | mixed_bfloat16 (default: float32)",
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (default: 2)")
    parser.add_argument("--iters", type=int, default=3, help="timed rounds (default: 3)")
    parser.add_argument("--steps", type=int, default=2, help="steps per timed round (default: 2)")
    parser.add_argument("--allreduce-iters", type=int, default=10, help="timed allreduces (default: 10)")
    parser.add_argument(
        "--controller",
        choices=("mpi", "gloo"),
        default="mpi",
        help="horovodrun controller: mpi (Open MPI; ranks yield when idle) or gloo (default: mpi)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run the np=1 and np=N jobs alternately this many times each; rounds are pooled (default: 1)",
    )
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per job (default: 3600)")
    parser.add_argument("--quick", action="store_true", help="tiny smoke settings (seconds)")


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    s = {k: v for k, v in vars(args).items() if k not in ("out", "section", "worker", "result")}
    if args.quick:
        s.update(QUICK)
        s["allreduce_iters"] = 3
    if s["np"] < 2:
        raise ConfigError(f"--np {s['np']}: the scaled job needs at least 2 ranks")

    check_choice(s["precision"], PRECISIONS, "--precision")
    if s["repeats"] < 1:
        raise ConfigError(f"--repeats {s['repeats']}: give at least 1")
    if s["threads"] < 1:
        raise ConfigError(f"--threads {s['threads']}: give at least 1 thread per rank")
    return s


# -- the worker (one rank) ---------------------------------------------------------------------------------


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _allreduce_rows(model, ctx, iters: int) -> list[dict]:
    """Latency/bandwidth of allreducing one gradient-shaped tensor per trainable variable, per compression."""
    import numpy as np
    import tensorflow as tf

    hvd = distributed.hvd_module()
    rng = np.random.default_rng(ctx.rank)
    grads = [tf.constant(rng.standard_normal(v.shape).astype(np.float32)) for v in model.trainable_variables]
    payload = sum(int(np.prod(g.shape)) * 4 for g in grads)
    hvd_names = ("none", "fp16")

    def reducer(name: str):
        compression = getattr(hvd.Compression, name)

        @tf.function
        def reduce_all(tensors):
            return [
                hvd.allreduce(t, op=hvd.Average, compression=compression, name=f"bench.{name}.{i}")
                for i, t in enumerate(tensors)
            ]

        return reduce_all

    reducers = {name: reducer(name) for name in hvd_names}
    for reduce_all in reducers.values():
        for _ in range(2):
            reduce_all(grads)
    times: dict[str, list[float]] = {name: [] for name in hvd_names}
    for _ in range(iters):  # interleaved: both compressions see the same machine load
        for name, reduce_all in reducers.items():
            distributed.barrier()
            t0 = time.perf_counter()
            [t.numpy() for t in reduce_all(grads)]
            times[name].append(time.perf_counter() - t0)
    out = []
    for name in hvd_names:
        per_call = np.max(distributed.allgather(np.asarray(times[name])[None, :]), axis=0)  # slowest rank
        mean = statistics.fmean(per_call)
        spread = statistics.stdev(per_call) if len(per_call) > 1 else 0.0
        out.append({"compression": name, "mean": mean, "spread": spread, "payload_bytes": payload,
                    "tensors": len(grads)})  # fmt: skip
    return out


def worker(s: dict[str, Any], result: Path) -> None:
    """One rank: time training steps (and allreduces when size > 1); rank 0 writes ``result`` (JSON)."""

    ctx = distributed.init(threads=s["threads"])
    import keras
    import numpy as np
    import tensorflow as tf

    from hvd_magtag.train import build_model, make_optimizer, make_train_step

    keras.utils.set_random_seed(0)
    overrides = {"width": s["width"], **({"n": s["blocks"]} if s["blocks"] else {})}
    model = build_model(s["model"], s["n_tags"], overrides, s["precision"])
    cfg = TrainConfig(batch_size=s["batch"], precision=s["precision"])
    optimizer = make_optimizer(cfg.optimizer, cfg, cfg.lr * ctx.size)
    step = make_train_step(model, optimizer, cfg)
    distributed.broadcast_model_and_optimizer(model, optimizer)
    rng = np.random.default_rng(ctx.rank)
    x = tf.constant((0.1 * rng.standard_normal((s["batch"], *model.spec.input_shape()))).astype(np.float32))
    y = tf.constant((rng.uniform(size=(s["batch"], s["n_tags"])) < 0.1).astype(np.float32))

    for _ in range(s["warmup"]):
        float(step(x, y))
    rounds = []
    for _ in range(s["iters"]):
        distributed.barrier()
        t0 = time.perf_counter()
        for _ in range(s["steps"]):
            float(step(x, y))
        rounds.append(time.perf_counter() - t0)
    per_round = np.max(distributed.allgather(np.asarray(rounds)[None, :]), axis=0)  # slowest rank per round
    rss = distributed.allgather(np.asarray([_peak_rss_mb()]))
    allreduce = _allreduce_rows(model, ctx, s["allreduce_iters"]) if ctx.size > 1 else []
    if ctx.is_root:
        result.write_text(json.dumps({
            "size": ctx.size, "threads": ctx.threads, "backend": ctx.backend,
            "round_seconds": per_round.tolist(), "samples_per_round": s["batch"] * s["steps"] * ctx.size,
            "peak_rss_mb": rss.tolist(), "allreduce": allreduce, "load1": os.getloadavg()[0],
            "input": list(model.spec.input_shape()), "params": int(model.count_params()),
        }))  # fmt: skip


# -- the launcher ------------------------------------------------------------------------------------------


def launch(np_ranks: int, s: dict[str, Any], work: Path) -> dict[str, Any]:
    """Run the worker as ``horovodrun -np np_ranks`` (:mod:`hvd_magtag.jobs`); its rank-0 JSON result."""

    try:
        launcher = jobs.horovodrun(np_ranks, gloo=s["controller"] == "gloo")
    except FileNotFoundError as e:
        raise HvdMagtagError(f"the scaling bench needs Horovod: {e}") from None
    result = work / f"np{np_ranks}.json"
    settings = work / f"np{np_ranks}-settings.json"
    settings.write_text(json.dumps(s))
    cmd = [*launcher, sys.executable, "-m", "hvd_magtag.bench.scaling", "--worker", str(settings),
           "--result", str(result)]  # fmt: skip
    log.info("running %s", " ".join(cmd))
    t0 = time.perf_counter()
    try:
        # threads: OpenMP's budget too (OMP_NUM_THREADS)
        done = jobs.run(cmd, timeout=s["timeout"], threads=s["threads"], merge_output=True)
    except subprocess.TimeoutExpired:
        raise HvdMagtagError(
            f"scaling bench: horovodrun -np {np_ranks} did not finish in {s['timeout']:.0f} s "
            "(--timeout); the job was killed"
        ) from None
    if done.returncode != 0 or not result.exists():
        tail = "\n".join((done.stdout or "").strip().splitlines()[-15:])
        raise HvdMagtagError(
            f"scaling bench: horovodrun -np {np_ranks} failed (exit {done.returncode}):\n{tail}"
        )
    out = json.loads(result.read_text())
    out["wall_seconds"] = time.perf_counter() - t0
    return out


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    s = _settings(args)
    rows: list[dict] = []
    runs: dict[int, list[dict]] = {1: [], s["np"]: []}
    with tempfile.TemporaryDirectory(prefix="hvd_magtag_bench_scaling_") as tmp:
        for _ in range(s["repeats"]):  # alternate, so a change in machine load hits both sizes
            for k in runs:
                runs[k].append(launch(k, s, Path(tmp)))
    jobs = {k: {**done[-1], "load1": statistics.fmean(j["load1"] for j in done)} for k, done in runs.items()}
    rates = {}
    for k, job in jobs.items():
        per_round = [j["samples_per_round"] / t for j in runs[k] for t in j["round_seconds"]]
        mean = statistics.fmean(per_round)
        spread = statistics.stdev(per_round) if len(per_round) > 1 else 0.0
        rates[k] = mean
        extra = {"np": k, "threads_per_rank": job["threads"], "batch_per_rank": s["batch"], "model": s["model"],
                 "input": "x".join(map(str, job["input"])), "precision": s["precision"],
                 "controller": s["controller"],
                 "load1": round(job["load1"], 2), "rounds": len(per_round)}  # fmt: skip
        case = f"train np={k} x {job['threads']} thread"
        rows.append(row(BENCH, case, "throughput (all ranks)", mean, "samples/s", spread, **extra))
        rows.append(row(BENCH, case, "throughput per rank", mean / k, "samples/s", spread / k, **extra))
        peak_gb = max(max(j["peak_rss_mb"]) for j in runs[k]) / 1024
        rows.append(row(BENCH, case, "peak RSS per rank", peak_gb, "GiB", target=TARGET_RSS_GB,
                        meets_target=bool(peak_gb <= TARGET_RSS_GB), **extra))  # fmt: skip
    n = s["np"]
    ratio = rates[n] / rates[1]
    rows.append(row(BENCH, f"scaling np={n} / np=1 ({s['threads']} thread/rank)", "speed-up", ratio, "x",
                    target=TARGET_SCALING if n == 2 else None, meets_target=bool(ratio >= TARGET_SCALING),
                    efficiency=ratio / n))  # fmt: skip
    by_compression = {}
    for a in jobs[n]["allreduce"]:  # from the last np=N job
        case = f"allreduce gradients np={n}, compression={a['compression']}"
        extra = {"tensors": a["tensors"], "payload_bytes": a["payload_bytes"], "np": n,
                 "load1": round(runs[n][-1]["load1"], 2)}  # fmt: skip
        by_compression[a["compression"]] = a["mean"]
        rows.append(row(BENCH, case, "latency", a["mean"] * 1e3, "ms", a["spread"] * 1e3, **extra))
        rows.append(row(BENCH, case, "algbw", a["payload_bytes"] / a["mean"] / 1e6, "MB/s", **extra))
    if {"none", "fp16"} <= set(by_compression):
        rows.append(row(BENCH, f"allreduce np={n} fp16 / none", "speed-up",
                        by_compression["none"] / by_compression["fp16"], "x"))  # fmt: skip
    return rows


def _worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="scaling bench worker (one rank; started by horovodrun)")
    parser.add_argument("--worker", type=Path, required=True, help="settings JSON written by the launcher")
    parser.add_argument("--result", type=Path, required=True, help="JSON result written by rank 0")
    args = parser.parse_args(argv)
    worker(json.loads(args.worker.read_text()), args.result)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main())
