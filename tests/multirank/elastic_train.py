"""Elastic training survives a failed rank: roll back to the last commit, re-sync, finish identically.

Run under ``horovodrun -np 2 --min-np 2 --max-np 2 --host-discovery-script <prints localhost:2>`` or as a
plain process (the size-1 reference). Ranks seed differently on purpose (the first sync makes them equal
to rank 0). With ``--fail-at K``, rank 1 raises ``HorovodInternalError`` once, just before step K: every
rank restores its last commit (weights, momentum, ``state.step``) and Horovod re-initialises. A reset
callback then scribbles over rank 1's weights, so the test also proves the re-sync broadcasts variables.
Each rank saves ``final.rank<r>.npz`` and ``final.rank<r>.json`` (resets seen, rank, size).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hvd_magtag import distributed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--global-batch", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fail-at", type=int, default=-1)
    args = parser.parse_args()

    ctx = distributed.init()
    import keras
    import tensorflow as tf
    import toy

    args.out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed + ctx.rank)  # different on purpose: the first sync equalises
    model = toy.conv_model()
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    loss_fn = keras.losses.BinaryCrossentropy()
    batches = toy.global_batches(args.steps, args.global_batch, args.seed)
    state = distributed.elastic_state(model, optimizer, step=0)
    events = {"resets": 0, "failed": False}

    def scribble() -> None:  # runs after restore + re-init, before the re-sync
        events["resets"] += 1
        if distributed.context().rank == 1:
            for v in model.trainable_variables:
                v.assign(tf.fill(v.shape, 7.0))

    state.register_reset_callbacks([scribble])

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = distributed.DistributedGradientTape(tape).gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    @distributed.elastic_run
    def train(state) -> None:
        while state.step < args.steps:
            now = distributed.context()
            x, y = toy.local_slice(batches[state.step], now.rank, now.size)
            if state.step == args.fail_at and now.rank == 1 and not events["failed"]:
                events["failed"] = True
                raise distributed.hvd_module().elastic.HorovodInternalError("injected failure")
            step(tf.constant(x), tf.constant(y))
            state.step += 1
            state.commit()

    train(state)
    now = distributed.context()
    toy.save_state(args.out / f"final.rank{now.rank}.npz", model, optimizer)
    (args.out / f"final.rank{now.rank}.json").write_text(
        json.dumps({**events, "rank": now.rank, "size": now.size, "step": state.step})
    )


if __name__ == "__main__":
    main()
