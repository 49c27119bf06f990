"""One Experiment dataclass tree (data / model / train / eval).

Command-line flags, a YAML file (``--config exp.yaml``) and dotted overrides (``--set train.lr=0.01``) all
map onto it; the resolved tree is saved as ``config.json`` in every run directory.

Defaults that are facts about a model (sample rate, window length, features) do not live here: they come
from the model's :class:`~hvd_magtag.models.registry.ModelSpec`.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hvd_magtag import fsutil
from hvd_magtag.errors import ConfigError


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # synthetic | mtat | jamendo | fma | folder
    root: str = ""  # dataset folder; "" = the built-in synthetic dataset location
    split: str = (
        ""  # "" = the dataset's default; mtat: clean (default) | directory; jamendo: split-N (split-0)
    )
    vocabulary: str = "top50"  # top50 | topN (e.g. top20) | path to a tag list file | jamendo category
    subset: str = ""  # fma subset (small | medium | large)
    min_duration: float = 0.0  # seconds; shorter files are reported as bad by the manifest
    cache_dir: str = ""  # manifest cache folder ("" = beside the data, or ~/.cache when read-only)
    tfrecord_dir: str = ""  # read pre-extracted TFRecords instead of decoding mp3
    window_decode: bool = True  # mp3 training windows: decode a slice around the window, not the whole file


@dataclass
class ModelConfig:
    name: str = "samplecnn"
    overrides: dict[str, Any] = field(default_factory=dict)  # passed to create_model(name, **overrides)


@dataclass
class TrainConfig:
    batch_size: int = 16  # per rank
    steps: int = 1000  # total optimizer steps (global, identical on every rank)
    steps_per_epoch: int = 0  # 0 = derived from the training split size
    optimizer: str = "sgd"  # sgd (Nesterov momentum) | adam | adamw
    lr: float = 0.01  # base learning rate for one rank; scaled by world size
    scale_lr: bool = True
    momentum: float = 0.9
    weight_decay: float = 1e-6
    warmup_steps: int = 0
    schedule: str = "constant"  # constant | plateau (Lee et al. 2017) | staged (Won et al. 2020) | cosine
    plateau_patience: int = 3  # validations without improvement before decaying
    plateau_factor: float = 0.2
    stages: str = (
        ""  # staged: "optimizer:lr@start,..." (start = step or fraction); "" = schedules.DEFAULT_STAGES
    )
    clip_norm: float = 0.0  # 0 = no gradient clipping
    fp16_allreduce: bool = False
    mixed_precision: bool = False  # GPU only
    seed: int = 0
    deterministic: bool = False
    validate_every: int = 200  # steps
    valid_windows: str = "3"  # windows per clip scored at validation (as eval.windows: N or "all")
    checkpoint_every: int = 200  # steps
    keep_checkpoints: int = 3
    log_every: int = 20
    jit_compile: bool = False
    # layers' Keras dtype policy: float32 | mixed_bfloat16 (bf16 compute on fp32 weights; pays on AVX512_BF16/AMX
    # CPUs and Ampere+ GPUs; see hvd_magtag.train.build_model and `python -m hvd_magtag.bench train`)
    precision: str = "float32"
    # elastic Horovod (horovodrun --min-np/--max-np --host-discovery-script, Gloo): ranks may leave or join;
    # the state is committed every commit_every steps and rolled back to the last commit on a change
    elastic: bool = False
    commit_every: int = 10  # steps


@dataclass
class EvalConfig:
    split: str = "test"
    windows: str = "10"  # N evenly spaced windows per clip, or "all" consecutive windows
    batch_size: int = 32


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
        from hvd_magtag import resources

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
            import yaml

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
        """Apply ``section.key=value`` strings (value parsed as YAML: 0.01, true, [1,2], text)."""
        import yaml

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


def _merge(obj: Any, d: dict[str, Any], source: str, prefix: str) -> None:
    hints = typing.get_type_hints(type(obj))
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


def _coerce(value: Any, hint: Any, dotted: str, source: str) -> Any:
    target = {"int": int, "float": float, "bool": bool, "str": str}.get(
        hint if isinstance(hint, str) else getattr(hint, "__name__", ""), None
    )
    if target is None:
        return value
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
    elif target is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    elif target is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    elif target is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{source}: option {dotted!r} expects {target.__name__}, got {value!r}")
