"""Train toy models N steps data-parallel; each rank saves its final state as ``<config>.rank<r>.npz``.

Run under ``horovodrun -np 2`` (each rank trains on its contiguous half of every global batch) or as a plain
process (size 1, full global batches: the reference). Configs (same seed, same data, SGD with momentum):

  plain     BN-free model, gradients averaged over ranks              -> equals the 1-process run
  fp16      same with fp16 gradient compression                       -> ranks agree; close to the reference
  unsynced  same but each rank keeps its local gradients (no allreduce) -> ranks diverge (a negative control)
  bn        model with BatchNormalization: trainable weights agree; moving statistics are per-rank.
            Also saved: ``bn_avg.rank<r>.npz`` after ``average_variables(model.non_trainable_variables)``.

Also writes ``init.rank<r>.npz`` (plain model before training) and ``context.rank<r>.json``.
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
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()

    ctx = distributed.init()  # before any TF op
    import keras
    import tensorflow as tf
    import toy

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"context.rank{ctx.rank}.json").write_text(
        json.dumps({**ctx.__dict__, "intra_op": tf.config.threading.get_intra_op_parallelism_threads()})
    )
    batches = [
        toy.local_slice(b, ctx.rank, ctx.size)
        for b in toy.global_batches(args.steps, args.global_batch, args.seed)
    ]
    configs = {  # name -> (model family, compression, allreduce gradients?)
        "plain": ("conv", "none", True),
        "fp16": ("conv", "fp16", True),
        "unsynced": ("conv", "none", False),
        "bn": ("bn", "none", True),
    }
    for name, (family, compression, synced) in configs.items():
        keras.utils.set_random_seed(args.seed)
        model = toy.MODELS[family]()
        optimizer = keras.optimizers.SGD(learning_rate=args.lr, momentum=0.9)
        distributed.broadcast_model_and_optimizer(model, optimizer)
        if name == "plain":
            toy.save_state(args.out / f"init.rank{ctx.rank}.npz", model)
        loss_fn = keras.losses.BinaryCrossentropy()  # mean over the LOCAL batch and tags

        @tf.function
        def step(
            x, y, model=model, optimizer=optimizer, loss_fn=loss_fn, compression=compression, synced=synced
        ):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            if synced:
                tape = distributed.DistributedGradientTape(tape, compression=compression)
                grads = tape.gradient(loss, model.trainable_variables)
            else:
                grads = tape.gradient(loss, [v.value for v in model.trainable_variables])
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        for x, y in batches:
            step(tf.constant(x), tf.constant(y))
        toy.save_state(args.out / f"{name}.rank{ctx.rank}.npz", model, optimizer)
        if family == "bn":
            distributed.average_variables(model.non_trainable_variables)
            toy.save_state(args.out / f"bn_avg.rank{ctx.rank}.npz", model, optimizer)
    distributed.barrier()


if __name__ == "__main__":
    main()
