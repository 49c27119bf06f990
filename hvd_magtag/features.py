"""In-graph log-mel filterbank: the one implementation, matching ``python_speech_features.logfbank`` (the
default recipe) or ``librosa.feature.melspectrogram`` (``FbankSpec(filters="librosa", ...)``, e.g. musicnn's).

    feats = logfbank(waveform, spec.fbank, spec.sample_rate)    # [..., samples] -> [..., frames, n_mels]
    to_input = features_for(spec)                               # the ONE waveform -> model-input function
    x = to_input(windows)                                       # used by the pipeline, tagger and exporter

Reference semantics reproduced (python_speech_features 0.6, ``logfbank(signal, samplerate,
winlen=win_length/sample_rate, winstep=hop_length/sample_rate, nfilt=n_mels, nfft=n_fft, lowfreq=fmin,
highfreq=fmax, preemph=preemph)``):

- preemphasis ``y[0] = x[0], y[t] = x[t] - preemph * x[t-1]`` over the whole input;
- framing: ``1 + ceil((samples - win_length) / hop_length)`` frames (1 if shorter), the last frame
  zero-padded at the end; rectangular window (no taper);
- power spectrum ``|rfft(frame, n_fft)|**2 / n_fft`` (a frame longer than n_fft is truncated);
- its mel filterbank: ``n_mels + 2`` points evenly spaced in mel (HTK formula, 2595 log10(1 + f/700))
  mapped to integer FFT bins ``floor((n_fft + 1) * hz / sample_rate)``, triangular filters on those bins;
- energies of exactly 0 replaced by float64 machine epsilon (2.2e-16) before the natural log.

The librosa recipe (``filters="librosa"``; librosa 0.11's ``melspectrogram(y, sr, n_fft, hop_length,
win_length, window="hann", center=True, pad_mode="constant", power=2.0, n_mels, fmin, fmax, htk, norm)``):

- frames of ``n_fft`` samples, the periodic Hann window of ``win_length`` samples centred in them;
  ``center=True``: frame ``k`` centred on sample ``k * hop_length``, zeros outside the input (librosa pads
  ``n_fft // 2`` zeros each side); a window of ``n`` samples owns the ``ceil(n / hop_length)`` frames centred
  inside it, so consecutive windows of a multiple of ``hop_length`` samples tile the clip's frame grid exactly
  (the first frame of each window sees zeros where a whole-clip spectrogram sees the previous window's last
  ``n_fft // 2`` samples);
- power ``|rfft(frame * window, n_fft)|**2`` (no 1/n_fft), then ``librosa.filters.mel`` triangles on the
  exact FFT bin frequencies ``k * sample_rate / n_fft`` between mel points equally spaced on the ``mel_scale``
  (``"slaney"``: librosa's default, linear below 1 kHz and logarithmic above), scaled to unit area when
  ``mel_norm="slaney"``;
- ``log="log10_1p"``: ``log10(1 + log_gain * energy)`` (musicnn: gain 10000, after a float16 cast that this
  graph does not copy).

Tolerances (tested in tests/test_features.py): psf recipe, :data:`REFERENCE_TOLERANCE` = max abs diff < 1e-3 on
the log values; librosa recipe, :data:`LIBROSA_TOLERANCE` on ``log10(1 + 10000 x)`` values against librosa's
float32 power (musicnn's float16 rounding moves them by up to ~2e-4 more).
Both recipes compute in float64. Psf recipe: the graph computes in float64 like the reference (float32 audio in, float32 features out); on
decoded mp3 audio, tones, noise and digital silence the float32 outputs were bit-identical here. A float32
graph differed by up to 1.5e-3 in stop-band bins of clean signals (energy ~1e-10 of the frame's peak,
where FFT rounding dominates); float64 costs ~15% more in the filterbank, small beside the mp3 decode.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
from python_speech_features import logfbank as psf_logfbank

from hvd_magtag.models.registry import FbankSpec, ModelSpec

#: Max abs difference of :func:`logfbank` from the reference on log energies (stated tolerance).
REFERENCE_TOLERANCE = 1e-3
#: Max abs difference of :func:`logfbank` (librosa recipe, ``log10_1p`` with gain 1e4) from
#: ``log10(1 + 1e4 * librosa.feature.melspectrogram(...))`` on the same samples (stated tolerance).
LIBROSA_TOLERANCE = 1e-4

#: python_speech_features replaces zero energies by numpy.finfo(float).eps (float64) before the log.
LOG_FLOOR = float(np.finfo(np.float64).eps)


#: Slaney mel scale (librosa's default, after Slaney's Auditory Toolbox): linear below 1 kHz, log above.
_SLANEY_F_SP = 200.0 / 3  # Hz per mel in the linear part
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP  # 15 mels
_SLANEY_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Hz to mels: ``scale="htk"`` (python_speech_features) ``2595 * log10(1 + hz / 700)``; ``"slaney"``
    (librosa's default) ``hz / (200/3)`` below 1 kHz, ``15 + log(hz / 1000) / (log(6.4) / 27)`` above."""
    hz = np.asarray(hz, np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    linear = hz / _SLANEY_F_SP
    logpart = (
        _SLANEY_MIN_LOG_MEL
        + np.log(np.maximum(hz, _SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    )
    return np.where(hz >= _SLANEY_MIN_LOG_HZ, logpart, linear)


def mel_to_hz(mel: np.ndarray | float, scale: str = "htk") -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    linear = mel * _SLANEY_F_SP
    logpart = _SLANEY_MIN_LOG_HZ * np.exp(
        _SLANEY_LOGSTEP * (np.maximum(mel, _SLANEY_MIN_LOG_MEL) - _SLANEY_MIN_LOG_MEL)
    )
    return np.where(mel >= _SLANEY_MIN_LOG_MEL, logpart, linear)


def mel_points_hz(fbank: FbankSpec, sample_rate: int) -> np.ndarray:
    """The ``n_mels + 2`` filter edge/centre frequencies (Hz), equally spaced on ``fbank.mel_scale`` from
    fmin to fmax; filter ``j`` rises from point ``j`` to ``j + 1`` and falls to ``j + 2``."""
    fmax = fbank.fmax or sample_rate / 2
    if fmax > sample_rate / 2:
        raise ValueError(f"FbankSpec.fmax={fmax} Hz is above Nyquist ({sample_rate / 2} Hz); lower it")
    scale = fbank.mel_scale
    return mel_to_hz(
        np.linspace(hz_to_mel(fbank.fmin, scale), hz_to_mel(fmax, scale), fbank.n_mels + 2), scale
    )


def mel_centres_hz(fbank: FbankSpec, sample_rate: int) -> np.ndarray:
    """Centre frequency (Hz) of each of the ``n_mels`` filters of ``fbank``."""
    return mel_points_hz(fbank, sample_rate)[1:-1]


def mel_filterbank(fbank: FbankSpec, sample_rate: int) -> np.ndarray:
    """The filters as a float64 matrix ``[n_fft // 2 + 1, n_mels]`` (bins x filters): ``power @ matrix``
    gives filter energies.

    ``filters="psf"``: ``python_speech_features.get_filterbanks`` (integer bin edges
    ``floor((n_fft + 1) * hz / sample_rate)``), transposed. ``filters="librosa"``: ``librosa.filters.mel``
    (triangles evaluated at the bin frequencies ``k * sample_rate / n_fft``; ``mel_norm="slaney"`` scales
    filter ``j`` by ``2 / (hz[j + 2] - hz[j])``), transposed, in float64 (librosa rounds it to float32).
    """
    points = mel_points_hz(fbank, sample_rate)
    n_bins = fbank.n_fft // 2 + 1
    if fbank.filters == "librosa":
        freqs = np.linspace(0.0, sample_rate / 2, n_bins)
        widths = np.diff(points)  # [n_mels + 1]
        ramps = points[:, None] - freqs[None, :]  # [n_mels + 2, bins]
        lower = -ramps[:-2] / widths[:-1, None]
        upper = ramps[2:] / widths[1:, None]
        weights = np.maximum(0.0, np.minimum(lower, upper))  # [n_mels, bins]
        if fbank.mel_norm == "slaney":
            weights *= (2.0 / (points[2:] - points[:-2]))[:, None]
        return weights.T
    bins = np.floor((fbank.n_fft + 1) * points / sample_rate)
    matrix = np.zeros([n_bins, fbank.n_mels], np.float64)
    for j in range(fbank.n_mels):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        for i in range(int(lo), int(mid)):
            matrix[i, j] = (i - lo) / (mid - lo)
        for i in range(int(mid), int(hi)):
            matrix[i, j] = (hi - i) / (hi - mid)
    return matrix


def analysis_window(fbank: FbankSpec) -> np.ndarray | None:
    """The taper applied to each frame, float64 ``[fbank.frame_length]``, or None for "rect": the periodic
    Hann window of win_length samples (``scipy.signal.get_window("hann", win_length)``), centred in the
    frame with zeros either side when the frame is longer (librosa)."""
    if fbank.window_fn == "rect":
        return None
    n = fbank.win_length
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)
    left = (fbank.frame_length - n) // 2
    return np.pad(hann, (left, fbank.frame_length - n - left))


def frame(x: tf.Tensor, win_length: int, hop_length: int, center: bool = False) -> tf.Tensor:
    """``[..., samples] -> [..., frames, win_length]``.

    ``center=False`` (python_speech_features): frames start at multiples of ``hop_length``; the end is
    zero-padded so that ``frames = 1 + ceil((samples - win_length) / hop_length)`` (1 when samples <=
    win_length). ``center=True``: frame ``k`` is centred on sample ``k * hop_length`` (its first sample is
    ``k * hop_length - win_length // 2``), zeros outside the input, ``frames = ceil(samples / hop_length)``
    (at least 1).
    """
    n = tf.shape(x)[-1]
    if center:
        n_frames = tf.maximum(-(-n // hop_length), 1)
        left = win_length // 2
    else:
        n_frames = 1 + tf.maximum(-((win_length - n) // hop_length), 0)  # 1 + ceil(max(n - win, 0) / hop)
        left = 0
    right = tf.maximum((n_frames - 1) * hop_length + win_length - left - n, 0)
    paddings = tf.concat([tf.zeros([tf.rank(x) - 1, 2], tf.int32), [[left, right]]], axis=0)
    frames = tf.signal.frame(tf.pad(x, paddings), win_length, hop_length, axis=-1)
    return frames[..., :n_frames, :] if center else frames


def context_samples(fbank: FbankSpec) -> int:
    """Samples before a window that its frames read: the left half of a centred first frame
    (``frame_length // 2`` when ``fbank.center``), else 0."""
    return fbank.frame_length // 2 if fbank.center else 0


def window_context(spec: ModelSpec) -> int:
    """Samples of audio before each window that ``features_for(spec, with_context=True)`` reads (0 for raw
    models and uncentred filterbanks; 256 for musicnn's)."""
    return context_samples(spec.fbank) if spec.input == "fbank" and spec.fbank is not None else 0


def logfbank(waveform: tf.Tensor, fbank: FbankSpec, sample_rate: int, context: int = 0) -> tf.Tensor:
    """Log mel filterbank energies of ``waveform`` float32 ``[..., samples]`` at ``sample_rate`` Hz.

    Returns float32 ``[..., frames, n_mels]`` with ``frames = fbank.n_frames(samples)``: ``fbank``'s recipe
    (python_speech_features' by default, or librosa's; see the module docstring for the exact semantics and
    tolerances). ``context`` (0 or :func:`context_samples`) > 0: the input is ``[..., context + samples]``,
    the audio that precedes the window first, so centred frames read it instead of zeros (the window's frames
    are then exactly those of a whole-clip spectrogram).
    """
    # float64 like the psf reference: float32 FFT rounding (~1e-7 of a frame's peak) would swamp stop-band bins.
    x = tf.cast(waveform, tf.float64)
    if fbank.preemph:
        x = tf.concat([x[..., :1], x[..., 1:] - fbank.preemph * x[..., :-1]], axis=-1)
    if context:
        if context != context_samples(fbank):
            raise ValueError(f"logfbank: context {context} != {context_samples(fbank)} samples for {fbank}")
        length, hop = fbank.frame_length, fbank.hop_length
        n = tf.shape(x)[-1] - context
        n_frames = tf.maximum(-(-n // hop), 1)
        right = tf.maximum((n_frames - 1) * hop + length - context - n, 0)
        paddings = tf.concat([tf.zeros([tf.rank(x) - 1, 2], tf.int32), [[0, right]]], axis=0)
        frames = tf.signal.frame(tf.pad(x, paddings), length, hop, axis=-1)[..., :n_frames, :]
    else:
        frames = frame(x, fbank.frame_length, fbank.hop_length, fbank.center)  # [..., frames, frame_length]
    taper = analysis_window(fbank)
    if taper is not None:
        frames = frames * tf.constant(taper, tf.float64)
    spectrum = tf.signal.rfft(frames, fft_length=[fbank.n_fft])  # [..., frames, n_fft // 2 + 1]
    power = tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))
    if fbank.filters == "psf":
        power = power / fbank.n_fft
    filters = tf.constant(mel_filterbank(fbank, sample_rate), tf.float64)
    energies = tf.tensordot(power, filters, axes=1)  # [..., frames, n_mels]
    if fbank.log == "log10_1p":
        out = tf.math.log1p(fbank.log_gain * energies) / np.log(10.0)
    else:
        energies = tf.where(energies == 0.0, tf.constant(LOG_FLOOR, tf.float64), energies)
        out = tf.math.log(energies)
    out = tf.cast(out, tf.float32)  # [..., frames, n_mels]
    if x.shape.rank is not None and x.shape[-1] is not None:
        out = tf.ensure_shape(out, [*x.shape[:-1], fbank.n_frames(x.shape[-1] - context), fbank.n_mels])
    return out


def reference_logfbank(signal: np.ndarray, fbank: FbankSpec, sample_rate: int) -> np.ndarray:
    """``python_speech_features.logfbank`` called with ``fbank``'s parameters: ``[samples] -> [frames, n_mels]``
    float32. The reference implementation (used to write the fbank TFRecord formats and in parity tests).
    The librosa recipe has no reference in the install requirements: :func:`logfbank` computes it."""
    if fbank.filters != "psf" or fbank.window_fn != "rect" or fbank.center or fbank.log != "ln":
        return logfbank(tf.constant(np.asarray(signal, np.float32)), fbank, sample_rate).numpy()

    return psf_logfbank(
        np.asarray(signal, np.float64),
        samplerate=sample_rate,
        winlen=fbank.win_length / sample_rate,
        winstep=fbank.hop_length / sample_rate,
        nfilt=fbank.n_mels,
        nfft=fbank.n_fft,
        lowfreq=fbank.fmin,
        highfreq=fbank.fmax,
        preemph=fbank.preemph,
    ).astype(np.float32)


def features_for(spec: ModelSpec, with_context: bool = False) -> Callable[[tf.Tensor], tf.Tensor]:
    """The function from waveform window(s) to model input for ``spec``: the one home of this step.

    raw:   ``[..., window] -> [..., window]`` (identity);
    fbank: ``[..., window] -> [..., frames, n_mels]`` via :func:`logfbank`.
    ``with_context``: the input is ``[..., window_context(spec) + window]``, the audio before each window
    first (zeros before the clip start); centred frames read it (exactly a whole-clip spectrogram's frames).
    Without it, a centred first frame sees zeros on its left. The tagger and exporter cut consecutive windows
    with their context; the training pipeline, evaluation and analysis call this without.
    The pipeline, the tagger and the exporter all call this, so training and serving features match.
    """
    if spec.input == "raw":

        def raw_input(waveform: tf.Tensor) -> tf.Tensor:
            return tf.convert_to_tensor(waveform, tf.float32)

        return raw_input

    fbank, rate = spec.fbank, spec.sample_rate
    assert fbank is not None  # ModelSpec fills the default FbankSpec for input == "fbank"
    context = window_context(spec) if with_context else 0

    def fbank_input(waveform: tf.Tensor) -> tf.Tensor:
        return logfbank(waveform, fbank, rate, context)

    return fbank_input


def hop_alignment(spec: ModelSpec) -> int:
    """Window starts are snapped to multiples of this many samples (the hop for fbank models, 1 for raw),
    so a window of a full-clip filterbank is a whole number of frames."""
    return spec.fbank.hop_length if spec.input == "fbank" and spec.fbank is not None else 1
