"""One Experiment dataclass tree (data / model / train / eval).

Command-line flags, a YAML file (``--config exp.yaml``) and dotted overrides (``--set train.lr=0.01``) all
map onto it; the resolved tree is saved as ``config.json`` in every run directory.

Defaults that are facts about a model (sample rate, window length, features) do not live here: they come
from the model's :class:`~hvd_magtag.models.registry.ModelSpec`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from hvd_magtag import fsutil, resources, schedules
from hvd_magtag.errors import ConfigError
from hvd_magtag.models.registry import get_entry

# -- declared choices ------------------------------------------------------------------------------------
# Closed sets are typing.Literal (values stay plain str in the tree, config.json and every comparison; the
# choices are read back with typing.get_args for validation and messages). Names built from a table elsewhere
# take their choices from that table, so the table stays their one home.

#: data.dataset: the dataset kinds (hvd_magtag.data.LOADERS maps each to its loader).
Dataset = Literal["synthetic", "mtat", "jamendo", "fma", "folder"]
#: eval.split: the split names every catalog uses (hvd_magtag.data.SPLITS).
Split = Literal["train", "valid", "test"]
#: train.optimizer: the names of :data:`hvd_magtag.schedules.OPTIMIZERS` (name -> how it is built).
OptimizerName = Literal[tuple(schedules.OPTIMIZERS)]
#: train.schedule: the names of :data:`hvd_magtag.schedules.SCHEDULES`.
ScheduleName = Literal[tuple(schedules.SCHEDULES)]
#: train.precision: the Keras dtype policy the model's layers compute in (weights stay float32).
Precision = Literal["float32", "mixed_bfloat16"]

DATASETS: tuple[str, ...] = typing.get_args(Dataset)
SPLITS: tuple[str, ...] = typing.get_args(Split)
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)


def check_choice(value: Any, choices: typing.Iterable[str], option: str) -> str:
    """``value`` when it is one of ``choices``; else ConfigError naming ``option`` and the choices."""
    choices = tuple(choices)
    if value not in choices:
        raise ConfigError(f"{option} {value!r}: choose one of {', '.join(choices)}")
    return value


def parse_windows(value: str | int, option: str = "eval.windows") -> int | str:
    """Windows per clip: ``"all"`` (any case, spaces ignored) or a positive count (``10`` or ``"10"``).

    The one parser of this option (eval.windows, train.valid_windows, ``evaluate --windows``, the
    pipelines); ConfigError naming ``option`` otherwise."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    try:
        n = int(value) if not isinstance(value, (bool, float)) else 0
    except (TypeError, ValueError):
        n = 0
    if n <= 0:
        raise ConfigError(f"{option} {value!r}: give a positive number of windows per clip or 'all'")
    return n


@dataclass(frozen=True)
class Bound:
    """A numeric field's range (``Annotated[int, Bound(1, text="...")]``); ``text`` says what to give."""

    low: float
    high: float | None = None
    low_open: bool = False
    text: str = ""

    def check(self, value: Any, option: str) -> None:
        below = value <= self.low if self.low_open else value < self.low
        if below or (self.high is not None and value > self.high):
            raise ConfigError(f"{option}={value!r}: {self.text}")


class _Windows:
    """Marks a field holding "N windows or all" (checked by :func:`parse_windows`)."""

    @staticmethod
    def check(value: Any, option: str) -> None:
        parse_windows(value, option)


def _positive(what: str) -> Bound:
    return Bound(1, text=f"give a positive number of {what}")


def _non_negative(what: str) -> Bound:
    return Bound(0, text=f"give {what} >= 0")


class _LayerPatterns:
    """Marks a list of layer names or glob patterns (``train.freeze``): each a non-empty string. Whether they
    name layers of the model is checked where the model exists (:func:`hvd_magtag.finetune.freeze_layers`)."""

    @staticmethod
    def check(value: Any, option: str) -> None:
        for item in value:
            if not isinstance(item, str) or not item.strip():
                raise ConfigError(
                    f"{option} entry {item!r}: give layer names or glob patterns, e.g. [block1_*, block2_*]"
                )


