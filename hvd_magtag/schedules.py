"""Learning-rate (and optimizer) schedules for the training loop, in plain Python.

The loop asks the schedule, every step, which optimizer and learning rate to use, and tells it, after every
validation, whether the validation ROC-AUC improved. Schedules (``train.schedule``):

- ``constant``: the base rate throughout.
- ``cosine``:   cosine decay from the base rate to 0 at ``train.steps``.
- ``plateau``:  Lee et al. 2017 (SampleCNN): when validation has not improved for ``train.plateau_patience``
                validations, multiply the rate by ``train.plateau_factor`` and restart from the best
                checkpoint (the loop does the restart when :meth:`Schedule.on_validation` says so).
- ``staged``:   Won et al. 2020: Adam first, then SGD (Nesterov) with step drops. ``train.stages`` lists
                ``optimizer:lr@start`` entries, start being a step (int) or a fraction of ``train.steps``
                (float < 1), e.g. the default :data:`DEFAULT_STAGES`.

Every rate is the *one-rank* rate: multiplied by the world size when ``train.scale_lr`` (Goyal et al. 2017),
with a linear warm-up from 0 over ``train.warmup_steps``. The schedule's state is saved in checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hvd_magtag.errors import ConfigError

#: Won et al. 2020's mixed schedule: Adam, then SGD at 1e-3, 1e-4, 1e-5 (starts as fractions of train.steps).
DEFAULT_STAGES = "adam:1e-4@0,sgd:1e-3@0.4,sgd:1e-4@0.5,sgd:1e-5@0.6"


@dataclass(frozen=True)
class OptimizerKind:
    """How a ``train.optimizer`` name is built: ``keras.optimizers.<keras_class>(lr, **options(train_cfg))``."""

    keras_class: str
    options: Callable[[Any], dict[str, Any]]
    description: str


@dataclass(frozen=True)
class ScheduleKind:
    """What a ``train.schedule`` name does; ``elastic``: its rate depends on the step and world size only
    (plateau and staged swap optimizers or reload weights outside an elastic run's committed state)."""

    description: str
    elastic: bool


#: train.optimizer (and train.stages' optimizers): the one table of names; hvd_magtag.config declares its
#: choices from it and :func:`hvd_magtag.train.make_optimizer` builds from it (Keras 3: weight decay decoupled).
OPTIMIZERS: dict[str, OptimizerKind] = {
    "sgd": OptimizerKind(
        "SGD",
        lambda cfg: {"momentum": cfg.momentum, "nesterov": True, "weight_decay": cfg.weight_decay or None},
        "SGD with Nesterov momentum (train.momentum, train.weight_decay)",
    ),
    "adam": OptimizerKind("Adam", lambda cfg: {}, "Adam"),
    "adamw": OptimizerKind(
        "AdamW", lambda cfg: {"weight_decay": cfg.weight_decay}, "AdamW (train.weight_decay)"
    ),
}

#: train.schedule: the one table of names (see the module docstring).
SCHEDULES: dict[str, ScheduleKind] = {
    "constant": ScheduleKind("the base rate throughout", elastic=True),
    "cosine": ScheduleKind("cosine decay to 0 at train.steps", elastic=True),
    "plateau": ScheduleKind("decay on a validation plateau, restart from the best weights", elastic=False),
    "staged": ScheduleKind("train.stages: optimizer:lr@start entries", elastic=False),
}


def optimizer_kind(name: str, option: str = "train.optimizer") -> OptimizerKind:
    """The :data:`OPTIMIZERS` entry of ``name``; ConfigError naming ``option`` and the choices."""
    if name not in OPTIMIZERS:
        raise ConfigError(f"{option} {name!r}: choose one of {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def schedule_kind(name: str) -> ScheduleKind:
    """The :data:`SCHEDULES` entry of ``name``; ConfigError naming train.schedule and the choices."""
    if name not in SCHEDULES:
        raise ConfigError(f"train.schedule {name!r}: choose one of {', '.join(SCHEDULES)}")
    return SCHEDULES[name]


@dataclass(frozen=True)
class Stage:
    optimizer: str  # a key of OPTIMIZERS
    lr: float  # one-rank learning rate
    start: int  # first step (global) of the stage


def parse_stages(text: str, total_steps: int) -> list[Stage]:
    """``"adam:1e-4@0,sgd:1e-3@0.4"`` -> stages sorted by start; raises ConfigError naming train.stages."""
    stages = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        try:
            head, start_text = item.split("@")
            name, lr_text = head.split(":")
            lr = float(lr_text)
            start_value = float(start_text)
        except ValueError:
            raise ConfigError(
                f"train.stages entry {item!r}: expected optimizer:lr@start, e.g. sgd:1e-3@0.5 or sgd:1e-3@4000"
            ) from None
        optimizer_kind(name, option=f"train.stages entry {item!r}: optimizer")
        start = (
            int(round(start_value * total_steps))
            if "." in start_text or start_value < 1
            else int(start_value)
        )
        stages.append(Stage(name, lr, start))
    stages.sort(key=lambda s: s.start)
    if not stages or stages[0].start != 0:
        raise ConfigError(f"train.stages {text!r}: the first stage must start at 0")
    return stages


class Schedule:
    """Optimizer name and learning rate per global step, plus the plateau logic.

    ``cfg`` is a :class:`hvd_magtag.config.TrainConfig` (not imported: config imports this module's tables).
    ``world_size`` scales rates when ``cfg.scale_lr``. State (plateau decays, validations without
    improvement) round-trips through :meth:`state_dict` / :meth:`load_state_dict`.
    """

    def __init__(self, cfg: Any, world_size: int = 1):
        schedule_kind(cfg.schedule)  # validated by Experiment.validate(); a hand-built config fails here too
        optimizer_kind(cfg.optimizer)
        self.cfg = cfg
        self.scale = world_size if cfg.scale_lr else 1
        if cfg.schedule == "staged":
            self.stages = parse_stages(cfg.stages or DEFAULT_STAGES, cfg.steps)
        else:
            self.stages = [Stage(cfg.optimizer, cfg.lr, 0)]
        self.decays = 0  # plateau: how many times the rate was multiplied by plateau_factor
        self.bad_validations = 0  # plateau: validations since the last improvement

    def stage(self, step: int) -> Stage:
        current = self.stages[0]
        for s in self.stages:
            if s.start <= step:
                current = s
        return current

    def optimizer_name(self, step: int) -> str:
        return self.stage(step).optimizer

    def lr(self, step: int) -> float:
        """Learning rate for global step ``step`` (0-based), world-size scaled, warm-up included."""
        cfg = self.cfg
        rate = self.stage(step).lr * self.scale
        if cfg.schedule == "cosine":
            span = max(1, cfg.steps - cfg.warmup_steps)
            progress = min(1.0, max(0.0, (step - cfg.warmup_steps) / span))
            rate *= 0.5 * (1.0 + math.cos(math.pi * progress))
        elif cfg.schedule == "plateau":
            rate *= cfg.plateau_factor**self.decays
        if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
            rate *= (step + 1) / cfg.warmup_steps
        return rate

    def on_validation(self, improved: bool) -> bool:
        """Record a validation result; True when the loop must restart from the best checkpoint (plateau)."""
        if improved:
            self.bad_validations = 0
            return False
        self.bad_validations += 1
        if self.cfg.schedule == "plateau" and self.bad_validations >= self.cfg.plateau_patience:
            self.bad_validations = 0
            self.decays += 1
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"decays": self.decays, "bad_validations": self.bad_validations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.decays = int(state.get("decays", 0))
        self.bad_validations = int(state.get("bad_validations", 0))
