"""What input a model needs: :class:`ModelSpec` (and its log-mel :class:`FbankSpec`).

Registered with every model (:func:`hvd_magtag.models.register_model`); the pipeline, training, evaluation,
tagging, export and analysis read input needs from the spec alone: nothing else in the code repeats a sample
rate, window length or filterbank parameter. No TensorFlow here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

#: Sample rate (Hz) of MTAT audio and of the default model specs. The one home of this number.
DEFAULT_SAMPLE_RATE = 16000
#: ModelSpec.input choices: waveform samples, or log-mel frames computed in graph from the waveform.
INPUTS = ("raw", "fbank")
#: ModelSpec.windowing choices (see :class:`ModelSpec`).
WINDOWINGS = ("split", "superpool")


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
        if self.input not in INPUTS:
            raise ValueError(f"ModelSpec.input must be one of {INPUTS}, got {self.input!r}")
        if self.windowing not in WINDOWINGS:
            raise ValueError(f"ModelSpec.windowing must be one of {WINDOWINGS}, got {self.windowing!r}")
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


#: ModelSpec fields a model override may set directly (``model.overrides.window=...``).
SPEC_OVERRIDES = tuple(f.name for f in dataclasses.fields(ModelSpec) if f.name not in ("input", "fbank"))