Windows = Annotated[str, _Windows()]  # N evenly spaced windows per clip, or "all" consecutive windows
Steps = Annotated[int, _positive("steps")]


@dataclass
class DataConfig:
    dataset: Dataset = "synthetic"
    root: str = ""  # dataset folder; "" = the built-in synthetic dataset location
    split: str = (
        ""  # "" = the dataset's default; mtat: clean (default) | directory; jamendo: split-N (split-0)
    )
    vocabulary: str = "top50"  # top50 | topN (e.g. top20) | path to a tag list file | jamendo category
    subset: str = ""  # fma subset (small | medium | large | full; checked by the fma loader)
    min_duration: Annotated[float, _non_negative("seconds")] = 0.0  # shorter files: reported as bad
    cache_dir: str = ""  # manifest cache folder ("" = beside the data, or ~/.cache when read-only)
    tfrecord_dir: str = ""  # read pre-extracted TFRecords instead of decoding mp3
    window_decode: bool = True  # mp3 training windows: decode a slice around the window, not the whole file


@dataclass
class ModelConfig:
    name: str = "samplecnn"  # a registered model (hvd_magtag.models.list_models())
    overrides: dict[str, Any] = field(default_factory=dict)  # passed to create_model(name, **overrides)


@dataclass
class TrainConfig:
    batch_size: Annotated[int, _positive("clips per rank")] = 16  # per rank
    steps: Steps = 1000  # total optimizer steps (global, identical on every rank)
    steps_per_epoch: Annotated[int, _non_negative("steps (0 = from the split size)")] = 0  # 0 = derived
    optimizer: OptimizerName = "sgd"  # sgd (Nesterov momentum) | adam | adamw
    lr: Annotated[float, _non_negative("a learning rate")] = 0.01  # one rank's rate; scaled by world size
    scale_lr: bool = True
    momentum: Annotated[float, Bound(0, 1, text="give a momentum in [0, 1]")] = 0.9
    weight_decay: Annotated[float, _non_negative("a weight decay")] = 1e-6
    warmup_steps: Annotated[int, _non_negative("steps")] = 0
    schedule: ScheduleName = (
        "constant"  # constant | plateau (Lee et al. 2017) | staged (Won et al. 2020) | cosine
    )
    plateau_patience: Annotated[int, _positive("validations")] = 3  # validations without improvement
    plateau_factor: Annotated[float, Bound(0, 1, low_open=True, text="give a factor in (0, 1]")] = 0.2
    stages: str = (
        ""  # staged: "optimizer:lr@start,..." (start = step or fraction); "" = schedules.DEFAULT_STAGES
    )
    clip_norm: Annotated[float, _non_negative("a norm (0 = no clipping)")] = 0.0  # 0 = no gradient clipping
    fp16_allreduce: bool = False
    mixed_precision: bool = False  # GPU only
    seed: int = 0
    deterministic: bool = False
    validate_every: Steps = 200  # steps
    valid_windows: Windows = "3"  # windows per clip scored at validation (as eval.windows: N or "all")
    checkpoint_every: Steps = 200  # steps
    keep_checkpoints: Annotated[int, _positive("checkpoints")] = 3
    log_every: Steps = 20
    jit_compile: bool = False
    # layers' Keras dtype policy: float32 | mixed_bfloat16 (bf16 compute on fp32 weights; pays on AVX512_BF16/AMX
    # CPUs and Ampere+ GPUs; see hvd_magtag.train.build_model and `python -m hvd_magtag.bench train`)
    precision: Precision = "float32"
    # elastic Horovod (horovodrun --min-np/--max-np --host-discovery-script, Gloo): ranks may leave or join;
    # the state is committed every commit_every steps and rolled back to the last commit on a change
    elastic: bool = False
    commit_every: Steps = 10  # steps
    # fine-tuning (hvd_magtag.finetune): start from another model's layers whose names and shapes match
    init_from: str = (
        ""  # pretrained name (python -m hvd_magtag.pretrained list) or run directory; "" = random
    )
    # layers kept fixed (names or glob patterns, e.g. [block1_*, block2_*]): not trainable, BatchNorm in
    # inference mode; "a,b" on the command line is a list too
    freeze: Annotated[list[str], _LayerPatterns()] = field(default_factory=list)
    # learning rate of the loaded (not frozen) layers = the schedule's rate x this factor (0 = kept fixed;
    # a second optimizer of train.optimizer's kind); the new and re-initialised layers get the schedule's rate
    init_lr_scale: Annotated[float, _non_negative("a factor (1 = the schedule's rate)")] = 1.0


