"""Train a tagging model with Horovod; one process is a world of size 1.

    python -m hvd_magtag.train --model shortchunk_cnn --set model.overrides.width=0.5 --steps 2000
    horovodrun -np 2 python -m hvd_magtag.train --config demo --run-dir runs/demo    # the packaged demo.yaml
    horovodrun -np 2 python -m hvd_magtag.train --run-dir runs/demo      # resume exactly where it stopped

Settings come from, in order: defaults (hvd_magtag.config), the run directory's config.json when resuming
without --config, ``--config`` YAML/JSON, the flags below, then ``--set section.key=value`` (repeatable).
The run directory (hvd_magtag.rundir) receives config.json, run.json, metrics.jsonl, tensorboard/,
checkpoints/, best/ and last/ weights. Only rank 0 writes or logs; every rank computes.

The loop (:func:`train`) follows Horovod's tensorflow2_mnist.py: init, data shard, model, optimizer with
the learning rate scaled by world size, broadcast of model and optimizer state, a ``tf.function`` step
through the distributed gradient tape, sharded validation, rank-0 checkpoints.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

from hvd_magtag import cli, fsutil
from hvd_magtag.config import Experiment
from hvd_magtag.errors import ConfigError, DataError, RunDirError
from hvd_magtag.models.names import OUTPUT_LAYER

# -- command line -----------------------------------------------------------------------------------------

# flag -> dotted config key (each flag is sugar for one --set)
_FLAGS = {
    "model": (
        "model.name",
        str,
        "model name from the registry (python -c 'from hvd_magtag.models import "
        "list_models; print(list_models())')",
    ),
    "dataset": ("data.dataset", str, "synthetic | mtat | jamendo | fma | folder"),
    "data_root": ("data.root", str, "dataset folder (default: the built-in synthetic dataset location)"),
    "steps": ("train.steps", int, "total optimizer steps (global)"),
    "batch_size": ("train.batch_size", int, "clips per batch per rank"),
    "lr": ("train.lr", float, "one-rank learning rate (scaled by world size when train.scale_lr)"),
    "optimizer": ("train.optimizer", str, "sgd (Nesterov momentum) | adam | adamw"),
    "schedule": ("train.schedule", str, "constant | cosine | plateau | staged"),
    "seed": ("train.seed", int, "random seed (model init, data order, dropout)"),
    "validate_every": ("train.validate_every", int, "steps between validations"),
}


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(
        prog="python -m hvd_magtag.train",
        description="Train a music auto-tagging CNN (run under horovodrun for several ranks). Rerunning on a "
        "run directory resumes from its last checkpoint.",
        epilog="Every config option can be set with --set section.key=value, e.g. --set train.clip_norm=5 "
        "--set model.overrides.width=0.5; see hvd_magtag/config.py for the full tree.\n\n"
        + cli.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        debug_flag=True,
    )
    p.add_argument("--config", help="YAML or JSON experiment file, or a packaged config by name (e.g. demo)")
    p.add_argument(
        "--run-dir", help="run directory (default: runs/<model>-<UTC time>); an existing one resumes"
    )
    for name, (key, kind, help_text) in _FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=f"{help_text} [{key}]")
    p.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="reproducible ops and data order: two runs with one seed give the same weights",
    )
    p.add_argument(
        "--elastic",
        action="store_true",
        default=None,
        help="elastic Horovod (launch/elastic.sh): ranks may leave or join; state committed every "
        "train.commit_every steps, learning rate and data shards follow the world size [train.elastic]",
    )
    p.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any config option (repeatable), e.g. train.lr=0.01",
    )
    return p


def experiment_from_args(args: argparse.Namespace) -> Experiment:
    """Defaults < run dir's config.json (resume without --config) < --config < flags < --set."""
    if args.config:
        exp = Experiment.load(args.config)
    elif args.run_dir and (Path(args.run_dir).expanduser() / "config.json").is_file():
        exp = Experiment.load(Path(args.run_dir).expanduser() / "config.json")
    else:
        exp = Experiment()
    sets = [
        f"{key}={getattr(args, name)}"
        for name, (key, _, _) in _FLAGS.items()
        if getattr(args, name) is not None
    ]
    if args.deterministic:
        sets.append("train.deterministic=true")
    if args.elastic:
        sets.append("train.elastic=true")
    exp.apply_overrides(sets + list(args.assignments))
    if args.run_dir:
        exp.run_dir = str(Path(args.run_dir).expanduser().resolve())
    return exp


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_cli(lambda: train(experiment_from_args(args)), debug=args.debug)


