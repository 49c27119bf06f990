"""Ranks start deliberately different; ``broadcast_model_and_optimizer`` makes them identical to rank 0.

Each rank seeds with ``--seed + rank`` (different initial weights), then takes ``rank + 1`` purely local
SGD-momentum steps on its own data (no allreduce), so weights, BN moving statistics, momentum slots and
the iteration counter all differ across ranks. Saves ``before.rank<r>.npz`` and, after the broadcast,
``after.rank<r>.npz``. Second case: an Adam optimizer that was never built (``adam_*.rank<r>.npz``):
the broadcast must build it and broadcast its (zero) moments and iteration count.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hvd_magtag import distributed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=100)
    args = parser.parse_args()

    ctx = distributed.init()
    import keras
    import tensorflow as tf
    import toy

    args.out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed + ctx.rank)  # different on purpose
    model = toy.bn_model()
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    loss_fn = keras.losses.BinaryCrossentropy()
    for x, y in toy.global_batches(ctx.rank + 1, 4, args.seed + ctx.rank):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, [v.value for v in model.trainable_variables])
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
    toy.save_state(args.out / f"before.rank{ctx.rank}.npz", model, optimizer)
    distributed.broadcast_model_and_optimizer(model, optimizer, root_rank=0)
    toy.save_state(args.out / f"after.rank{ctx.rank}.npz", model, optimizer)

    other = toy.conv_model()
    adam = keras.optimizers.Adam(learning_rate=1e-3)
    toy.save_state(args.out / f"adam_before.rank{ctx.rank}.npz", other)
    distributed.broadcast_model_and_optimizer(other, adam, root_rank=0)
    toy.save_state(args.out / f"adam_after.rank{ctx.rank}.npz", other, adam)
    distributed.barrier()


if __name__ == "__main__":
    main()
