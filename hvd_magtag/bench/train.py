"""Training-step benchmark: ``python -m hvd_magtag.bench train [--model samplecnn] [--batch 16] [--quick]``.

Everything compared is measured side by side in one process, in interleaved rounds (one timed call of
every case per round, ``--iters`` rounds after ``--warmup`` untimed calls each), so a change in machine
load hits all cases alike. Cases:

- ``matmul fp32 N^2``: a loop of ``--matmul-size``\\ ² float32 matmuls, the machine's fp32 FLOP rate
  (2 N³ FLOPs per matmul);
- ``reference``: the same SampleCNN written the obvious way: Keras 3 layers in a plain ``keras.Model``,
  ``tf.GradientTape``, ``optimizer.apply_gradients`` (SGD with Nesterov momentum), binary cross-entropy,
  inside ``@tf.function``, no tuning (samplecnn-family models only; its trainable parameter count is
  checked equal to the registry model's);
- ``hvd_magtag <variant>``: :func:`hvd_magtag.train.make_train_step` on the registry model, one row per
  ``--variants`` entry (:data:`VARIANTS`: ``train.precision`` x ``train.jit_compile``);
- ``fed from memory`` / ``fed from mp3``: ``--feed-variant``'s step fed by ``tf.data`` from in-memory
  windows vs by :func:`hvd_magtag.data.pipeline.train_dataset` decoding a temporary mp3 dataset
  (``--clips`` 30 s 16 kHz mono clips written with ``tfio.audio.encode_mp3``, validated into a manifest),
  as ``train.py`` feeds it: each window decoded from a slice of its file (``data.window_decode``, the
  default), and with the whole file decoded per window (``window_decode=False``); and from a raw-waveform
  TFRecord extraction of the same clips (``data.tfrecord_dir``);
- ``eval``: clips/s at ``--eval-windows`` windows per clip, through
  :func:`hvd_magtag.evaluate.predict_clips` (mp3 -> windows -> scores -> per-clip mean) and through the
  model alone on in-memory windows.

Training FLOPs per step = 3 x forward FLOPs (:func:`hvd_magtag.bench.models.model_flops`) x batch.
Targets, printed as ratios next to the value (never asserted): a variant's step >= 1.15x the reference
(:data:`TARGET_VS_REFERENCE`) and >= 60% of the fp32 matmul rate (:data:`TARGET_PEAK_FRACTION`); mp3-fed
training >= 0.95x memory-fed (:data:`TARGET_MP3_VS_MEMORY`; printed for TFRecord-fed too). Mixed-precision
variants keep the output layer in float32 (:func:`hvd_magtag.train.build_model`). Each row carries the
1-minute load average when its case finished (``load1``): on a shared CPU, trust ratios from one run more
than absolute numbers.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hvd_magtag import distributed
from hvd_magtag.bench import row
from hvd_magtag.bench.models import model_flops
from hvd_magtag.bench.pipeline import CLIP_SECONDS
from hvd_magtag.config import TrainConfig
from hvd_magtag.errors import ConfigError
from hvd_magtag.models.raw import SAMPLECNN_FRAME_CHANNELS, SAMPLECNN_TOP_CHANNELS, samplecnn_block_channels
from hvd_magtag.models.registry import get_spec

log = logging.getLogger(__name__)

BENCH = "train"
#: Targets printed as ratios (never asserted).
TARGET_VS_REFERENCE = 1.15
TARGET_PEAK_FRACTION = 0.60
TARGET_MP3_VS_MEMORY = 0.95
#: A training step costs forward + two backward products (input and weight gradients).
TRAIN_FLOPS_PER_FORWARD = 3
#: Step variants: name -> (``train.precision``, i.e. the Keras dtype policy; ``train.jit_compile``).
VARIANTS = {
    "fp32": ("float32", False),
    "fp32+xla": ("float32", True),
    "bf16": ("mixed_bfloat16", False),
    "bf16+xla": ("mixed_bfloat16", True),
}
#: ``--quick``: tiny settings that run every case in seconds (smoke tests), not meaningful numbers.
QUICK = {
    "batch": 4,
    "width": 0.0625,
    "blocks": 4,
    "warmup": 1,
    "iters": 2,
    "matmul_size": 128,
    "clips": 4,
    "clip_seconds": 1.0,
    "eval_clips": 2,
    "eval_windows": 3,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="samplecnn", help="registry model (default: samplecnn = 3^9)")
    parser.add_argument("--batch", type=int, default=16, help="examples per step (default: 16)")
    parser.add_argument("--n-tags", type=int, default=50, help="output tags (default: 50)")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier override (default: 1.0)")
    parser.add_argument(
        "--blocks", type=int, default=None, help="SampleCNN override n (number of blocks; default: model's)"
    )
    parser.add_argument(
        "--variants",
        default="fp32,fp32+xla,bf16",
        help=f"comma-separated step variants from {', '.join(VARIANTS)} (default: fp32,fp32+xla,bf16)",
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the plain-Keras reference step")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per case (default: 2)")
    parser.add_argument("--iters", type=int, default=5, help="timed rounds (default: 5)")
    parser.add_argument(
        "--matmul-size", type=int, default=2048, help="N of the N^2 fp32 matmul peak (default: 2048)"
    )
    parser.add_argument(
        "--feed-variant", default="fp32", help="variant trained from memory vs mp3 (default: fp32)"
    )
    parser.add_argument(
        "--clips", type=int, default=32, help="mp3 clips written for the feed cases (default: 32)"
    )
    parser.add_argument("--eval-clips", type=int, default=8, help="clips scored per eval call (default: 8)")
    parser.add_argument("--eval-windows", type=int, default=10, help="windows per clip (default: 10)")
    parser.add_argument(
        "--skip", default="", help="comma-separated parts to leave out: steps, feed, eval (default: none)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny smoke settings (every case, seconds)")


def _settings(args: argparse.Namespace) -> SimpleNamespace:
    """Arguments with ``--quick`` applied (:data:`QUICK` values replace the given ones)."""
    s = SimpleNamespace(**vars(args))
    s.clip_seconds = CLIP_SECONDS
    if args.quick:
        for key, value in QUICK.items():
            setattr(s, key, value)
    s.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in [*s.variants, s.feed_variant] if v not in VARIANTS]
    if unknown:
        raise ConfigError(
            f"--variants/--feed-variant: unknown {', '.join(unknown)}; choose from {', '.join(VARIANTS)}"
        )
    if not s.variants:
        raise ConfigError("--variants: give at least one variant")
    s.skip = {p.strip() for p in args.skip.split(",") if p.strip()}
    if s.skip - {"steps", "feed", "eval"}:
        raise ConfigError(f"--skip {args.skip!r}: choose among steps, feed, eval")
    return s


def load1() -> float:
    """The 1-minute load average (runnable processes; 2 means both cores of this machine busy)."""
    return round(os.getloadavg()[0], 2)


def interleaved(
    cases: dict[str, Callable[[], Any]], *, warmup: int, iters: int
) -> dict[str, tuple[float, float, float]]:
    """Time every case side by side: ``warmup`` untimed calls each, then ``iters`` rounds of one timed call
    per case. Returns name -> (mean s, stdev s, load average after its last call)."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in cases}
    loads: dict[str, float] = {}
    for _ in range(iters):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            loads[name] = load1()
    return {
        name: (statistics.fmean(t), statistics.stdev(t) if len(t) > 1 else 0.0, loads[name])
        for name, t in times.items()
    }