# -- setup helpers ----------------------------------------------------------------------------------------


def load_data(data_cfg):
    """(catalog without bad files, manifest). Rank 0 reads the metadata and validates the files (the manifest
    is cached beside the data); the others receive both, so N ranks never scan the dataset at once. A
    one-line error on rank 0 (missing dataset, bad metadata) is raised on every rank. Collective."""
    from hvd_magtag import distributed
    from hvd_magtag.data import load_catalog, manifest

    return distributed.from_root(lambda: manifest.validate(load_catalog(data_cfg)))  # others idle: all cores


def runs_root() -> Path:
    """Where runs go without --run-dir: $HVD_MAGTAG_RUNS, else ./runs (:func:`hvd_magtag.locations.runs_dir`)."""
    from hvd_magtag.locations import runs_dir

    return runs_dir()


#: Free space (bytes) the run directory's file system must have before training starts: checkpoints
#: (model + optimizer arrays), best/last weights, TensorBoard events of a full-size SampleCNN run, with margin.
MIN_FREE_BYTES = 256 * 2**20


def check_run_dir(path: Path, min_free: int = MIN_FREE_BYTES) -> None:
    """RunDirError unless ``path`` is (or can become) a writable directory with ``min_free`` bytes free.

    Probes by creating a file in the nearest existing folder: ``os.access`` says yes to root on a read-only
    mount or a chmod 555 folder, the probe does not. Creates nothing that stays."""
    import shutil
    import tempfile

    path = Path(path)
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise RunDirError(
            f"{path}: {existing} is a file, not a folder; choose another --run-dir (or HVD_MAGTAG_RUNS)"
        )
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".hvd_magtag-probe-"):
            pass
    except OSError as e:
        raise RunDirError(
            f"{path}: cannot write in {existing} ({e.strerror}); choose a writable --run-dir (or HVD_MAGTAG_RUNS)"
        ) from None
    free = shutil.disk_usage(existing).free
    if free < min_free:
        raise RunDirError(
            f"{path}: only {free / 2**20:.0f} MiB free on its file system, training needs at least "
            f"{min_free / 2**20:.0f} MiB for checkpoints and weights; free space or choose another --run-dir"
        )


