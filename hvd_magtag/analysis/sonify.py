"""Sonification: a conv layer's channels rendered as sound at the audio rate.

1-D maps are upsampled with a polyphase resampler (``scipy.signal.resample_poly``, which low-pass filters the
images away, so the sound holds exactly the map's content 0..r/2), DC removed, normalised to
:data:`TARGET_RMS_DBFS` RMS with a soft-knee peak limiter. 2-D (spectrogram) maps are not waveforms: each
channel's map is read as a mel-band envelope and resynthesised by a noise vocoder (random-phase STFT shaped
by the mel filterbank), so one hears *where in frequency and time* the channel is active.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from scipy.signal import istft, resample_poly

from hvd_magtag.features import hz_to_mel, mel_filterbank, mel_to_hz

#: Loudness of a sonified channel: RMS in dB relative to full scale.
TARGET_RMS_DBFS = -20.0
#: Peak ceiling of a sonified channel (dBFS) and where the soft-knee limiter starts (dBFS).
PEAK_CEILING_DBFS = -0.3
LIMITER_KNEE_DBFS = -6.0
#: Largest up-sampling factor of one resampling stage (bigger ratios are cascaded).
MAX_STAGE_FACTOR = 27


def _db_to_amp(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def normalise_loudness(
    y: np.ndarray,
    target_rms_dbfs: float = TARGET_RMS_DBFS,
    ceiling_dbfs: float = PEAK_CEILING_DBFS,
    knee_dbfs: float = LIMITER_KNEE_DBFS,
) -> np.ndarray:
    """Remove DC, scale to ``target_rms_dbfs`` RMS, then soft-limit peaks above ``knee_dbfs`` to ``ceiling_dbfs``.

    Works along the last axis of ``y`` ([samples] or [channels, samples]). The limiter is static and
    continuous with unit slope at the knee: above it, magnitudes follow
    ``knee + (ceiling - knee) * tanh((|y| - knee) / (ceiling - knee))``, so nothing exceeds the ceiling.
    An all-zero (or constant) signal comes back as zeros.
    """
    y = np.array(y, np.float32)  # a copy: scaled and limited in place
    y -= y.mean(axis=-1, keepdims=True)
    rms = np.sqrt(np.mean(np.square(y, dtype=np.float64), axis=-1, keepdims=True))
    y *= np.where(rms > 1e-12, _db_to_amp(target_rms_dbfs) / np.maximum(rms, 1e-12), 0.0).astype(np.float32)
    knee, ceiling = _db_to_amp(knee_dbfs), _db_to_amp(ceiling_dbfs)
    rows = y.reshape(-1, y.shape[-1]) if y.size else y.reshape(0, 0)
    for r in np.nonzero(np.abs(rows).max(axis=-1, initial=0.0) > knee)[0]:
        idx = np.nonzero(np.abs(rows[r]) > knee)[0]  # usually a few samples: limit only those
        v = rows[r, idx]
        rows[r, idx] = np.sign(v) * (knee + (ceiling - knee) * np.tanh((np.abs(v) - knee) / (ceiling - knee)))
    return y


def _stage_factors(factor: int, max_stage: int = MAX_STAGE_FACTOR) -> list[int]:
    """``factor`` split into stages (products of its prime factors) of at most ``max_stage``, ascending."""
    primes, n, p = [], factor, 2
    while n > 1:
        while n % p == 0:
            primes.append(p)
            n //= p
        p += 1
    stages, current = [], 1
    for q in sorted(primes, reverse=True):
        if current * q > max_stage and current > 1:
            stages.append(current)
            current = 1
        current *= q
    stages.append(current)
    return sorted(stages)


def upsample(x: np.ndarray, rate_hz: float, sample_rate: int, axis: int = 0) -> np.ndarray:
    """``x`` sampled at ``rate_hz`` resampled to ``sample_rate`` Hz along ``axis``: float32.

    The ratio ``sample_rate / rate_hz = up / down`` (as a fraction) is done with ``scipy.signal.resample_poly``
    (polyphase, Kaiser-windowed FIR at each stage's Nyquist) in cascaded up-stages of at most
    :data:`MAX_STAGE_FACTOR` (one stage of 3^9 = 19683 would design a 400k-tap filter; the cascade does the
    same band-limited interpolation with short filters), then one ``down`` stage.
    """
    ratio = Fraction(sample_rate / rate_hz).limit_denominator(1000)
    y = np.moveaxis(np.asarray(x, np.float32), axis, -1)
    y = np.ascontiguousarray(y)
    if ratio != 1:
        for stage in _stage_factors(ratio.numerator):
            if stage > 1:
                y = resample_poly(y, stage, 1, axis=-1)
        if ratio.denominator > 1:
            y = resample_poly(y, 1, ratio.denominator, axis=-1)
    return np.moveaxis(y.astype(np.float32), -1, axis)


def sonify_1d(maps: np.ndarray, rate_hz: float, sample_rate: int, n_samples: int) -> np.ndarray:
    """1-D maps [time, channels] at ``rate_hz`` -> loudness-normalised audio [n_samples, channels] at ``sample_rate``.

    DC is removed before resampling (no edge transients), the upsampled signal is cut or zero-padded to
    ``n_samples`` and normalised per channel (:func:`normalise_loudness`).
    """
    rows = np.asarray(maps, np.float32).T  # [channels, time]: contiguous rows for the resampler
    rows = rows - rows.mean(axis=1, keepdims=True)
    up = upsample(rows, rate_hz, sample_rate, axis=1)
    out = np.zeros((rows.shape[0], n_samples), np.float32)
    n = min(n_samples, up.shape[1])
    out[:, :n] = normalise_loudness(up[:, :n])
    return out.T


def mel_centres_hz(fbank, sample_rate: int) -> np.ndarray:
    """Centre frequency (Hz) of each mel band of ``fbank``: [n_mels] (the filterbank's mel points 1..n_mels)."""
    fmax = fbank.fmax or sample_rate / 2
    points = np.linspace(hz_to_mel(fbank.fmin), hz_to_mel(fmax), fbank.n_mels + 2)
    return mel_to_hz(points[1:-1])


def stretch_axis(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Linear interpolation of ``x`` along ``axis`` to ``n`` points (sample centres aligned)."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    m = x.shape[-1]
    if m == n:
        return np.moveaxis(x, -1, axis)
    src = (np.arange(m) + 0.5) / m
    dst = (np.arange(n) + 0.5) / n
    flat = x.reshape(-1, m)
    out = np.stack([np.interp(dst, src, row) for row in flat]).reshape((*x.shape[:-1], n))
    return np.moveaxis(out, -1, axis)


def onto_mel_bands(x: np.ndarray, n_mels: int, axis: int, info=None, fill: float = np.nan) -> np.ndarray:
    """``x``'s frequency axis (a 2-d layer's bins) resampled onto the input's ``n_mels`` mel bands.

    With ``info`` (the layer's :class:`~hvd_magtag.analysis.introspect.ConvLayerInfo`), bins are placed where
    they sit on the mel axis (``info.mel_centres()``) and linearly interpolated between their centres; bands
    more than half a bin outside the covered range get ``fill`` (a "valid" 38-band kernel leaves the lowest
    and highest 18 bands uncovered). Without, the bins are stretched evenly over all bands.
    """
    if info is None or info.mel_step <= 0:
        return stretch_axis(x, n_mels, axis)
    centres = info.mel_centres()
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    bands = np.arange(n_mels, dtype=np.float64)
    flat = x.reshape(-1, x.shape[-1])
    out = np.stack([np.interp(bands, centres, row) for row in flat]).reshape((*x.shape[:-1], n_mels))
    half = max(info.mel_step, 1.0) / 2
    out[..., (bands < centres[0] - half) | (bands > centres[-1] + half)] = fill
    return np.moveaxis(out, -1, axis)


def sonify_2d(maps: np.ndarray, spec, n_samples: int, seed: int = 0, info=None) -> np.ndarray:
    """2-D maps [time, freq, channels] -> noise-vocoded audio [n_samples, channels] at ``spec.sample_rate``.

    Each channel's map, shifted to be non-negative (map - min), is stretched to [STFT frames, n_mels]
    (frames at ``spec.fbank.hop_length``; bins placed on the mel axis by :func:`onto_mel_bands`), mapped to linear-frequency magnitudes through the mel filterbank,
    given random phases and inverted (Hann, ``n_fft``); then loudness-normalised like 1-D maps.
    """
    fbank = spec.fbank
    fb = mel_filterbank(fbank, spec.sample_rate).T  # [n_mels, bins]
    hop, n_fft = fbank.hop_length, fbank.n_fft
    frames = max(2, math.ceil(n_samples / hop) + 1)
    rng = np.random.default_rng(seed)
    out = np.zeros((n_samples, maps.shape[-1]), np.float32)
    for c in range(maps.shape[-1]):
        env = maps[..., c].astype(np.float64)
        env = env - env.min()
        env = onto_mel_bands(
            stretch_axis(env, frames, 0), fbank.n_mels, 1, info, fill=0.0
        )  # [frames, n_mels]
        mag = env @ fb  # [frames, bins]
        phase = np.exp(2j * np.pi * rng.random(mag.shape))
        _, y = istft((mag * phase).T, fs=spec.sample_rate, nperseg=n_fft, noverlap=n_fft - hop, boundary=True)
        n = min(n_samples, len(y))
        out[:n, c] = normalise_loudness(y[:n])
    return out
