"""Fine-tuning: start a model from another model's layers, keep some fixed, give the loaded ones their own rate.

    python -m hvd_magtag.train --model musicnn --init-from MTT_musicnn --dataset folder --data-root music/ \\
        --set train.freeze=block1_*,block2_* --set train.init_lr_scale=0.1

Three options of :class:`hvd_magtag.config.TrainConfig` (validated by ``Experiment.validate()``; what needs the
built model is checked here):

- ``train.init_from``: resolved like ``--model`` in ``tag``/``evaluate`` (:func:`hvd_magtag.pretrained.resolve_model`):
  a pretrained name (``MTT_musicnn``, imported on first use into the cache) or a run directory; its best
  (else last) weights. :func:`match_layers` decides per layer of the new model: **loaded** when the source has
  a layer of that name whose weights have the same names and shapes; the output layer ``tags`` only when the
  tag vocabulary is the same list, else **re-initialised** (a new output layer), as is a layer whose shapes
  differ; **new** when the source has no layer of that name. Layers inside a sub-model are named by path
  (``window_encoder/conv1``).
- ``train.freeze``: layer names or glob patterns (:func:`fnmatch.fnmatchcase` on the path; a sub-model's name
  covers its layers). A frozen layer gets ``trainable = False``: its variables leave
  ``model.trainable_variables`` (no gradient, no optimizer slot) and its BatchNorm runs in **inference mode**
  (normalises with the moving statistics and does not update them; Keras's rule for a non-trainable
  BatchNormalization, which :class:`~hvd_magtag.models.layers.FusedBatchNorm` follows). Chosen over batch
  statistics because a fixed layer should compute what it computed on the source data: statistics of a small
  fine-tuning set's batches would change its output (and its moving statistics) although its weights are fixed.
- ``train.init_lr_scale``: the loaded, trainable variables are stepped by a second optimizer of the same kind
  at the schedule's rate times the factor (:class:`GroupedOptimizer`); the new and re-initialised ones by the
  first at the schedule's rate. Not gradient scaling: Adam's step does not depend on the gradient's scale.

Resume: :func:`plan_record` goes into run.json (``"init_from"``); a resumed run takes the loaded layers from
there and the weights and both optimizers' state from its checkpoint, it does not read the source again.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import keras

from hvd_magtag import distributed
from hvd_magtag.errors import ConfigError, RunDirError
from hvd_magtag.models.names import OUTPUT_LAYER
from hvd_magtag.pretrained import PRETRAINED, resolve_model
from hvd_magtag.rundir import RunDir


@dataclass
class InitPlan:
    """What :func:`match_layers` decided, layer paths in model order (recorded in run.json)."""

    source: str = ""  # the run directory the weights came from
    source_model: str = ""  # its registry architecture
    loaded: list[str] = field(default_factory=list)
    reinitialised: dict[str, str] = field(default_factory=dict)  # layer -> why it was not loaded
    new: list[str] = field(default_factory=list)  # layers the source has no layer of that name for

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InitPlan:
        known = {k: d[k] for k in ("source", "source_model", "loaded", "reinitialised", "new") if k in d}
        return cls(**known)


def weight_layers(model, prefix: str = "") -> dict[str, Any]:
    """{path: layer} for every layer of ``model`` holding weights, in model order; a functional sub-model's
    layers as ``<sub-model>/<layer>``."""
    out: dict[str, Any] = {}
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            out.update(weight_layers(layer, f"{path}/"))
        elif layer.weights:
            out[path] = layer
    return out


def _signature(layer) -> list[tuple[str, tuple[int, ...]]]:
    return [(w.name, tuple(int(d) for d in w.shape)) for w in layer.weights]


def _shapes(signature) -> str:
    return " ".join("x".join(map(str, shape)) or "scalar" for _, shape in signature)


def match_layers(model, source, source_tags: list[str], tags: list[str]) -> InitPlan:
    """Which layers of ``model`` (its outputs: ``tags``) take ``source``'s (``source_tags``) weights; see the
    module docstring. Copies nothing."""
    theirs = weight_layers(source)
    plan = InitPlan()
    for path, layer in weight_layers(model).items():
        other = theirs.get(path)
        if other is None:
            plan.new.append(path)
        elif path.rsplit("/", 1)[-1] == OUTPUT_LAYER and list(source_tags) != list(tags):
            plan.reinitialised[path] = (
                f"another tag vocabulary ({len(source_tags)} tags there, {len(tags)} here)"
            )
        elif _signature(layer) != _signature(other):
            plan.reinitialised[path] = (
                f"weights {_shapes(_signature(other))} there, {_shapes(_signature(layer))} here"
            )
        else:
            plan.loaded.append(path)
    return plan


def copy_layers(model, source, paths: Iterable[str]) -> None:
    """Assign ``source``'s weights of the layers ``paths`` to ``model``'s (every weight, BatchNorm statistics too)."""
    ours, theirs = weight_layers(model), weight_layers(source)
    for path in paths:
        for mine, other in zip(ours[path].weights, theirs[path].weights, strict=True):
            mine.assign(other.numpy())


def _choices() -> str:
    return ", ".join(PRETRAINED)


def resolve_source(value: str, option: str = "train.init_from"):
    """The :class:`~hvd_magtag.rundir.RunDir` that ``value`` names (a pretrained name is imported on first use);
    ConfigError naming ``option`` when it is not a run directory."""
    run = RunDir(resolve_model(value))
    if not run.exists():
        what = "does not exist" if not run.path.exists() else "is not a run directory (no run.json)"
        raise ConfigError(
            f"{option} {value!r}: {run.path} {what}; give a run directory or a pretrained name ({_choices()})"
        )
    return run


def init_from(model, tags: list[str], value: str, option: str = "train.init_from") -> InitPlan:
    """Load into ``model`` (built for ``tags``) the matching layers of the model ``value`` names; the plan.

    ConfigError naming ``option`` when the source has no weights or shares no layer with ``model``."""
    run = resolve_source(value, option)
    try:
        source = run.load_model("best")
    except RunDirError as e:
        raise ConfigError(f"{option} {value!r}: {e}") from None
    plan = match_layers(model, source, run.tags, tags)
    plan.source, plan.source_model = str(run.path), run.info["model"]
    if not plan.loaded:
        raise ConfigError(
            f"{option} {value!r}: model {plan.source_model!r} has no layer whose name and weight shapes match "
            f"a layer of model {model.name!r}; choose its architecture (--model {plan.source_model})"
        )
    copy_layers(model, source, plan.loaded)
    return plan


def freeze_layers(model, patterns: Iterable[str], option: str = "train.freeze") -> list[str]:
    """Set ``trainable = False`` on the layers ``patterns`` name (see the module docstring); their paths in model
    order. ConfigError naming ``option`` for a pattern that matches no layer with weights (listing them), or
    when nothing would be left to train."""
    layers = weight_layers(model)
    chosen: set[str] = set()
    for pattern in patterns:
        hits = {p for p in layers if fnmatch.fnmatchcase(p, pattern) or p.startswith(f"{pattern}/")}
        if not hits:
            raise ConfigError(
                f"{option} {pattern!r} matches no layer of model {model.name!r}; its layers with weights: "
                f"{', '.join(layers)}"
            )
        chosen |= hits
    frozen = [p for p in layers if p in chosen]
    if frozen and len(frozen) == len(layers):
        raise ConfigError(
            f"{option} {list(patterns)} freezes every layer of model {model.name!r}; nothing would train"
        )
    for path in frozen:
        layers[path].trainable = False
    return frozen


def frozen_variables(model) -> list:
    """Every variable of the layers with ``trainable = False`` (fixed: nothing to average or update)."""
    return [w for layer in weight_layers(model).values() if not layer.trainable for w in layer.weights]


def loaded_trainable_variables(model, loaded: Iterable[str]) -> list:
    """The trainable variables of the loaded layers ``loaded`` (paths), in model order."""
    layers = weight_layers(model)
    return [w for path in loaded for w in layers[path].trainable_weights]


class _GroupRate:
    """``optimizer.learning_rate`` of a :class:`GroupedOptimizer`: ``assign(lr)`` sets the first optimizer's
    rate to ``lr`` and the second's to ``lr x scale``."""

    def __init__(self, owner: GroupedOptimizer):
        self.owner = owner

    def assign(self, value) -> None:
        self.owner.main.learning_rate.assign(value)
        self.owner.scaled.learning_rate.assign(float(value) * self.owner.scale)

    def __float__(self) -> float:
        return float(keras.ops.convert_to_numpy(self.owner.main.learning_rate))