def prepare_run_dir(exp: Experiment, ctx):
    """The RunDir (named on rank 0 when not given, so every rank agrees), checked and created by rank 0; a
    problem there (see :func:`check_run_dir`) is raised on every rank. Collective."""
    from hvd_magtag import distributed
    from hvd_magtag.rundir import RunDir

    if not exp.run_dir:
        name = f"{exp.model.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}" if ctx.is_root else None
        exp.run_dir = str(runs_root() / distributed.broadcast_object(name))
    run = RunDir(exp.run_dir)

    def check_and_create() -> None:
        try:
            check_run_dir(run.path)
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunDirError(f"{run.path}: cannot create ({e})") from None

    distributed.from_root(check_and_create, catch=(RunDirError,))
    return run


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("hvd_magtag", "tensorflow-cpu", "tensorflow", "keras", "horovod", "numpy", "tensorflow-io"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def run_info(exp: Experiment, catalog, model, ctx) -> dict[str, Any]:
    """run.json content (see hvd_magtag.rundir)."""
    return {
        "model": exp.model.name,
        "overrides": dict(exp.model.overrides),
        "spec": model.spec.to_dict(),
        "tags": list(catalog.tags),
        "n_params": int(model.count_params()),
        "dataset": {
            "name": catalog.name,
            "root": catalog.root,
            "split": exp.data.split,
            "vocabulary": exp.data.vocabulary,
            "clips": catalog.split_counts(),
            "excluded": len(catalog.excluded),
        },
        "world_size": ctx.size,
        "versions": _versions(),
        "command": " ".join(sys.argv),
    }


def resume_problem(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """Why a run directory trained as ``old`` (run.json) cannot continue as ``new``, or None."""
    from hvd_magtag.models.registry import ModelSpec

    # specs compared as ModelSpecs: a run.json written before a field was added lacks it (= its default)
    same_spec = ModelSpec.from_dict(old["spec"]) == ModelSpec.from_dict(new["spec"])
    if (old["model"], old.get("overrides", {})) != (new["model"], new["overrides"]) or not same_spec:
        return (
            f"was trained as model {old['model']!r} with overrides {old.get('overrides', {})}, this run asks for "
            f"{new['model']!r} with {new['overrides']}; use a new --run-dir or the run's own config.json"
        )
    if old.get("tags") != new["tags"]:
        return (
            f"was trained on a {len(old['tags'])}-tag vocabulary, this dataset gives {len(new['tags'])} different "
            "tags; use a new --run-dir or the run's dataset/vocabulary"
        )
    return None


def build_model(name: str, n_tags: int, overrides: dict[str, Any], precision: str = "float32"):
    """``create_model(name, n_tags, **overrides)`` with its layers computing in ``precision``.

    "mixed_bfloat16": convolutions and dense layers compute in bfloat16 on float32 weights (no loss scaling:
    bfloat16 has float32's exponent range); the output layer stays float32 so probabilities keep full
    precision. It pays where bfloat16 is native: CPUs with AVX512_BF16/AMX (through oneDNN), Ampere+ GPUs
    (SampleCNN 3^9 training ~1.5x float32 on a 2-core Xeon: ``python -m hvd_magtag.bench train``). The
    policy is set only while the model is built; weights and checkpoints are the same as in float32.
    """
    import keras

    from hvd_magtag.models.registry import create_model

    if precision == "float32":
        return create_model(name, n_tags=n_tags, **overrides)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = create_model(name, n_tags=n_tags, **overrides)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    model.get_layer(OUTPUT_LAYER).dtype_policy = "float32"
    return model


def make_optimizer(name: str, cfg, lr: float):
    """The optimizer :data:`hvd_magtag.schedules.OPTIMIZERS` names ``name`` (its Keras class and options from
    ``cfg``) at learning rate ``lr``; ConfigError for a name not in that table."""
    import keras

    from hvd_magtag.schedules import optimizer_kind

    kind = optimizer_kind(name)
    return getattr(keras.optimizers, kind.keras_class)(lr, **kind.options(cfg))


def make_train_step(model, optimizer, cfg):
    """A compiled step ``(x [B, ...], y [B, n_tags]) -> local mean binary cross-entropy``: gradients
    averaged across ranks (optionally fp16 on the wire), clipped by global norm, applied."""
    import keras
    import tensorflow as tf

    from hvd_magtag import distributed

    bce = keras.losses.BinaryCrossentropy()
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    compression = "fp16" if cfg.fp16_allreduce else "none"

    @tf.function(jit_compile=cfg.jit_compile)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = bce(y, tf.cast(model(x, training=True), tf.float32))
            target = optimizer.scale_loss(loss) if scaled else loss
        averaged = distributed.DistributedGradientTape(tape, compression=compression)
        grads = averaged.gradient(target, model.trainable_variables)
        if cfg.clip_norm > 0:
            grads, _ = tf.clip_by_global_norm(grads, cfg.clip_norm)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return train_step


def sync_statistics(model) -> None:
    """Average BatchNorm moving statistics over ranks (each rank updates them from its own batches) so that
    validation, checkpoints and saved weights see one model. Collective; no-op at size 1."""
    from hvd_magtag import distributed

    distributed.average_variables([v for v in model.non_trainable_variables if "float" in str(v.dtype)])


def restart_from(weights: Path, model, ctx) -> None:
    """Load ``weights`` on rank 0 and broadcast them (plateau restarts). Collective."""
    from hvd_magtag import distributed

    if ctx.is_root:
        from hvd_magtag.models.weights import load_weights

        load_weights(model, weights)
        logging.getLogger("hvd_magtag.train").info(
            "plateau: learning rate lowered, restarting from %s", weights
        )
    distributed.broadcast_variables(model.variables)


def save_weights(model, path: Path) -> None:
    """``model.save_weights`` atomically (hvd_magtag.fsutil)."""
    with fsutil.atomic_path(path) as tmp:
        model.save_weights(str(tmp))


class Monitor:
    """Rank-0 TensorBoard scalars, metrics.jsonl and progress (tqdm on a terminal, log lines otherwise).
    ``train`` is collective (the logged loss is averaged over ranks)."""

    def __init__(self, run, ctx, cfg, start_step: int, steps_per_epoch: int):
        import tensorflow as tf

        self.run, self.ctx, self.cfg, self.spe = run, ctx, cfg, steps_per_epoch
        self.log = logging.getLogger("hvd_magtag.train")
        self.t0 = self.t_last = time.perf_counter()
        self.step_last, self.losses = start_step, []
        self.writer = tf.summary.create_file_writer(str(run.tensorboard_dir)) if ctx.is_root else None
        self.bar = None
        if ctx.is_root and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=cfg.steps, initial=start_step, unit="step", dynamic_ncols=True)
        if ctx.is_root:  # drop records past the checkpoint we resume from (they will be redone)
            kept = [m for m in run.read_metrics() if m.get("step", 0) <= start_step]
            fsutil.atomic_write(run.metrics_path, "".join(json.dumps(m) + "\n" for m in kept))
            from hvd_magtag.summaries import trim_events

            trim_events(run.tensorboard_dir, start_step)  # and TensorBoard's points past it

    def _record(self, event: dict[str, Any], scalars: dict[str, float]) -> None:
        import tensorflow as tf

        from hvd_magtag.metrics import json_safe

        event["elapsed"] = round(time.perf_counter() - self.t0, 3)
        with open(self.run.metrics_path, "a") as f:
            f.write(json.dumps(json_safe(event)) + "\n")
        with self.writer.as_default(step=event["step"]):
            for name, value in scalars.items():
                if value == value:  # NaN (no tag scorable) is left out of TensorBoard
                    tf.summary.scalar(name, value)
        self.writer.flush()

    def train(self, step: int, loss, lr: float) -> None:
        from hvd_magtag import distributed

        self.losses.append(loss)
        if step % self.cfg.log_every and step != self.cfg.steps:
            return
        import numpy as np

        mean_loss = float(distributed.allreduce(np.float32(np.mean([float(v) for v in self.losses]))))
        self.losses = []
        if not self.ctx.is_root:
            return
        now = time.perf_counter()
        rate = (step - self.step_last) * self.cfg.batch_size * self.ctx.size / max(now - self.t_last, 1e-9)
        eta = (self.cfg.steps - step) * (now - self.t_last) / max(step - self.step_last, 1)
        self.t_last, self.step_last = now, step
        epoch = step / self.spe
        self._record(
            {
                "event": "train",
                "step": step,
                "epoch": round(epoch, 3),
                "loss": mean_loss,
                "lr": lr,
                "samples_per_sec": round(rate, 2),
            },
            {"train/loss": mean_loss, "train/lr": lr, "train/samples_per_sec": rate},
        )
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2g}", samples_s=f"{rate:.0f}")
        else:
            self.log.info(
                "step %d/%d  epoch %.2f  loss %.4f  lr %.3g  %.1f samples/s  ETA %s",
                step,
                self.cfg.steps,
                epoch,
                mean_loss,
                lr,
                rate,
                time.strftime("%H:%M:%S", time.gmtime(eta)),
            )

    def valid(self, step: int, result: dict[str, Any], improved: bool) -> None:
        if not self.ctx.is_root:
            return
        self._record(
            {
                "event": "valid",
                "step": step,
                "roc_auc": result["roc_auc"],
                "pr_auc": result["pr_auc"],
                "loss": result["loss"],
                "best": improved,
                "skipped": sorted(result["skipped"]),
            },
            {
                "valid/roc_auc": result["roc_auc"],
                "valid/pr_auc": result["pr_auc"],
                "valid/loss": result["loss"],
            },
        )
        names = list(result["skipped"])
        more = " ..." if len(names) > 5 else ""
        skipped = f"  ({len(names)} tags without an AUC: {', '.join(names[:5])}{more})" if names else ""
        msg = (
            f"valid @ {step}: ROC-AUC {result['roc_auc']:.4f}  PR-AUC {result['pr_auc']:.4f}  "
            f"loss {result['loss']:.4f}{'  *best*' if improved else ''}{skipped}"
        )
        (self.bar.write if self.bar is not None else self.log.info)(msg)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


