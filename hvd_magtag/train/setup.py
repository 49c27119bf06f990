"""Run set-up: the data (validated once, on rank 0), the run directory, the model and optimizer, the resume
verdict and what rank 0 records in run.json; :class:`Job` holds them. Nothing here talks to the other ranks:
rank 0's part reaches them through the training state's sync (hvd_magtag.distributed.shared_state)."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

from hvd_magtag import checkpoint, distributed, finetune
from hvd_magtag.config import Experiment
from hvd_magtag.errors import ConfigError, DataError, RunDirError
from hvd_magtag.models.names import OUTPUT_LAYER
from hvd_magtag.rundir import RunDir
from hvd_magtag.schedules import Schedule

#: the training package's logger, "hvd_magtag.train"
LOGGER = __package__


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


def create_run_dir(exp: Experiment) -> RunDir:
    """The run directory (named now when not given: ``runs/<model>-<UTC time>``), checked
    (:func:`check_run_dir`) and created. Rank 0 only: the others receive its path."""
    if not exp.run_dir:
        exp.run_dir = str(runs_root() / f"{exp.model.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
    run = RunDir(exp.run_dir)
    check_run_dir(run.path)
    try:
        run.path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"{run.path}: cannot create ({e})") from None
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


class Job:
    """The run as every rank knows it, set up at the first state sync (:func:`hvd_magtag.distributed.shared_state`).

    Rank 0 reads the data, the run directory and its checkpoint, once (:meth:`share`); every process then
    joins with what it found (:meth:`join`): its model, schedule, optimizer and compiled step, the checkpoint
    loaded on rank 0, and the state training starts from. A worker joining a running elastic job does the
    same at its first sync and receives the committed weights and step there."""

    def __init__(self, exp: Experiment) -> None:
        self.exp, self.cfg = exp, exp.train
        self.run = self.catalog = self.manifest = self.model = None
        self.schedule = self.optimizer = self.train_step = None
        self.train_clips: list = []
        self.valid_clips: list = []
        self.start: dict[str, Any] = {"step": 0}
        self.plan = None  # finetune.InitPlan of train.init_from (None: random weights)
        self.frozen: list[str] = []  # train.freeze: the layers frozen

    @property
    def step(self) -> int:
        """The global step training starts from (the checkpoint's, or 0)."""
        return int(self.start["step"])

    @property
    def loaded(self) -> list[str]:
        """Layers train.init_from loaded (their rate is train.init_lr_scale times the schedule's)."""
        return list(self.plan.loaded) if self.plan is not None else []

    def variables(self) -> list:
        """Everything the ranks hold alike: model and optimizer variables."""
        return [*self.model.variables, *self.optimizer.variables]

    def share(self) -> dict[str, Any]:
        """Rank 0: validate the files (the manifest is cached beside the data; one rank scans), check and
        create the run directory, build the model, decide whether and where to resume, write config.json and
        run.json. A one-line error here is raised on every rank by the sync."""
        from hvd_magtag.data import load_catalog, manifest

        ctx = distributed.context()
        catalog, clips = manifest.validate(load_catalog(self.exp.data))
        training_splits(catalog, self.exp, ctx)
        run = create_run_dir(self.exp)
        self._build_model(catalog.n_tags)
        info = run_info(self.exp, catalog, self.model, ctx)
        problem = resume_problem(run.info, info) if run.exists() else None
        latest = checkpoint.latest_checkpoint(run.checkpoint_dir)
        if latest and not problem:
            problem = finetune.resume_problem(run.info.get("init_from"), self.cfg)
        if problem:
            raise ConfigError(f"{run.path}: {problem}")
        start = checkpoint.read_state(latest) if latest else {"step": 0}
        record = run.info.get("init_from") if latest else None  # a resumed run never reads its source again
        if int(start["step"]) == 0 and self.cfg.init_from:  # the sync broadcasts the loaded weights
            record = finetune.init_from(self.model, catalog.tags, self.cfg.init_from).to_dict()
        plan = finetune.InitPlan.from_dict(record) if record and record.get("source") else None
        info["init_from"] = finetune.plan_record(plan, self.cfg)
        if int(start["step"]) == 0 and (plan is not None or self.frozen):
            distributed.get_logger(LOGGER).info(finetune.describe(plan, self.frozen, self.cfg.init_lr_scale))
        self.exp.save(run.config_path)
        run.write_run_info({**info, "started_from_step": int(start["step"])})
        shared = {"catalog": catalog, "manifest": clips, "run_dir": str(run.path), "start": start}
        return {**shared, "latest": latest, "plan": record}

    def join(self, shared: dict[str, Any]) -> dict[str, Any]:
        """This process's part of rank 0's set-up ``shared``: the model (built here off rank 0), the schedule
        for this world size, the optimizer the checkpoint was written with (loaded into on rank 0). Returns
        the state attributes to start from (rank 0's are the ones every rank receives)."""
        ctx = distributed.context()
        self.catalog, self.manifest, self.start = shared["catalog"], shared["manifest"], shared["start"]
        self.exp.run_dir = shared["run_dir"]
        self.run = RunDir(shared["run_dir"])
        self.train_clips, self.valid_clips = self.catalog.split("train"), self.catalog.split("valid")
        if self.model is None:
            self._build_model(self.catalog.n_tags)
        record = shared["plan"]
        self.plan = finetune.InitPlan.from_dict(record) if record and record.get("source") else None
        self.schedule = Schedule(self.cfg, ctx.size)  # Horovod: learning rate scaled by the world size
        self.schedule.load_state_dict(self.start.get("schedule", {}))
        self.optimizer, self.train_step = new_optimizer(
            self.model, self.schedule, self.cfg, max(self.step - 1, 0), self.loaded
        )
        if ctx.is_root and shared["latest"] is not None:
            checkpoint.load(shared["latest"], self.model, self.optimizer)
            distributed.get_logger(LOGGER).info(
                "resuming %s from step %d (%s)", self.run.path, self.step, shared["latest"].name
            )
        return {
            "step": self.step,
            "best_roc_auc": self.start.get("best_roc_auc", -1.0),
            "best_step": self.start.get("best_step", -1),
        }

    def _build_model(self, n_tags: int) -> None:
        seed_and_precision(self.cfg)
        self.model = create_model(self.exp, n_tags)
        self.frozen = finetune.freeze_layers(self.model, self.cfg.freeze)  # ConfigError for a bad name


def training_splits(catalog, exp: Experiment, ctx) -> tuple[list, list]:
    """(train clips, valid clips); DataError when the train split is empty or smaller than one global
    batch of this world."""
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
