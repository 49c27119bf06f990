"""Model registry: one decorator, one home for every model's input needs.

    @register_model(spec=ModelSpec(input="raw", sample_rate=16000, window=59049), paper="Lee et al. 2017")
    def samplecnn(spec: ModelSpec, n_tags: int, **overrides) -> keras.Model: ...

    model = create_model("samplecnn", n_tags=50, m=3, n=9)   # -> keras.Model with .spec attached
    spec = get_spec("samplecnn", m=3, n=9)                    # the input the model declares
    list_models()                                              # sorted names

The pipeline, training, evaluation, tagging and analysis read input needs from the spec alone:
nothing else in the code repeats a sample rate, window length or filterbank parameter.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

#: Sample rate (Hz) of MTAT audio and of the default model specs. The one home of this number.
DEFAULT_SAMPLE_RATE = 16000


@dataclass(frozen=True)
class FbankSpec:
    """Log-mel filterbank parameters, in the vocabulary of ``python_speech_features.logfbank``.

    win_length / hop_length / n_fft are in samples at the spec's sample rate; fmin / fmax in Hz
    (fmax None = Nyquist).
    """

    n_mels: int = 96
    win_length: int = 512
    hop_length: int = 256
    n_fft: int = 512
    fmin: float = 0.0
    fmax: float | None = None
    preemph: float = 0.97

    def n_frames(self, window_samples: int) -> int:
        """Frames produced for ``window_samples`` samples (python_speech_features framing: pad at end)."""
        if window_samples <= self.win_length:
            return 1
        return 1 + -(-(window_samples - self.win_length) // self.hop_length)


@dataclass(frozen=True)
class ModelSpec:
    """What input a model needs.

    input:        "raw" (waveform samples) or "fbank" (log-mel frames computed in graph from the waveform).
    sample_rate:  Hz the audio is resampled to before windowing.
    window:       samples per window (model input length in samples of audio).
    windowing:    "split"   - the model takes one window [B, window] (or [B, frames, n_mels]);
                               clip predictions average window predictions.
                  "superpool" - the model takes all windows of a clip [B, n_windows, window(...)] and pools
                               across them before the classifier.
    n_windows:    windows per clip fed to a superpool model (ignored for split).
    fbank:        filterbank parameters when input == "fbank".
    """

    input: str = "raw"
    sample_rate: int = DEFAULT_SAMPLE_RATE
    window: int = 59049
    windowing: str = "split"
    n_windows: int = 1
    fbank: FbankSpec | None = None

    def __post_init__(self) -> None:
        if self.input not in ("raw", "fbank"):
            raise ValueError(f"ModelSpec.input must be 'raw' or 'fbank', got {self.input!r}")
        if self.windowing not in ("split", "superpool"):
            raise ValueError(f"ModelSpec.windowing must be 'split' or 'superpool', got {self.windowing!r}")
        if self.input == "fbank" and self.fbank is None:
            object.__setattr__(self, "fbank", FbankSpec())
        if self.window <= 0 or self.sample_rate <= 0 or self.n_windows <= 0:
            raise ValueError(f"ModelSpec sizes must be positive: {self}")

    @property
    def window_seconds(self) -> float:
        return self.window / self.sample_rate

    def window_shape(self) -> tuple[int, ...]:
        """Shape of one window as the model sees it: (window,) raw or (frames, n_mels) fbank."""
        if self.input == "raw":
            return (self.window,)
        assert self.fbank is not None
        return (self.fbank.n_frames(self.window), self.fbank.n_mels)

    def input_shape(self) -> tuple[int, ...]:
        """Per-example model input shape (without batch): adds the window axis for superpool models."""
        if self.windowing == "superpool":
            return (self.n_windows, *self.window_shape())
        return self.window_shape()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        d = dict(d)
        if d.get("fbank") is not None:
            d["fbank"] = FbankSpec(**d["fbank"])
        return cls(**d)

    def replace(self, **changes: Any) -> ModelSpec:
        return dataclasses.replace(self, **changes)


@dataclass
class ModelEntry:
    name: str
    builder: Callable[..., Any]
    spec: ModelSpec
    paper: str = ""
    description: str = ""
    spec_from_overrides: Callable[..., ModelSpec] | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str | None = None,
    *,
    spec: ModelSpec,
    paper: str = "",
    spec_from_overrides: Callable[..., ModelSpec] | None = None,
    tags: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``builder(spec, n_tags, **overrides) -> keras.Model`` under ``name`` (default: function name).

    ``spec_from_overrides(spec, **overrides) -> ModelSpec`` derives the input spec when an override changes
    it (e.g. SampleCNN's m and n set the window length); without it, overrides whose names are ModelSpec
    fields (sample_rate, window, windowing, n_windows) replace them directly.
    """

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        key = name or builder.__name__
        if key in _REGISTRY:
            raise ValueError(f"model {key!r} is registered twice")
        doc = inspect.getdoc(builder) or ""
        _REGISTRY[key] = ModelEntry(
            key, builder, spec, paper, doc.split("\n\n")[0], spec_from_overrides, tuple(tags)
        )
        return builder

    return decorate


def _ensure_loaded() -> None:
    # Importing the zoo modules runs their @register_model decorators (no TF work at import time).
    from hvd_magtag.models import raw, spectral  # noqa: F401


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


_SPEC_FIELDS = {f.name for f in dataclasses.fields(ModelSpec)} - {"fbank", "input"}


def split_overrides(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(spec field overrides, builder overrides)."""
    spec_o = {k: v for k, v in overrides.items() if k in _SPEC_FIELDS}
    return spec_o, {k: v for k, v in overrides.items() if k not in _SPEC_FIELDS}


def get_spec(name: str, **overrides: Any) -> ModelSpec:
    """The input spec of model ``name`` after ``overrides``."""
    entry = get_entry(name)
    spec_o, build_o = split_overrides(overrides)
    spec = entry.spec
    if entry.spec_from_overrides is not None:
        spec = entry.spec_from_overrides(spec, **build_o)
    if spec_o:
        spec = spec.replace(**spec_o)
    return spec


def create_model(name: str, n_tags: int = 50, **overrides: Any):
    """Build registered model ``name`` for ``n_tags`` outputs; returns a keras.Model with ``.spec`` set."""
    entry = get_entry(name)
    spec = get_spec(name, **overrides)
    _, build_o = split_overrides(overrides)
    model = entry.builder(spec, n_tags, **build_o)
    model.spec = spec
    model.registry_name = name
    return model
