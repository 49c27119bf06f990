"""Run set-up: the data (validated once, on rank 0), the run directory, the model and optimizer, the resume
verdict and what rank 0 records in run.json. The collective functions say so; the rest are local."""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvd_magtag import checkpoint, distributed, finetune
from hvd_magtag.config import Experiment
from hvd_magtag.errors import ConfigError, DataError, RunDirError
from hvd_magtag.models.names import OUTPUT_LAYER

#: the training package's logger, "hvd_magtag.train"
LOGGER = __package__


def load_data(data_cfg):
    """(catalog without bad files, manifest). Rank 0 reads the metadata and validates the files (the manifest
    is cached beside the data); the others receive both, so N ranks never scan the dataset at once. A
    one-line error on rank 0 (missing dataset, bad metadata) is raised on every rank. Collective."""
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


# -- the run as rank 0 decides it -------------------------------------------------------------------------


@dataclass
class Job:
    """What every rank knows after :func:`prepare`: the experiment, its data and run directory, the model
    (initial weights; rank 0 loads the checkpoint), the resume state and run.json content. ``latest``: the
    checkpoint to resume from (rank 0 only; None elsewhere and on a fresh run)."""

    exp: Experiment
    run: Any
    catalog: Any
    manifest: Any
    train_clips: list
    valid_clips: list
    model: Any
    info: dict[str, Any]
    start: dict[str, Any]
    latest: Path | None
    plan: Any = None  # finetune.InitPlan of train.init_from (None: random weights)

    @property
    def step(self) -> int:
        return int(self.start["step"])

    @property
    def loaded(self) -> list[str]:
        """Layers train.init_from loaded (their rate is train.init_lr_scale times the schedule's)."""
        return list(self.plan.loaded) if self.plan is not None else []


def prepare(exp: Experiment, ctx) -> Job:
    """Data, run directory, model and resume verdict, the same on every rank. Collective: rank 0 reads the
    dataset, the run directory and its checkpoints; the others receive what it found (or its error)."""
    catalog, manifest = load_data(exp.data)  # Horovod: from_root (rank 0 validates the files)
    train_clips, valid_clips = training_splits(catalog, exp, ctx)
    run = prepare_run_dir(exp, ctx)  # Horovod: broadcast_object (its name), from_root (the checks)
    seed_and_precision(exp.train)
    model = create_model(exp, catalog.n_tags)
    frozen = finetune.freeze_layers(model, exp.train.freeze)  # every rank alike; ConfigError for a bad name
    info = run_info(exp, catalog, model, ctx)
    start, latest, record = resume_verdict(
        run, info, ctx, exp.train
    )  # Horovod: broadcast_object (rank 0's verdict)
    step = int(start["step"])
    plan = finetune.plan_for(
        model, catalog.tags, exp.train, step, record
    )  # Horovod: from_root (rank 0 loads)
    info["init_from"] = finetune.plan_record(plan, exp.train)
    if step == 0 and (plan is not None or frozen):
        distributed.get_logger(LOGGER).info(finetune.describe(plan, frozen, exp.train.init_lr_scale))
    if ctx.is_root:
        exp.save(run.config_path)
        run.write_run_info({**info, "started_from_step": step})
    return Job(exp, run, catalog, manifest, train_clips, valid_clips, model, info, start, latest, plan)


def training_splits(catalog, exp: Experiment, ctx) -> tuple[list, list]:
    """(train clips, valid clips); DataError when the train split is empty or smaller than one global
    batch. Every rank decides alike (same catalog and world size): no rank waits for the others."""
    cfg = exp.train
    train_clips, valid_clips = catalog.split("train"), catalog.split("valid")
    if not train_clips:
        bad = (
            f"; {len(catalog.excluded)} unreadable files excluded (see the bad-files report)"
            if catalog.excluded
            else ""
        )
        raise DataError(f"{catalog.root}: no clips in the train split (data.split={exp.data.split!r}){bad}")
    if len(train_clips) < cfg.batch_size * ctx.size:
        raise DataError(
            f"{catalog.root}: {len(train_clips)} training clips are fewer than train.batch_size x ranks = "
            f"{cfg.batch_size} x {ctx.size}; lower train.batch_size or use fewer ranks"
        )
    return train_clips, valid_clips