class GroupedOptimizer:
    """Two Keras optimizers from one factory over disjoint variables: ``scaled_variables`` stepped at the rate
    times ``scale``, every other variable at the rate.

    Offers what the training loop, checkpoints and Horovod broadcasts use of an optimizer: ``build``,
    ``built``, ``apply_gradients``, ``learning_rate.assign``, ``variables`` (the first's, then the second's:
    a checkpoint holds both states).
    """

    def __init__(self, make: Callable[[], Any], scaled_variables: Iterable, scale: float):
        self.main, self.scaled, self.scale = make(), make(), float(scale)
        self._scaled_ids = {id(v) for v in scaled_variables}
        self.learning_rate = _GroupRate(self)
        self.learning_rate.assign(float(keras.ops.convert_to_numpy(self.main.learning_rate)))

    def _split(self, variables) -> tuple[list, list]:
        main, scaled = [], []
        for v in variables:
            (scaled if id(v) in self._scaled_ids else main).append(v)
        return main, scaled

    @property
    def built(self) -> bool:
        return self.main.built and self.scaled.built

    def build(self, variables) -> None:
        main, scaled = self._split(variables)
        self.main.build(main)
        self.scaled.build(scaled)

    def apply_gradients(self, grads_and_vars) -> None:
        pairs = list(grads_and_vars)
        scaled = [(g, v) for g, v in pairs if id(v) in self._scaled_ids]
        main = [(g, v) for g, v in pairs if id(v) not in self._scaled_ids]
        for optimizer, group in ((self.main, main), (self.scaled, scaled)):
            if group:
                optimizer.apply_gradients(group)

    @property
    def variables(self) -> list:
        return [*self.main.variables, *self.scaled.variables]


