"""Allreduce latency and throughput of one float32 tensor, with and without fp16 compression.

    horovodrun -np 2 python tests/multirank/allreduce_bench.py --mb 4 --iters 30 --out bench.json
    # or from Python: run_horovod(SCRIPTS / "allreduce_bench.py", np=2, args=["--out", path])

Each case: ``--warmup`` untimed calls, then ``--iters`` calls each preceded by a barrier, timed on every
rank; rank 0 writes the rows (mean/stdev/median of the slowest rank per call) as JSON
``{"machine": {...}, "rows": [...]}`` in the shape of ``hvd_magtag.bench.row``. Throughput is the
algorithm bandwidth, payload bytes / time (for a ring allreduce each rank sends 2 (n-1)/n of it).
fp16 compression halves the bytes on the wire but adds two casts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from hvd_magtag import distributed
from hvd_magtag.bench import row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=float, default=4.0, help="tensor size in MiB of float32 (default 4)")
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None, help="JSON file written by rank 0")
    args = parser.parse_args()

    ctx = distributed.init()
    log = distributed.get_logger("hvd_magtag.bench.allreduce")
    import tensorflow as tf

    hvd = distributed.hvd_module()
    n = int(args.mb * 2**20) // 4
    tensor = tf.constant(np.random.default_rng(ctx.rank).standard_normal(n).astype(np.float32))
    rows = []
    for name in ("none", "fp16"):
        compression = getattr(hvd.Compression, name)

        def call(compression=compression, name=name):
            return hvd.allreduce(
                tensor, op=hvd.Average, compression=compression, name=f"bench.{name}"
            ).numpy()

        for _ in range(args.warmup):
            call()
        times = []
        for _ in range(args.iters):
            distributed.barrier()
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        per_call = np.max(distributed.allgather(np.array(times)[None, :]), axis=0)  # slowest rank per call
        mean, spread, median = (
            statistics.fmean(per_call),
            statistics.stdev(per_call),
            statistics.median(per_call),
        )
        case = f"allreduce {args.mb:g} MiB float32, np={ctx.size}, compression={name}"
        nbytes = 4 * n
        rows.append(row("allreduce", case, "latency", mean * 1e3, "ms", spread * 1e3, median_ms=median * 1e3))
        rows.append(row("allreduce", case, "algbw", nbytes / mean / 1e6, "MB/s", 0.0, iters=args.iters))
    if ctx.is_root:
        for r in rows:
            log.info("%-55s %-8s %10.3f %s", r["case"], r["metric"], r["value"], r["unit"])
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            machine = {
                "cpu_count": distributed.available_cores(),
                "controller": "gloo" if hvd.gloo_enabled() else "mpi",
            }
            args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