@dataclass
class EvalConfig:
    split: Split = "test"
    windows: Windows = "10"  # N evenly spaced windows per clip, or "all" consecutive windows
    batch_size: Annotated[int, _positive("windows per batch")] = 32


@dataclass
class Experiment:
    run_dir: str = ""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # -- (de)serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        fsutil.atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> Experiment:
        exp = cls()
        _merge(exp, d, source, prefix="")
        return exp

    @classmethod
    def load(cls, path: str | Path) -> Experiment:
        """From a YAML or JSON file, or a packaged config by name (``demo``: :func:`hvd_magtag.resources.config`)."""

        if not Path(path).expanduser().is_file():
            try:
                path = resources.config(path)
            except resources.ResourceError:
                pass  # reported below as the file that cannot be read
        path = Path(path).expanduser()
        try:
            text = path.read_text()
        except OSError as e:
            raise ConfigError(
                f"{path}: cannot read config file ({e.strerror}); packaged configs: {', '.join(resources.configs())}"
            ) from None
        if path.suffix == ".json":
            try:
                d = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None
        else:
            try:
                d = yaml.safe_load(text) or {}
            except yaml.YAMLError as e:
                mark = getattr(e, "problem_mark", None)
                where = f"{path}:{mark.line + 1}" if mark else str(path)
                raise ConfigError(f"{where}: invalid YAML ({getattr(e, 'problem', e)})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (data, model, train, eval)")
        return cls.from_dict(d, source=str(path))

    def apply_overrides(self, assignments: list[str]) -> Experiment:
        """Apply ``section.key=value`` strings (value parsed as YAML: 0.01, true, [1,2], text).

        Like :meth:`load`, it converts each value to its option's type (ConfigError naming the source);
        the choices and the rules between options are :meth:`validate`'s, once the tree is complete."""

        for item in assignments:
            if "=" not in item:
                raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. train.lr=0.01")
            key, raw = item.split("=", 1)
            try:
                value = yaml.safe_load(raw) if raw != "" else ""
            except yaml.YAMLError:
                value = raw
            nested: dict[str, Any] = {}
            cursor = nested
            parts = key.strip().split(".")
            for p in parts[:-1]:
                cursor = cursor.setdefault(p, {})
            cursor[parts[-1]] = value
            _merge(self, nested, f"--set {item}", prefix="")
        return self

    # -- validation --------------------------------------------------------------------------------------
    def validate(self) -> Experiment:
        """Check the whole tree once; returns it, or raises ConfigError naming the option and what it accepts.

        - every option: its type, its declared choices (``Literal``) and range (``Bound``), "N or all"
          windows (:func:`parse_windows`);
        - the rules between options: precision vs mixed_precision, an elastic run's schedule, train.stages
          (parsed for the staged schedule, refused with another), the model name and its overrides (the
          registry's :meth:`~hvd_magtag.models.registry.ModelEntry.check_overrides`; no TensorFlow),
          train.init_lr_scale only with train.init_from.

        Checked later, where the thing exists: whether train.freeze's patterns name layers of the built model
        and whether train.init_from resolves to a run directory (:mod:`hvd_magtag.finetune`).

        Not called by :meth:`load` / :meth:`apply_overrides` (a file may be completed by later ``--set``s):
        the tools call it once, on the complete tree, before any data, process group or TensorFlow work.
        """
        _check_fields(self, prefix="")
        t = self.train
        if t.precision != "float32" and t.mixed_precision:
            raise ConfigError(
                f"train.precision={t.precision} and train.mixed_precision=true both pick a mixed policy; keep one"
            )
        if t.elastic and not schedules.SCHEDULES[t.schedule].elastic:
            elastic = [name for name, kind in schedules.SCHEDULES.items() if kind.elastic]
            raise ConfigError(
                f"train.schedule {t.schedule!r} cannot run elastic (train.elastic=true); choose one of "
                f"{', '.join(elastic)}"
            )
        if t.schedule == "staged":
            schedules.parse_stages(t.stages or schedules.DEFAULT_STAGES, t.steps)
        elif t.stages:
            raise ConfigError(
                f"train.stages {t.stages!r} is only read by train.schedule=staged (not {t.schedule!r}); "
                "set train.schedule=staged or leave train.stages empty"
            )
        if t.init_lr_scale != 1.0 and not t.init_from:
            raise ConfigError(
                f"train.init_lr_scale={t.init_lr_scale} scales the rate of layers loaded by train.init_from, "
                "which is not set; set train.init_from (a pretrained name or run directory) or leave the scale 1"
            )
        get_entry(self.model.name).check_overrides(self.model.overrides)
        return self


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _base_type(hint: Any) -> Any:
    """The Python type a declared hint stores: ``Annotated[int, ...]`` -> int, ``Literal["a", ...]`` -> str."""
    if typing.get_origin(hint) is Annotated:
        return _base_type(typing.get_args(hint)[0])
    if typing.get_origin(hint) is Literal:
        return type(typing.get_args(hint)[0])
    return typing.get_origin(hint) or hint