def optimizer_for(
    model, make: Callable[[], Any], loaded: Iterable[str], scale: float, *, loss_scale: bool = False
):
    """``make()`` built on ``model.trainable_variables`` (in a ``LossScaleOptimizer`` with ``loss_scale``); a
    :class:`GroupedOptimizer` instead when ``scale`` != 1 and the loaded layers (``loaded`` paths) have
    trainable variables. Call after :func:`freeze_layers` (it decides what is trainable)."""
    scaled = loaded_trainable_variables(model, loaded) if scale != 1.0 else []
    if scaled and loss_scale:
        raise ConfigError(
            f"train.init_lr_scale={scale:g} needs two optimizers, train.mixed_precision's float16 loss scaling "
            "one; use train.precision=mixed_bfloat16 (no loss scaling) or train.init_lr_scale=1"
        )
    if scaled:
        optimizer = GroupedOptimizer(make, scaled, scale)
    else:
        optimizer = keras.optimizers.LossScaleOptimizer(make()) if loss_scale else make()
    optimizer.build(model.trainable_variables)
    return optimizer


def plan_for(model, tags: list[str], cfg, step: int, record: dict[str, Any] | None) -> InitPlan | None:
    """The run's plan (``cfg``: TrainConfig). At step 0 with ``train.init_from``, rank 0 loads the source's matching
    layers into ``model`` (:func:`init_from`; the other ranks receive the plan, the loop's broadcast the
    weights; a ConfigError there is raised on every rank). A resumed run's plan is its run.json ``record``
    (:func:`plan_record`); the source is not read again. Collective."""
    if step == 0 and cfg.init_from:
        record = distributed.from_root(
            lambda: init_from(model, tags, cfg.init_from).to_dict(), catch=(ConfigError,)
        )
    return InitPlan.from_dict(record) if record and record.get("source") else None


def plan_record(plan: InitPlan | None, cfg) -> dict[str, Any] | None:
    """run.json's ``"init_from"``: the plan and the options it was made under (``cfg``: TrainConfig); None
    for a run from random weights with nothing frozen."""
    if plan is None and not cfg.freeze:
        return None
    return {
        **(plan or InitPlan()).to_dict(),
        "init_from": cfg.init_from,
        "freeze": list(cfg.freeze),
        "init_lr_scale": cfg.init_lr_scale,
    }


def resume_problem(record: dict[str, Any] | None, cfg) -> str | None:
    """Why a run whose run.json holds ``record`` (:func:`plan_record`) cannot resume under ``cfg``, or None."""
    old = record or {"init_from": "", "freeze": [], "init_lr_scale": 1.0}
    new = {"init_from": cfg.init_from, "freeze": list(cfg.freeze), "init_lr_scale": cfg.init_lr_scale}
    changed = [f"train.{k} {old.get(k)!r} -> {v!r}" for k, v in new.items() if old.get(k) != v]
    if changed:
        return (
            f"was started with other fine-tuning options ({'; '.join(changed)}): its checkpoint holds other "
            "trainable variables or optimizer groups; use a new --run-dir or the run's own options"
        )
    return None


def describe(plan: InitPlan | None, frozen: list[str], scale: float) -> str:
    """The one log line saying which layers were loaded, re-initialised, new and frozen."""

    def names(items) -> str:
        return f" [{', '.join(items)}]" if items else ""

    parts = []
    if plan is not None:
        why = [f"{k}: {v}" for k, v in plan.reinitialised.items()]
        parts += [
            f"init from {plan.source} ({plan.source_model}): loaded {len(plan.loaded)} layers{names(plan.loaded)}",
            f"re-initialised {len(why)}{names(why)}",
            f"new {len(plan.new)}{names(plan.new)}",
        ]
    parts.append(f"frozen {len(frozen)}{names(frozen)}")
    if plan is not None:
        parts.append(f"loaded layers' learning rate x{scale:g}")
    return "; ".join(parts)