def seed_and_precision(cfg) -> None:
    """Seed (same initial weights for the same seed; rank 0's are broadcast anyway), op determinism when
    ``train.deterministic``, the mixed_float16 policy when ``train.mixed_precision`` and a GPU exists."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    if cfg.mixed_precision:
        if tf.config.list_physical_devices("GPU"):
            keras.mixed_precision.set_global_policy("mixed_float16")
        else:
            distributed.get_logger(LOGGER).warning("train.mixed_precision needs a GPU; training in float32")


def create_model(exp: Experiment, n_tags: int):
    """The experiment's model (:func:`build_model`); ConfigError naming the model and its overrides when
    the builder rejects them (ValueError/TypeError). The one place a training run's model is made."""
    try:
        return build_model(exp.model.name, n_tags, exp.model.overrides, exp.train.precision)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            f"model {exp.model.name!r} with model.overrides {dict(exp.model.overrides)}: {e}"
        ) from None


def resume_verdict(run, info: dict[str, Any], ctx, cfg) -> tuple[dict[str, Any], Path | None, dict | None]:
    """(state of the checkpoint to resume from, or ``{"step": 0}``; that checkpoint on rank 0; the resumed
    run's fine-tuning record from run.json, :func:`hvd_magtag.finetune.plan_record`). Rank 0 reads the run
    directory; ConfigError on every rank when the run cannot continue as ``info`` (or with other
    fine-tuning options than ``cfg``, the TrainConfig). Collective."""
    latest, verdict = None, None
    if ctx.is_root:
        problem = resume_problem(run.info, info) if run.exists() else None
        latest = checkpoint.latest_checkpoint(run.checkpoint_dir)
        if latest and not problem:
            problem = finetune.resume_problem(run.info.get("init_from"), cfg)
        resuming = latest and not problem
        verdict = (
            problem,
            checkpoint.read_state(latest) if resuming else {"step": 0},
            run.info.get("init_from") if resuming else None,
        )
    problem, start, record = distributed.broadcast_object(verdict)  # Horovod: rank 0's verdict on every rank
    if problem:
        raise ConfigError(f"{run.path}: {problem}")
    return start, latest, record


def new_optimizer(model, schedule, cfg, at_step: int, loaded: list[str] = ()):
    """(optimizer, compiled train step) for global step ``at_step``: the schedule's optimizer at its
    learning rate (loss-scaled under mixed_float16), built on the model's trainable variables; two when the
    ``loaded`` layers (train.init_from) step at train.init_lr_scale times the rate
    (:func:`hvd_magtag.finetune.optimizer_for`). The one place a training run's optimizer is made (a new
    stage or a plateau restart calls it again)."""
    import keras

    from hvd_magtag.train.step import make_train_step

    opt = finetune.optimizer_for(
        model,
        lambda: make_optimizer(schedule.optimizer_name(at_step), cfg, schedule.lr(at_step)),
        loaded,
        cfg.init_lr_scale,
        loss_scale=keras.mixed_precision.global_policy().name == "mixed_float16",
    )
    return opt, make_train_step(model, opt, cfg)


def train_batches(job: Job, at_step: int, ctx):
    """(iterator over this rank's training batches from global step ``at_step`` in a world of ``ctx.size``
    ranks, steps per epoch of that world)."""
    from hvd_magtag.data import pipeline

    exp, cfg = job.exp, job.exp.train
    batches = pipeline.train_dataset(
        job.train_clips,
        job.model.spec,
        batch_size=cfg.batch_size,
        manifest=job.manifest,
        rank=ctx.rank,
        size=ctx.size,
        seed=cfg.seed,
        start_step=at_step,
        deterministic=cfg.deterministic,
        threads=ctx.threads,
        tfrecord_dir=exp.data.tfrecord_dir or None,
        window_decode=exp.data.window_decode,
    )
    steps = cfg.steps_per_epoch or pipeline.steps_per_epoch(len(job.train_clips), cfg.batch_size, ctx.size)
    return iter(batches), steps
