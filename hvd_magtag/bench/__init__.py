"""Benchmarks: ``python -m hvd_magtag.bench {pipeline,models,train,scaling,tag,all} [--out DIR]``.

In the manner of Horovod's synthetic benchmark: warm-up, timed iterations, mean ± spread, and every ratio
measured side by side within one run. Each section is a module of this package exposing

    add_arguments(parser)            its own options
    run(args) -> list[dict]          rows: {"bench", "case", "metric", "value", "spread", "unit", ...}

Results print as a table and are written to ``<out>/<section>.json``. Speed targets are printed as ratios
and throughputs here, never asserted in tests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

#: section name -> module (imported lazily so ``--help`` is instant)
SECTIONS = {
    "pipeline": "hvd_magtag.bench.pipeline",
    "models": "hvd_magtag.bench.models",
    "train": "hvd_magtag.bench.train",
    "scaling": "hvd_magtag.bench.scaling",
    "tag": "hvd_magtag.bench.tag",
}


def timed(fn: Callable[[], Any], *, warmup: int = 2, iters: int = 5) -> tuple[float, float]:
    """Run ``fn`` ``warmup`` times untimed, then ``iters`` times; return (mean, stdev) seconds per call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.fmean(times), (statistics.stdev(times) if len(times) > 1 else 0.0)


def row(
    bench: str, case: str, metric: str, value: float, unit: str, spread: float = 0.0, **extra: Any
) -> dict:
    return {
        "bench": bench,
        "case": case,
        "metric": metric,
        "value": value,
        "spread": spread,
        "unit": unit,
        **extra,
    }


def format_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    lines = [f"{'bench':<10} {'case':<44} {'metric':<22} {'value':>14}  unit"]
    for r in rows:
        val = f"{r['value']:.4g}" + (f" ± {r['spread']:.2g}" if r.get("spread") else "")
        lines.append(f"{r['bench']:<10} {r['case']:<44} {r['metric']:<22} {val:>14}  {r['unit']}")
    return "\n".join(lines)