def _rate(count: float, mean: float, spread: float) -> tuple[float, float]:
    """(count/s, spread) from seconds per call (first-order error propagation)."""
    return count / mean, count * spread / (mean * mean)


# -- models and steps ------------------------------------------------------------------------------------


def model_overrides(s: SimpleNamespace) -> dict[str, Any]:
    return {"width": s.width, **({"n": s.blocks} if s.blocks else {})}


def build_variant(s: SimpleNamespace, variant: str):
    """(model, train_step) of the registry model under ``variant``'s dtype policy and jit setting, built as
    :func:`hvd_magtag.train.train` builds them (:func:`~hvd_magtag.train.build_model` with
    ``train.precision``, SGD Nesterov, default TrainConfig otherwise)."""
    from hvd_magtag.train import build_model, make_optimizer, make_train_step

    precision, jit = VARIANTS[variant]
    cfg = TrainConfig(batch_size=s.batch, jit_compile=jit, precision=precision)
    model = build_model(s.model, s.n_tags, model_overrides(s), cfg.precision)
    optimizer = make_optimizer(cfg.optimizer, cfg, cfg.lr)
    optimizer.build(model.trainable_variables)
    return model, make_train_step(model, optimizer, cfg)


def reference_samplecnn(spec, n_tags: int, m: int, n: int, width: float):
    """SampleCNN m^n written the obvious way with Keras 3 layers (Lee et al. 2017's layer plan):
    ``[B, m^(n+1)] -> [B, n_tags]``. Channel plan imported from :mod:`hvd_magtag.models.raw`."""
    import keras
    from keras import layers

    from hvd_magtag.models.blocks import scaled

    inputs = keras.Input(shape=(spec.window,))
    x = layers.Reshape((spec.window, 1))(inputs)
    x = layers.Conv1D(scaled(SAMPLECNN_FRAME_CHANNELS, width), m, strides=m)(x)  # 59049 -> 19683
    x = layers.ReLU()(layers.BatchNormalization()(x))
    for channels in samplecnn_block_channels(n):  # 19683 -> 6561 -> ... -> 3 -> 1
        x = layers.Conv1D(scaled(channels, width), m, padding="same")(x)
        x = layers.MaxPooling1D(m)(layers.ReLU()(layers.BatchNormalization()(x)))
    x = layers.Conv1D(scaled(SAMPLECNN_TOP_CHANNELS, width), 1)(x)  # 1 -> 1
    x = layers.Flatten()(layers.ReLU()(layers.BatchNormalization()(x)))
    outputs = layers.Dense(n_tags, activation="sigmoid")(layers.Dropout(0.5)(x))
    return keras.Model(inputs, outputs)


