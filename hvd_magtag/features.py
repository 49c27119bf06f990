"""In-graph log-mel filterbank, matching ``python_speech_features.logfbank`` (the reference).

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

Tolerance (:data:`REFERENCE_TOLERANCE`, tested in tests/test_features.py): max abs diff < 1e-3 on the log
values. The graph computes in float64 like the reference (float32 audio in, float32 features out); on
decoded mp3 audio, tones, noise and digital silence the float32 outputs were bit-identical here. A float32
graph differed by up to 1.5e-3 in stop-band bins of clean signals (energy ~1e-10 of the frame's peak,
where FFT rounding dominates); float64 costs ~15% more in the filterbank, small beside the mp3 decode.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf

from hvd_magtag.models.registry import FbankSpec, ModelSpec

#: Max abs difference of :func:`logfbank` from the reference on log energies (stated tolerance).
REFERENCE_TOLERANCE = 1e-3

#: python_speech_features replaces zero energies by numpy.finfo(float).eps (float64) before the log.
LOG_FLOOR = float(np.finfo(np.float64).eps)


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale (as python_speech_features): ``2595 * log10(1 + hz / 700)``."""
    return 2595.0 * np.log10(1.0 + np.asarray(hz, np.float64) / 700.0)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank(fbank: FbankSpec, sample_rate: int) -> np.ndarray:
    """The reference's triangular mel filters as a float64 matrix ``[n_fft // 2 + 1, n_mels]`` (bins x filters).

    Same construction as ``python_speech_features.get_filterbanks`` (integer bin edges), transposed so that
    ``power_spectrum @ matrix`` gives filter energies.
    """
    fmax = fbank.fmax or sample_rate / 2
    if fmax > sample_rate / 2:
        raise ValueError(f"FbankSpec.fmax={fmax} Hz is above Nyquist ({sample_rate / 2} Hz); lower it")
    points = np.linspace(hz_to_mel(fbank.fmin), hz_to_mel(fmax), fbank.n_mels + 2)
    bins = np.floor((fbank.n_fft + 1) * mel_to_hz(points) / sample_rate)
    matrix = np.zeros([fbank.n_fft // 2 + 1, fbank.n_mels], np.float64)
    for j in range(fbank.n_mels):
        lo, mid, hi = bins[j], bins[j + 1], bins[j + 2]
        for i in range(int(lo), int(mid)):
            matrix[i, j] = (i - lo) / (mid - lo)
        for i in range(int(mid), int(hi)):
            matrix[i, j] = (hi - i) / (hi - mid)
    return matrix


def frame(x: tf.Tensor, win_length: int, hop_length: int) -> tf.Tensor:
    """Reference framing: ``[..., samples] -> [..., frames, win_length]``, end zero-padded so that
    ``frames = 1 + ceil((samples - win_length) / hop_length)`` (1 when samples <= win_length)."""
    n = tf.shape(x)[-1]
    n_frames = 1 + tf.maximum(-((win_length - n) // hop_length), 0)  # 1 + ceil(max(n - win, 0) / hop)
    pad = (n_frames - 1) * hop_length + win_length - n
    paddings = tf.concat([tf.zeros([tf.rank(x) - 1, 2], tf.int32), [[0, pad]]], axis=0)
    return tf.signal.frame(tf.pad(x, paddings), win_length, hop_length, axis=-1)


def logfbank(waveform: tf.Tensor, fbank: FbankSpec, sample_rate: int) -> tf.Tensor:
    """Log mel filterbank energies of ``waveform`` float32 ``[..., samples]`` at ``sample_rate`` Hz.

    Returns float32 ``[..., frames, n_mels]`` with ``frames = fbank.n_frames(samples)``; natural log of
    power (|rfft|**2 / n_fft summed through each triangular filter). See the module docstring for the exact
    reference semantics and tolerance.
    """
    # float64 like the reference: float32 FFT rounding (~1e-7 of a frame's peak) would swamp stop-band bins.
    x = tf.cast(waveform, tf.float64)
    if fbank.preemph:
        x = tf.concat([x[..., :1], x[..., 1:] - fbank.preemph * x[..., :-1]], axis=-1)
    frames = frame(x, fbank.win_length, fbank.hop_length)  # [..., frames, win_length]
    spectrum = tf.signal.rfft(frames, fft_length=[fbank.n_fft])  # [..., frames, n_fft // 2 + 1]
    power = (tf.math.square(tf.math.real(spectrum)) + tf.math.square(tf.math.imag(spectrum))) / fbank.n_fft
    filters = tf.constant(mel_filterbank(fbank, sample_rate), tf.float64)
    energies = tf.tensordot(power, filters, axes=1)  # [..., frames, n_mels]
    energies = tf.where(energies == 0.0, tf.constant(LOG_FLOOR, tf.float64), energies)
    out = tf.cast(tf.math.log(energies), tf.float32)  # [..., frames, n_mels]
    if x.shape.rank is not None and x.shape[-1] is not None:
        out = tf.ensure_shape(out, [*x.shape[:-1], fbank.n_frames(x.shape[-1]), fbank.n_mels])
    return out


def reference_logfbank(signal: np.ndarray, fbank: FbankSpec, sample_rate: int) -> np.ndarray:
    """``python_speech_features.logfbank`` called with ``fbank``'s parameters: ``[samples] -> [frames, n_mels]``
    float32. The reference implementation (used to write the fbank TFRecord formats and in parity tests)."""
    from python_speech_features import logfbank as psf_logfbank

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


def features_for(spec: ModelSpec) -> Callable[[tf.Tensor], tf.Tensor]:
    """The function from waveform window(s) to model input for ``spec``: the one home of this step.

    raw:   ``[..., window] -> [..., window]`` (identity);
    fbank: ``[..., window] -> [..., frames, n_mels]`` via :func:`logfbank`.
    The pipeline, the tagger and the exporter all call this, so training and serving features match.
    """
    if spec.input == "raw":

        def raw_input(waveform: tf.Tensor) -> tf.Tensor:
            return tf.convert_to_tensor(waveform, tf.float32)

        return raw_input

    fbank, rate = spec.fbank, spec.sample_rate
    assert fbank is not None  # ModelSpec fills the default FbankSpec for input == "fbank"

    def fbank_input(waveform: tf.Tensor) -> tf.Tensor:
        return logfbank(waveform, fbank, rate)

    return fbank_input


def hop_alignment(spec: ModelSpec) -> int:
    """Window starts are snapped to multiples of this many samples (the hop for fbank models, 1 for raw),
    so a window of a full-clip filterbank is a whole number of frames."""
    return spec.fbank.hop_length if spec.input == "fbank" and spec.fbank is not None else 1
