"""Per-channel statistics of conv maps: loudness, dominant frequency, frequency profiles, channel order."""

from __future__ import annotations

import numpy as np
from scipy.signal import welch

from hvd_magtag.analysis.sonify import mel_centres_hz, onto_mel_bands

#: A channel whose map RMS is below this (relative to the layer's loudest channel) is called silent.
SILENT_RELATIVE_RMS = 1e-6


def channel_rms(maps: np.ndarray) -> np.ndarray:
    """RMS of each channel's map about its mean: ``[..., channels] -> [channels]``."""
    axes = tuple(range(maps.ndim - 1))
    return np.sqrt(np.mean((maps - maps.mean(axis=axes, keepdims=True)) ** 2, axis=axes))


def by_dominant_frequency(dominant_hz: np.ndarray) -> np.ndarray:
    """Channel order by dominant frequency, ascending (channels without one, NaN, last): ``[channels]``."""
    d = np.asarray(dominant_hz, np.float64)
    return np.lexsort((np.arange(len(d)), np.nan_to_num(d, nan=np.inf)))


def dominant_frequency_1d(maps: np.ndarray, rate_hz: float) -> np.ndarray:
    """Peak frequency (Hz, DC excluded) of each channel's Welch spectrum: [channels] (NaN if too short)."""
    steps = maps.shape[0]
    if steps < 4:
        return np.full(maps.shape[1], np.nan)
    freqs, psd = welch(maps, fs=rate_hz, nperseg=min(256, steps), axis=0, detrend="constant")
    return freqs[1:][np.argmax(psd[1:], axis=0)]


def dominant_frequency_2d(maps: np.ndarray, spec, info=None) -> np.ndarray:
    """Centre (Hz) of the mel band where each channel's time-averaged map peaks: [channels]."""
    profiles = mel_profiles(maps, spec.fbank.n_mels, info)  # [channels, n_mels]
    return mel_centres_hz(spec.fbank, spec.sample_rate)[np.nanargmax(profiles, axis=1)]


def mel_profiles(maps: np.ndarray, n_mels: int, info=None) -> np.ndarray:
    """Per-channel frequency profile of 2-D maps [time, freq, channels]: mean over time, placed on the
    ``n_mels`` input mel bands (:func:`~hvd_magtag.analysis.sonify.onto_mel_bands`; NaN where the layer's
    bins do not reach) -> [channels, n_mels]."""
    profile = np.asarray(maps, np.float64).mean(axis=0)  # [freq, channels]
    return onto_mel_bands(profile, n_mels, 0, info).T