# -- the loop ---------------------------------------------------------------------------------------------


def train(exp: Experiment):
    """Train ``exp`` (collective under horovodrun); returns the RunDir. Resumes from the run directory's
    latest checkpoint when there is one."""
    from hvd_magtag import checkpoint, distributed
    from hvd_magtag.config import parse_windows
    from hvd_magtag.evaluate import score_split
    from hvd_magtag.schedules import Schedule

    cfg = exp.validate().train  # every option and rule, before any process group, data or TensorFlow work
    valid_windows = parse_windows(cfg.valid_windows, "train.valid_windows")
    import keras  # after the option checks: a bad option costs no TensorFlow start-up
    import numpy as np
    import tensorflow as tf

    from hvd_magtag.data import pipeline

    ctx = distributed.init()
    log = distributed.get_logger("hvd_magtag.train")
    schedule = Schedule(cfg, ctx.size)

    catalog, manifest = load_data(exp.data)
    train_clips, valid_clips = catalog.split("train"), catalog.split("valid")
    if not train_clips:
        bad = (
            f"; {len(catalog.excluded)} unreadable files excluded (see the bad-files report)"
            if catalog.excluded
            else ""
        )
        raise DataError(f"{catalog.root}: no clips in the train split (data.split={exp.data.split!r}){bad}")
    if len(train_clips) < cfg.batch_size * ctx.size:  # every rank decides alike: no rank waits for the others
        raise DataError(
            f"{catalog.root}: {len(train_clips)} training clips are fewer than train.batch_size x ranks = "
            f"{cfg.batch_size} x {ctx.size}; lower train.batch_size or use fewer ranks"
        )
    run = prepare_run_dir(exp, ctx)

    keras.utils.set_random_seed(cfg.seed)  # same initial weights for the same seed (rank 0's are broadcast)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    if cfg.mixed_precision:
        if tf.config.list_physical_devices("GPU"):
            keras.mixed_precision.set_global_policy("mixed_float16")
        else:
            log.warning("train.mixed_precision needs a GPU; training in float32")
    try:
        model = build_model(exp.model.name, catalog.n_tags, exp.model.overrides, cfg.precision)
    except (ValueError, TypeError) as e:  # the builders reject impossible overrides with ValueError/TypeError
        raise ConfigError(
            f"model {exp.model.name!r} with model.overrides {dict(exp.model.overrides)}: {e}"
        ) from None
    spec, info = model.spec, run_info(exp, catalog, model, ctx)

    # Resume: rank 0 reads the run directory, every rank gets the verdict and the starting state.
    latest = None
    if ctx.is_root:
        problem = resume_problem(run.info, info) if run.exists() else None
        latest = checkpoint.latest_checkpoint(run.checkpoint_dir)
        start = checkpoint.read_state(latest) if latest and not problem else {"step": 0}
        verdict = (problem, start)
    problem, state = distributed.broadcast_object(verdict if ctx.is_root else None)
    if problem:
        raise ConfigError(f"{run.path}: {problem}")
    step = int(state["step"])
    schedule.load_state_dict(state.get("schedule", {}))
    best = {"roc_auc": state.get("best_roc_auc", -1.0), "step": state.get("best_step", -1)}
    if ctx.is_root:
        exp.save(run.config_path)
        run.write_run_info({**info, "started_from_step": step})

    def new_optimizer(at_step):
        opt = make_optimizer(schedule.optimizer_name(at_step), cfg, schedule.lr(at_step))
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            opt = keras.optimizers.LossScaleOptimizer(opt)
        opt.build(model.trainable_variables)
        return opt, make_train_step(model, opt, cfg)

    optimizer, train_step = new_optimizer(max(step - 1, 0))  # the optimizer the checkpoint was written with
    if ctx.is_root and latest is not None:
        checkpoint.load(latest, model, optimizer)
        log.info("resuming %s from step %d (%s)", run.path, step, latest.name)
    distributed.broadcast_model_and_optimizer(model, optimizer)  # identical start on every rank

    def shard(at_step: int, now):
        """This rank's training batches from global step ``at_step`` in a world of ``now.size`` ranks, and
        the steps per epoch of that world."""
        batches = pipeline.train_dataset(
            train_clips,
            spec,
            batch_size=cfg.batch_size,
            manifest=manifest,
            rank=now.rank,
            size=now.size,
            seed=cfg.seed,
            start_step=at_step,
            deterministic=cfg.deterministic,
            threads=now.threads,
            tfrecord_dir=exp.data.tfrecord_dir or None,
            window_decode=exp.data.window_decode,
        )
        spe = cfg.steps_per_epoch or pipeline.steps_per_epoch(len(train_clips), cfg.batch_size, now.size)
        return iter(batches), spe

    batches, steps_per_epoch = shard(step, ctx)
    predict = tf.function(lambda x: model(x, training=False))
    monitor = Monitor(run, ctx, cfg, step, steps_per_epoch)
    log.info(
        "training %s (%s parameters) on %d clips x %d ranks, batch %d/rank, steps %d -> %d; run dir %s",
        exp.model.name,
        f"{info['n_params']:,}",
        len(train_clips),
        ctx.size,
        cfg.batch_size,
        step,
        cfg.steps,
        run.path,
    )

    valid_kw = dict(
        windows=valid_windows, batch_size=exp.eval.batch_size, manifest=manifest, ctx=ctx, predict_fn=predict
    )
    entries = 0

    def run_steps(elastic=None) -> None:
        """Steps until ``cfg.steps``. Elastic: ``elastic`` holds the last commit; after a membership change
        Horovod rolls every variable and ``elastic.step`` back to it and calls this again, which takes the new
        rank and world size: learning rate rescaled, data resharded, the global step count kept."""
        nonlocal step, optimizer, train_step, schedule, ctx, batches, steps_per_epoch, monitor, entries
        entries += 1
        if elastic is not None and entries > 1:
            ctx = distributed.context()
            step = int(elastic.step)
            schedule = Schedule(cfg, ctx.size)
            batches, steps_per_epoch = shard(step, ctx)
            valid_kw["ctx"] = ctx
            monitor.close()
            monitor = Monitor(run, ctx, cfg, step, steps_per_epoch)  # rank 0 may be another process now
            log.info(
                "elastic: continuing on %d ranks from step %d, learning rate %.3g",
                ctx.size,
                step,
                schedule.lr(step),
            )
        while step < cfg.steps:
            if step > 0 and schedule.optimizer_name(step) != schedule.optimizer_name(step - 1):
                # staged: next optimizer, fresh state on every rank
                optimizer, train_step = new_optimizer(step)
            lr = schedule.lr(step)
            optimizer.learning_rate.assign(lr)
            x, y = next(batches)
            loss = train_step(x, y)
            step += 1
            monitor.train(step, loss, lr)

            if valid_clips and (step % cfg.validate_every == 0 or step == cfg.steps):
                sync_statistics(model)
                result, _ = score_split(model, valid_clips, catalog.tags, spec, **valid_kw)
                improved = bool(np.isfinite(result["roc_auc"]) and result["roc_auc"] > best["roc_auc"])
                if improved:
                    best.update(roc_auc=result["roc_auc"], step=step)
                    if ctx.is_root:
                        save_weights(model, run.best_weights)
                monitor.valid(step, result, improved)
                # plateau: lower lr, restart from best
                if schedule.on_validation(improved) and best["step"] > 0:
                    restart_from(run.best_weights, model, ctx)
                    optimizer, train_step = new_optimizer(step)

            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                sync_statistics(model)
                if ctx.is_root:
                    state = {
                        "step": step,
                        "epoch": step // steps_per_epoch,
                        "schedule": schedule.state_dict(),
                        "best_roc_auc": best["roc_auc"],
                        "best_step": best["step"],
                        "seed": cfg.seed,
                        "world_size": ctx.size,
                        "batch_size": cfg.batch_size,
                    }
                    checkpoint.save(run.checkpoint_dir, model, optimizer, state, keep=cfg.keep_checkpoints)
            if elastic is not None and (step % cfg.commit_every == 0 or step == cfg.steps):
                elastic.step = step
                elastic.commit()  # restore point; raises on a membership change (rolled back, re-entered)

    if cfg.elastic:
        run_steps_elastic = distributed.elastic_run(run_steps)
        run_steps_elastic(distributed.elastic_state(model, optimizer, step=step))
    else:
        run_steps()

    monitor.close()
    sync_statistics(model)
    if ctx.is_root:
        save_weights(model, run.last_weights)
        log.info(
            "done: %d steps, best validation ROC-AUC %.4f at step %d; run dir %s",
            step,
            best["roc_auc"],
            best["step"],
            run.path,
        )
    distributed.barrier()
    return run


if __name__ == "__main__":
    sys.exit(main())
