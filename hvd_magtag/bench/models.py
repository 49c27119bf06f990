"""Model zoo benchmark: ``python -m hvd_magtag.bench models [--models a,b] [--batch 16]``.

Per registered model: parameters (trainable / all), analytic FLOPs per example, activation memory per
example, and forward (inference) and training throughput in examples/s on this machine.

FLOPs are counted analytically from layer shapes: multiply-adds of Conv1D/Conv2D, Dense, GRU and
attention pooling (2 FLOPs per MAC); batch norm, activations and pooling are not counted. A superpool
model's window encoder is counted once per window. Activation memory is the sum of all layer outputs
(float32) for one example, an estimate of what training keeps for the backward pass; it caps each
model's batch at ``--memory-budget-mb`` (the row says which batch was used). An "example" is one model
input: a window for split models, a clip of ``n_windows`` windows for superpool models.

Throughputs are wall-clock means over ``--iters`` calls of a ``tf.function`` (after ``--warmup``
untimed calls, which include tracing) on random inputs; training is GradientTape + Adam on binary
cross-entropy. Achieved GFLOP/s counts a training step as 3x the forward FLOPs (forward + two backward
products). On a shared CPU they are noisy: compare models within one run.
"""

from __future__ import annotations

import argparse
import logging
import math
from typing import Any

from hvd_magtag.bench import row, timed
from hvd_magtag.errors import ConfigError
from hvd_magtag.models import create_model, list_models
from hvd_magtag.models.names import WINDOW_ENCODER

BENCH = "models"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default="", help="comma-separated registry names (default: every model)")
    parser.add_argument("--batch", type=int, default=16, help="examples per step (default: 16)")
    parser.add_argument("--n-tags", type=int, default=50, help="output tags (default: 50)")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier override (default: 1.0)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls before timing (default: 1)")
    parser.add_argument("--iters", type=int, default=3, help="timed calls (default: 3)")
    parser.add_argument(
        "--memory-budget-mb",
        type=float,
        default=2000.0,
        help="cap each model's batch so batch x activation memory stays under this (default: 2000)",
    )
    parser.add_argument("--no-timing", action="store_true", help="only parameters, FLOPs and memory")


def _shape(tensor) -> tuple:
    return tuple(tensor.shape)


def _prod(dims) -> int:
    return math.prod(int(d) for d in dims)


def layer_macs(layer, repeats: int = 1) -> int:
    """Multiply-adds per example of ``layer`` (recursing into nested models, ``repeats`` calls each)."""
    import keras

    from hvd_magtag.models import layers

    if isinstance(layer, keras.Model):
        return sum(layer_macs(inner, repeats) for inner in layer.layers)
    if isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D):
        out = _shape(layer.output)  # (B, *positions, C_out)
        c_in = _shape(layer.input)[-1]
        macs = _prod(out[1:-1]) * out[-1] * _prod(layer.kernel_size) * (c_in // layer.groups)
    elif isinstance(layer, keras.layers.Dense):
        shape = _shape(layer.input)  # (B, ..., D_in)
        macs = _prod(shape[1:-1]) * shape[-1] * layer.units
    elif isinstance(layer, keras.layers.GRU):
        _, steps, dim = _shape(layer.input)
        macs = steps * 3 * (dim * layer.units + layer.units * layer.units)
    elif isinstance(layer, layers.AttentionPooling):
        _, windows, dim = _shape(layer.input)
        macs = windows * (dim * layer.units + layer.units)
    else:
        macs = 0
    return macs * repeats


def model_flops(model) -> int:
    """Analytic FLOPs per example (2 per multiply-add); the window encoder counts once per window."""
    total = 0
    for layer in model.layers:
        repeats = model.spec.n_windows if layer.name == WINDOW_ENCODER else 1
        total += layer_macs(layer, repeats)
    return 2 * total


def activation_bytes(model) -> int:
    """float32 bytes of all layer outputs for one example (window-encoder layers x n_windows)."""
    import keras

    def outputs(m, repeats: int) -> int:
        total = 0
        for layer in m.layers:
            if isinstance(layer, keras.layers.InputLayer):
                continue
            if isinstance(layer, keras.Model):
                total += outputs(
                    layer, repeats * (model.spec.n_windows if layer.name == WINDOW_ENCODER else 1)
                )
                continue
            outs = layer.output if isinstance(layer.output, list | tuple) else [layer.output]
            total += repeats * sum(_prod(_shape(o)[1:]) for o in outs)
        return total

    return 4 * outputs(model, 1)


def _throughput(model, batch: int, n_tags: int, warmup: int, iters: int) -> dict[str, tuple[float, float]]:
    import keras
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.constant((0.1 * rng.standard_normal((batch, *model.spec.input_shape()))).astype(np.float32))
    y = tf.constant((rng.uniform(size=(batch, n_tags)) < 0.1).astype(np.float32))
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(model.trainable_variables)
    bce = keras.losses.BinaryCrossentropy()

    @tf.function
    def forward(inputs):
        return model(inputs, training=False)

    @tf.function
    def train_step(inputs, labels):
        with tf.GradientTape() as tape:
            loss = bce(labels, model(inputs, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    fwd = timed(lambda: forward(x).numpy(), warmup=warmup, iters=iters)
    trn = timed(lambda: float(train_step(x, y)), warmup=warmup, iters=iters)
    return {"forward": fwd, "train": trn}


def _rate(batch: int, mean_spread: tuple[float, float]) -> tuple[float, float]:
    """(examples/s, spread) from (mean, stdev) seconds per step (first-order error propagation)."""
    mean, spread = mean_spread
    return batch / mean, batch * spread / (mean * mean)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    import numpy as np

    names = [n.strip() for n in args.models.split(",") if n.strip()] or list_models()
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        raise ConfigError(
            f"--models: unknown model(s) {', '.join(unknown)}; choose from {', '.join(list_models())}"
        )
    rows: list[dict[str, Any]] = []
    for name in names:
        model = create_model(name, n_tags=args.n_tags, width=args.width)
        spec = model.spec
        trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
        flops = model_flops(model)
        act_mb = activation_bytes(model) / 2**20
        batch = max(1, min(args.batch, int(args.memory_budget_mb // max(act_mb, 1e-9))))
        extra = {"input": list(spec.input_shape()), "width": args.width, "batch": batch}
        case = f"{name} {'x'.join(map(str, spec.input_shape()))}"
        rows += [
            row(BENCH, case, "params_trainable", trainable, "params", **extra),
            row(BENCH, case, "params_all", model.count_params(), "params", **extra),
            row(BENCH, case, "flops_per_example", flops / 1e9, "GFLOP", **extra),
            row(BENCH, case, "activations_per_example", act_mb, "MiB", **extra),
        ]
        if not args.no_timing:
            log.info("timing %s at batch %d", name, batch)
            times = _throughput(model, batch, args.n_tags, args.warmup, args.iters)
            for kind, mean_spread in times.items():
                rate, spread = _rate(batch, mean_spread)
                rows.append(row(BENCH, case, f"{kind}_throughput", rate, "examples/s", spread, **extra))
                rows.append(row(BENCH, case, f"{kind}_gflops", rate * flops * (3 if kind == "train" else 1) / 1e9,
                                "GFLOP/s", **extra))  # fmt: skip
        del model
    return rows
