"""Model registry: one decorator, one home for every model's input needs and options.

    @register_model(spec=ModelSpec(input="raw", sample_rate=16000, window=59049), paper="Lee et al. 2017")
    def samplecnn(spec: ModelSpec, n_tags: int, *, m: int = 3, n: int = 9, width: float = 1.0): ...

    model = create_model("samplecnn", n_tags=50, m=3, n=9)   # -> keras.Model with .spec attached
    spec = get_spec("samplecnn", m=3, n=9)                    # the input the model declares
    list_models()                                              # sorted names

The shape of timm's ``timm/models/_registry.py``: a table filled by ``@register_model`` when a family module
is imported, and lookups; this module imports no model code (and no TensorFlow). The families are imported
by :mod:`hvd_magtag.models` (its ``__init__``), which Python runs before this module whenever
``hvd_magtag.models.registry`` is imported, so the table is complete for every caller.

A builder is ``builder(spec, n_tags, *, option=default, ...) -> keras.Model``: every option it accepts is a
keyword parameter with a default (no ``**kwargs``), so :meth:`ModelEntry.check_overrides` can refuse an
unknown or mistyped override (a grid typo) before anything is built.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hvd_magtag.errors import ConfigError
from hvd_magtag.models.spec import DEFAULT_SAMPLE_RATE, SPEC_OVERRIDES, FbankSpec, ModelSpec

__all__ = [
    "DEFAULT_SAMPLE_RATE",
    "FbankSpec",
    "ModelEntry",
    "ModelSpec",
    "create_model",
    "get_entry",
    "get_spec",
    "list_models",
    "register_model",
    "split_overrides",
]


def _accepts(default: Any, value: Any) -> bool:
    """Whether ``value`` fits an option whose default is ``default`` (bools are not numbers here)."""
    if default is None or isinstance(default, bool) or isinstance(value, bool):
        return default is None or isinstance(value, bool) == isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, str):
        return isinstance(value, str)
    if isinstance(default, Sequence):
        return isinstance(value, list | tuple)
    return True


@dataclass(frozen=True)
class ModelEntry:
    """One registered model: its builder, declared input and where it comes from.

    name:                 registry name (the builder's function name unless given).
    builder:              ``builder(spec, n_tags, **options) -> keras.Model``.
    spec:                 the input the model declares with default options.
    paper:                reference the architecture follows.
    description:          first paragraph of the builder's docstring.
    spec_from_overrides:  ``f(spec, **options) -> ModelSpec`` when options change the input (SampleCNN's m, n
                          set the window); it receives only the options it declares.
    family:               module the builder lives in (``raw``, ``spectral``, ...), like timm's module map.
    """

    name: str
    builder: Callable[..., Any]
    spec: ModelSpec
    paper: str = ""
    description: str = ""
    spec_from_overrides: Callable[..., ModelSpec] | None = None
    family: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def options(self) -> dict[str, Any]:
        """The builder's options and their defaults (spec fields not included)."""
        params = list(inspect.signature(self.builder).parameters.values())[2:]  # after (spec, n_tags)
        return {p.name: p.default for p in params}

    def check_overrides(self, overrides: dict[str, Any]) -> None:
        """ConfigError naming the first unknown or mistyped override and what the model accepts."""
        options = self.options
        for key, value in overrides.items():
            if key in SPEC_OVERRIDES:
                continue
            if key not in options:
                close = difflib.get_close_matches(key, [*options, *SPEC_OVERRIDES], n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(
                    f"model.overrides.{key}: model {self.name!r} has no option {key!r}{hint}; it accepts "
                    f"{', '.join(sorted(options)) or 'no options'} and the input fields "
                    f"{', '.join(SPEC_OVERRIDES)}"
                )
            default = options[key]
            if not _accepts(default, value):
                raise ConfigError(
                    f"model.overrides.{key}={value!r}: model {self.name!r} expects "
                    f"{type(default).__name__} (default {default!r})"
                )


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str | None = None,
    *,
    spec: ModelSpec,
    paper: str = "",
    spec_from_overrides: Callable[..., ModelSpec] | None = None,
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``builder(spec, n_tags, *, options...) -> keras.Model`` under ``name`` (default: its name).

    ``spec_from_overrides(spec, **options) -> ModelSpec`` derives the input spec when an option changes
    it (e.g. SampleCNN's m and n set the window length); overrides whose names are ModelSpec fields
    (sample_rate, window, windowing, n_windows) replace those fields afterwards.
    """

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is registered twice")
        params = list(inspect.signature(builder).parameters.values())
        loose = [p.name for p in params if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if len(params) < 2 or loose or any(p.default is p.empty for p in params[2:]):
            raise TypeError(
                f"model builder {key!r} must be builder(spec, n_tags, *, option=default, ...) with every "
                f"option named and defaulted (no *args/**kwargs: unknown overrides must be refused); got "
                f"{inspect.signature(builder)}"
            )
        doc = inspect.getdoc(builder) or ""
        family = builder.__module__.rsplit(".", 1)[-1]
        _REGISTRY[key] = ModelEntry(
            key, builder, spec, paper, doc.split("\n\n")[0], spec_from_overrides, family, tuple(tags)
        )
        return builder

    return decorate


def list_models(pattern: str = "", family: str = "") -> list[str]:
    """Sorted registered names, optionally matching a shell ``pattern`` (``"samplecnn*"``) or a family."""
    names = [n for n, e in _REGISTRY.items() if not family or e.family == family]
    return sorted(fnmatch.filter(names, pattern) if pattern else names)


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name``; ConfigError naming the choices when unknown."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"model.name {name!r}: unknown model{hint}; choose one of {', '.join(list_models())}"
        )
    return _REGISTRY[name]


def split_overrides(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec field overrides, builder option overrides)."""
    spec_o = {k: v for k, v in overrides.items() if k in SPEC_OVERRIDES}
    return spec_o, {k: v for k, v in overrides.items() if k not in SPEC_OVERRIDES}


def _derive_spec(entry: ModelEntry, overrides: dict[str, Any]) -> ModelSpec:
    entry.check_overrides(overrides)
    spec_o, build_o = split_overrides(overrides)
    spec = entry.spec
    if entry.spec_from_overrides is not None:
        accepted = inspect.signature(entry.spec_from_overrides).parameters
        spec = entry.spec_from_overrides(spec, **{k: v for k, v in build_o.items() if k in accepted})
    return spec.replace(**spec_o) if spec_o else spec


def get_spec(name: str, **overrides: Any) -> ModelSpec:
    """The input spec of model ``name`` after ``overrides`` (ConfigError for an unknown override)."""
    return _derive_spec(get_entry(name), overrides)


def create_model(name: str, n_tags: int = 50, **overrides: Any):
    """Build registered model ``name`` for ``n_tags`` outputs; returns a keras.Model with ``.spec`` and
    ``.registry_name`` set. ConfigError for an unknown model or override."""
    entry = get_entry(name)
    spec = _derive_spec(entry, overrides)
    _, build_o = split_overrides(overrides)
    model = entry.builder(spec, n_tags, **build_o)
    model.spec = spec
    model.registry_name = name
    return model