def _check_fields(obj: Any, prefix: str) -> None:
    """Types, choices and ranges of every option of the dataclass ``obj`` (recursively)."""
    for name, hint in _field_types(type(obj)).items():
        value, dotted = getattr(obj, name), f"{prefix}{name}"
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{dotted}.")
            continue
        base = _base_type(hint)
        if not _is_instance(value, base):
            raise ConfigError(f"option {dotted!r} expects {base.__name__}, got {value!r}")
        if typing.get_origin(hint) is Literal:
            check_choice(value, typing.get_args(hint), dotted)
        if typing.get_origin(hint) is Annotated:
            for marker in typing.get_args(hint)[1:]:
                marker.check(value, dotted)


def _is_instance(value: Any, base: Any) -> bool:
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, base)


def _merge(obj: Any, d: dict[str, Any], source: str, prefix: str) -> None:
    hints = _field_types(type(obj))
    names = {f.name for f in dataclasses.fields(obj)}
    for key, value in d.items():
        dotted = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"{source}: unknown option {dotted!r}; known: {', '.join(sorted(names))}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {dotted!r} is a section; give it a mapping")
            _merge(current, value, source, prefix=f"{dotted}.")
            continue
        if isinstance(current, dict):  # free-form mapping (model overrides): merge
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {dotted!r} expects a mapping")
            current.update(value)
            continue
        setattr(obj, key, _coerce(value, hints[key], dotted, source))


def _finite_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _coerce(value: Any, hint: Any, dotted: str, source: str) -> Any:
    """``value`` (from YAML, JSON or --set) as the option's declared type; ConfigError naming ``source``."""
    target = _base_type(hint)
    if target is list:  # a list option (train.freeze): a YAML list, or "a,b" from --set / a flag
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        if isinstance(value, list):
            return value
        raise ConfigError(f"{source}: option {dotted!r} expects a list, e.g. [a, b] or a,b; got {value!r}")
    if target not in (int, float, bool, str):
        return value
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif target is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif target is float and isinstance(value, str) and _finite_float(value) is not None:
        return _finite_float(value)  # YAML 1.1 reads "1e-3" (no dot) as a string
    elif target is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif target is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{source}: option {dotted!r} expects {target.__name__}, got {value!r}")
