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


#: FbankSpec choices (the first of each is the default: python_speech_features' logfbank).
FBANK_CHOICES = {
    "filters": ("psf", "librosa"),
    "window_fn": ("rect", "hann"),
    "mel_scale": ("htk", "slaney"),
    "mel_norm": ("none", "slaney"),
    "log": ("ln", "log10_1p"),
}


@dataclass(frozen=True)
class FbankSpec:
    """Log-mel filterbank parameters; the defaults are ``python_speech_features.logfbank``'s recipe.

    win_length / hop_length / n_fft are in samples at the spec's sample rate; fmin / fmax in Hz
    (fmax None = Nyquist). The other fields pick the recipe (:mod:`hvd_magtag.features` has the exact
    semantics of each):

    filters:   "psf" - python_speech_features' triangles on integer FFT bins, power ``|X|**2 / n_fft``, frames
               of win_length samples; "librosa" - ``librosa.filters.mel``'s triangles on exact frequencies,
               power ``|X|**2``, frames of n_fft samples (a shorter window centred in them).
    window_fn: "rect" (no taper) | "hann" (periodic, as ``scipy.signal.get_window("hann", n)`` / librosa).
    center:    False - frames start at multiples of hop_length, the last one zero-padded at the end;
               True - frames are centred on multiples of hop_length (librosa's ``center=True`` with zero
               padding) and a window of n samples owns the ``ceil(n / hop_length)`` frames centred inside it.
    mel_scale: "htk" (2595 log10(1 + f/700)) | "slaney" (linear below 1 kHz, log above; librosa's default).
    mel_norm:  "none" | "slaney" (each triangle scaled to unit area: 2 / (f_high - f_low)).
    log:       "ln" (natural log, zero energies floored at float64 eps) | "log10_1p"
               (``log10(1 + log_gain * energy)``, musicnn's).
    """

    n_mels: int = 96
    win_length: int = 512
    hop_length: int = 256
    n_fft: int = 512
    fmin: float = 0.0
    fmax: float | None = None
    preemph: float = 0.97
    filters: str = "psf"
    window_fn: str = "rect"
    center: bool = False
    mel_scale: str = "htk"
    mel_norm: str = "none"
    log: str = "ln"
    log_gain: float = 10000.0

    def __post_init__(self) -> None:
        for name, choices in FBANK_CHOICES.items():
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"FbankSpec.{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}"
                )
        if self.filters == "psf" and (self.mel_scale, self.mel_norm) != ("htk", "none"):
            raise ValueError(
                "FbankSpec: filters='psf' builds HTK-scale, unnormalised triangles; use filters='librosa'"
            )
        if self.filters == "librosa" and self.win_length > self.n_fft:
            raise ValueError(f"FbankSpec: win_length {self.win_length} > n_fft {self.n_fft} (librosa frames)")

    @property
    def frame_length(self) -> int:
        """Samples per analysis frame: win_length (psf) or n_fft (librosa, the window centred in it)."""
        return self.win_length if self.filters == "psf" else self.n_fft

    def n_frames(self, window_samples: int) -> int:
        """Frames produced for ``window_samples`` samples (see ``center``)."""
        if self.center:
            return max(1, -(-window_samples // self.hop_length))
        if window_samples <= self.frame_length:
            return 1
        return 1 + -(-(window_samples - self.frame_length) // self.hop_length)


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
