"""Collectives and rank-0 logging on a real job; each rank writes ``rank<r>.npz`` / ``rank<r>.json``.

allgather  rank r contributes ``rows(r) = 2 * r + 3`` rows of shape [rows, 3] (value 100 * r + row),
           an empty [0, 3] array on odd ranks, and a scalar (its rank)
allreduce  of [r + 1, 2 * (r + 1)] summed and averaged, numpy and tensor inputs
broadcast_object  of a dict only rank 0 fills in
logging    one INFO record (printed by rank 0 only) and one ERROR record (printed by every rank),
           each carrying a marker the test counts in the job's output
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from hvd_magtag import distributed

INFO_MARKER = "collectives-info-marker"
ERROR_MARKER = "collectives-error-marker"


def rows(rank: int) -> int:
    return 2 * rank + 3


def block(rank: int) -> np.ndarray:
    """Rank ``rank``'s allgather contribution: [rows(rank), 3] float32, entry (i, j) = 100 * rank + i."""
    return np.repeat((100 * rank + np.arange(rows(rank), dtype=np.float32))[:, None], 3, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    log = distributed.get_logger("hvd_magtag.tests.collectives")
    ctx = distributed.init()
    import tensorflow as tf

    args.out.mkdir(parents=True, exist_ok=True)
    log.info("%s from rank %d", INFO_MARKER, ctx.rank)
    log.error("%s from rank %d", ERROR_MARKER, ctx.rank)

    mine = np.array([ctx.rank + 1.0, 2.0 * (ctx.rank + 1)], dtype=np.float32)
    results = {
        "gathered": distributed.allgather(block(ctx.rank)),
        "gathered_empty": distributed.allgather(np.zeros((0 if ctx.rank % 2 else 2, 3), np.float32)),
        "gathered_scalar": distributed.allgather(np.int32(ctx.rank)),
        "sum": distributed.allreduce(mine, average=False),
        "mean": distributed.allreduce(mine, average=True),
        "mean_tensor": distributed.allreduce(tf.constant(mine)).numpy(),
    }
    obj = distributed.broadcast_object(
        {"from": ctx.rank, "tags": ["guitar", "piano"]} if ctx.is_root else None
    )
    distributed.barrier()
    np.savez(args.out / f"rank{ctx.rank}.npz", **results)
    (args.out / f"rank{ctx.rank}.json").write_text(
        json.dumps(
            {
                "context": ctx.__dict__,
                "object": obj,
                "cores": distributed.available_cores(),
                "intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads(),
            }
        )
    )


if __name__ == "__main__":
    main()