def reference_step(model, lr: float = 0.01, momentum: float = 0.9):
    """The textbook custom training step: GradientTape, BCE, ``optimizer.apply_gradients``."""
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.SGD(lr, momentum=momentum, nesterov=True)
    loss_fn = keras.losses.BinaryCrossentropy()

    @tf.function
    def reference_train_step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return reference_train_step


def matmul_case(size: int, repeats: int = 4):
    """(call, FLOPs per call): ``repeats`` chained float32 ``size x size`` matmuls in one tf.function."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((size, size)).astype(np.float32) / np.sqrt(size))
    b = tf.constant(rng.standard_normal((size, size)).astype(np.float32) / np.sqrt(size))

    @tf.function
    def loop(a, b):
        x = a
        for _ in range(repeats):
            x = tf.linalg.matmul(x, b)
        return tf.reduce_sum(x)

    return (lambda: float(loop(a, b))), repeats * 2.0 * size**3


def _count_params(model) -> int:
    import numpy as np

    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def random_batch(spec, batch: int, n_tags: int, seed: int = 0):
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = tf.constant((0.1 * rng.standard_normal((batch, *spec.input_shape()))).astype(np.float32))
    y = tf.constant((rng.uniform(size=(batch, n_tags)) < 0.1).astype(np.float32))
    return x, y


def step_rows(s: SimpleNamespace) -> list[dict]:
    """Matmul peak, reference step and hvd_magtag variants, interleaved."""

    rows: list[dict] = []
    matmul, matmul_flops = matmul_case(s.matmul_size)
    cases: dict[str, Callable[[], Any]] = {f"matmul fp32 {s.matmul_size}^2": matmul}
    flops: dict[str, float] = {}
    built = {}
    for variant in s.variants:
        model, step = build_variant(s, variant)
        built[variant] = model
        x, y = random_batch(model.spec, s.batch, s.n_tags)
        cases[f"hvd_magtag {variant}"] = lambda step=step, x=x, y=y: float(step(x, y))
        flops[f"hvd_magtag {variant}"] = TRAIN_FLOPS_PER_FORWARD * model_flops(model) * s.batch
    ours = next(iter(built.values()))
    spec = get_spec(s.model, **model_overrides(s))
    if not s.no_reference and s.model == "samplecnn":
        overrides = model_overrides(s)
        ref = reference_samplecnn(spec, s.n_tags, 3, overrides.get("n", 9), s.width)
        if _count_params(ref) != _count_params(ours):
            raise RuntimeError(
                f"bench train: reference SampleCNN has {_count_params(ref)} trainable parameters, the registry "
                f"model {_count_params(ours)}: the reference no longer matches hvd_magtag/models/raw.py"
            )
        step = reference_step(ref)
        x, y = random_batch(spec, s.batch, s.n_tags)
        cases["reference"] = lambda step=step, x=x, y=y: float(step(x, y))
        flops["reference"] = flops[f"hvd_magtag {s.variants[0]}"]
    elif not s.no_reference:
        log.warning("bench train: the reference step exists for --model samplecnn only; skipped")

    log.info("timing %s (warm-up %d, %d rounds)", ", ".join(cases), s.warmup, s.iters)
    timings = interleaved(cases, warmup=s.warmup, iters=s.iters)
    peak_mean, peak_spread, peak_load = timings.pop(next(iter(cases)))
    peak = matmul_flops / peak_mean / 1e9
    shape = "x".join(map(str, spec.input_shape()))
    extra = {"batch": s.batch, "model": s.model, "input": shape, "width": s.width}
    rows.append(row(BENCH, next(iter(cases)), "fp32 peak", peak, "GFLOP/s",
                    peak * peak_spread / peak_mean, load1=peak_load))  # fmt: skip
    rates = {}
    for name, (mean, spread, load) in timings.items():
        rate, rate_spread = _rate(s.batch, mean, spread)
        rates[name] = rate
        gflops = flops[name] / mean / 1e9
        rows.append(row(BENCH, name, "train throughput", rate, "samples/s", rate_spread, load1=load, **extra))
        rows.append(row(BENCH, name, "step time", mean * 1e3, "ms", spread * 1e3, load1=load, **extra))
        rows.append(row(BENCH, name, "achieved", gflops, "GFLOP/s", load1=load, **extra))
        fraction = gflops / peak
        rows.append(row(BENCH, name, "of fp32 matmul peak", fraction, "x", target=TARGET_PEAK_FRACTION,
                        meets_target=bool(fraction >= TARGET_PEAK_FRACTION), **extra))  # fmt: skip
    if "reference" in rates:
        for variant in s.variants:
            ratio = rates[f"hvd_magtag {variant}"] / rates["reference"]
            rows.append(row(BENCH, f"hvd_magtag {variant} / reference", "speed-up", ratio, "x",
                            target=TARGET_VS_REFERENCE, meets_target=bool(ratio >= TARGET_VS_REFERENCE),
                            **extra))  # fmt: skip
    return rows


# -- feeding and evaluation ---------------------------------------------------------------------------------


def write_clips(folder: Path, s: SimpleNamespace, spec, n_clips: int) -> list:
    """``n_clips`` temporary mp3 clips as catalog Clips (random 10%-positive labels) and their rates."""
    import numpy as np

    from hvd_magtag.bench.pipeline import write_dataset
    from hvd_magtag.data.catalog import Clip

    paths = write_dataset(folder, n_clips, spec.sample_rate, seconds=s.clip_seconds)
    rng = np.random.default_rng(0)
    clips = [Clip(Path(p).stem, p, (rng.random(s.n_tags) < 0.1).astype(np.float32), "train") for p in paths]
    return clips


def _feed_cases(
    s: SimpleNamespace, step, spec, clips, manifest, work: Path, ctx
) -> dict[str, Callable[[], Any]]:
    """One training step fed from memory, from mp3 (slices and whole decodes) and from raw TFRecords."""
    import tensorflow as tf

    from hvd_magtag.data import pipeline, tfrecord

    def batches(**options):
        return iter(pipeline.train_dataset(clips[: s.clips], spec, batch_size=s.batch, manifest=manifest,
                                           threads=ctx.threads, **options))  # fmt: skip

    mp3, mp3_whole = batches(), batches(window_decode=False)
    # the same kind of windows, decoded once and held in memory: one epoch's worth, cycled
    x_mem, y_mem = next(mp3)
    windows = tf.concat([x_mem, next(mp3)[0]], axis=0)
    labels = tf.concat([y_mem, y_mem], axis=0)
    memory = iter(
        tf.data.Dataset.from_tensor_slices((windows, labels))
        .repeat()
        .batch(s.batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )

    def fed(iterator):
        def one_step() -> None:
            x, y = next(iterator)
            float(step(x, y))

        return one_step

    t0 = time.perf_counter()
    tfr = work / "tfrecord-raw"
    tfrecord.extract({"train": clips[: s.clips]}, spec, "raw", tfr, manifest=manifest, threads=ctx.threads,
                     progress=False)  # fmt: skip
    log.info("extracted %d clips to TFRecord in %.1f s", s.clips, time.perf_counter() - t0)
    return {
        "fed from memory": fed(memory),
        "fed from mp3": fed(mp3),
        "fed from whole mp3 decodes": fed(mp3_whole),
        "fed from tfrecord (raw)": fed(batches(tfrecord_dir=str(tfr))),
    }


def _eval_cases(s: SimpleNamespace, model, spec, clips, manifest, ctx) -> dict[str, Callable[[], Any]]:
    """Evaluation from mp3 to clip scores, and the model alone on in-memory windows."""
    import numpy as np
    import tensorflow as tf

    from hvd_magtag.evaluate import predict_clips

    eval_clips = clips[: s.eval_clips]
    predict = tf.function(lambda x: model(x, training=False))
    batch = 32  # EvalConfig default
    rng = np.random.default_rng(1)
    in_memory = tf.constant(
        (0.1 * rng.standard_normal((s.eval_clips * s.eval_windows, *spec.input_shape()))).astype(np.float32)
    )

    def model_only() -> None:
        for start in range(0, int(in_memory.shape[0]), batch):
            predict(in_memory[start : start + batch]).numpy()

    return {
        "eval mp3 -> clip scores": lambda: predict_clips(
            model,
            eval_clips,
            spec,
            windows=s.eval_windows,
            batch_size=batch,
            manifest=manifest,
            ctx=ctx,
            predict_fn=predict,
        ),  # fmt: skip
        "eval model only (memory)": model_only,
    }


def feed_rows(s: SimpleNamespace, work: Path) -> list[dict]:
    """``--feed-variant`` trained from in-memory windows vs from mp3 through the pipeline; eval throughput."""
    from hvd_magtag.data.manifest import Manifest, scan

    ctx = distributed.init()  # already done by run(): returns the same context
    model, step = build_variant(s, s.feed_variant)
    spec = model.spec
    t0 = time.perf_counter()
    n_clips = max(s.clips, s.batch, s.eval_clips)
    clips = write_clips(work, s, spec, n_clips)
    log.info("wrote %d x %.0f s mp3 clips in %.1f s", n_clips, s.clip_seconds, time.perf_counter() - t0)
    manifest = Manifest(scan([c.path for c in clips]))  # as train.py validates: rates and lengths
    extra = {"batch": s.batch, "model": s.model, "variant": s.feed_variant, "clips": n_clips,
             "threads": ctx.threads}  # fmt: skip
    rows: list[dict] = []
    cases: dict[str, Callable[[], Any]] = {}
    if "feed" not in s.skip:
        cases.update(_feed_cases(s, step, spec, clips, manifest, work, ctx))
    if "eval" not in s.skip:
        cases.update(_eval_cases(s, model, spec, clips, manifest, ctx))
    if not cases:
        return rows
    log.info("timing %s (warm-up %d, %d rounds)", ", ".join(cases), s.warmup, s.iters)
    timings = interleaved(cases, warmup=s.warmup, iters=s.iters)
    for name, (mean, spread, load) in timings.items():
        if name.startswith("fed"):
            rate, rate_spread = _rate(s.batch, mean, spread)
            rows.append(row(BENCH, name, "train throughput", rate, "samples/s", rate_spread, load1=load,
                            **extra))  # fmt: skip
        else:
            rate, rate_spread = _rate(s.eval_clips, mean, spread)
            rows.append(row(BENCH, f"{name}, {s.eval_windows} windows/clip", "eval throughput", rate,
                            "clips/s", rate_spread, load1=load, windows=s.eval_windows, **extra))  # fmt: skip
    for source in ("mp3", "whole mp3 decodes", "tfrecord (raw)"):
        if f"fed from {source}" in timings:
            ratio = timings["fed from memory"][0] / timings[f"fed from {source}"][0]
            rows.append(row(BENCH, f"fed from {source} / fed from memory", "ratio", ratio, "x",
                            target=TARGET_MP3_VS_MEMORY, meets_target=bool(ratio >= TARGET_MP3_VS_MEMORY),
                            **extra))  # fmt: skip
    return rows


def run(args: argparse.Namespace) -> list[dict[str, Any]]:

    s = _settings(args)
    distributed.init()  # the thread budget train.py uses; before any TensorFlow op
    rows: list[dict] = []
    load_start = load1()
    if "steps" not in s.skip:
        rows += step_rows(s)
    if not {"feed", "eval"} <= s.skip:
        with tempfile.TemporaryDirectory(prefix="hvd_magtag_bench_train_") as tmp:
            rows += feed_rows(s, Path(tmp))
    for r in rows:
        r.setdefault("load1_at_start", load_start)
        r.setdefault("cpu_count", os.cpu_count())
    return rows
