"""Pictures of maps for the analysis page: one small PNG per channel, and the input's spectrogram.

A channel image shows what the channel does over the clip's time (left to right):

- 1-D layers with at least :data:`MIN_SPECTROGRAM_STEPS` steps: the spectrogram of the channel's map
  (Hann-windowed STFT magnitude in dB, frequency 0..rate/2 upwards), i.e. which frequencies of the map
  carry its energy when;
- shorter 1-D maps (deep, slow layers): the activation over time as a one-row strip;
- 2-D layers: the map itself, time across and the layer's mel bins upwards.

Images are written pixel for pixel (``matplotlib.pyplot.imsave``, no figure: a few ms each, so a model
with thousands of channels stays quick) and scaled by the page with ``image-rendering: pixelated``.
Each image is normalised on its own (dB re its maximum over :data:`DB_RANGE`, or min..max for
activations), so the page shows the shape of each channel's activity; levels are in the numbers beside.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import spectrogram, stft

#: 1-D maps with fewer steps than this get an activation strip instead of a spectrogram.
MIN_SPECTROGRAM_STEPS = 64
#: STFT segment of a channel spectrogram (map steps; shorter maps use a quarter of their length).
SPECTROGRAM_NPERSEG = 64
#: Dynamic range of spectrogram images (dB below each image's maximum).
DB_RANGE = 60.0
#: Colour map of every image.
COLORMAP = "magma"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _db(magnitude: np.ndarray) -> np.ndarray:
    """20 log10 relative to the maximum of the last two axes, floored at -DB_RANGE."""
    peak = magnitude.max(axis=(-2, -1), keepdims=True)
    with np.errstate(divide="ignore"):
        db = 20.0 * np.log10(np.maximum(magnitude, 1e-30) / np.maximum(peak, 1e-30))
    return np.maximum(db, -DB_RANGE)


def _unit(image: np.ndarray) -> np.ndarray:
    """Scale the last two axes to 0..1 (a constant image is 0)."""
    lo = image.min(axis=(-2, -1), keepdims=True)
    span = image.max(axis=(-2, -1), keepdims=True) - lo
    return np.where(span > 0, (image - lo) / np.where(span > 0, span, 1.0), 0.0)


def channel_images(maps: np.ndarray, kind: str, rate_hz: float) -> tuple[np.ndarray, str]:
    """Images [channels, rows, cols] (values 0..1, row 0 = lowest frequency) of a layer's maps and what they
    show: ``maps`` [time, channels] (``kind`` "1d", at ``rate_hz``) or [time, freq, channels] ("2d")."""
    maps = np.asarray(maps, np.float64)
    if kind == "2d":
        return _unit(np.moveaxis(maps, -1, 0).transpose(0, 2, 1)), "activation (time x mel bin)"
    steps = maps.shape[0]
    if steps < MIN_SPECTROGRAM_STEPS:
        return _unit(maps.T[:, None, :]), "activation over time"
    nperseg = min(SPECTROGRAM_NPERSEG, steps // 4)
    _, _, z = stft(maps.T, fs=rate_hz, nperseg=nperseg, noverlap=nperseg // 2, detrend=False, boundary=None)
    magnitude = np.abs(z[:, 1:, :])  # [channels, freq (DC dropped), frames]
    return _unit(_db(magnitude)), f"spectrogram of the map, 0..{rate_hz / 2:.0f} Hz"


def save_image(path: Path, image: np.ndarray) -> None:
    """One 0..1 image [rows, cols] as a PNG, lowest row at the bottom."""
    _pyplot().imsave(path, image, cmap=COLORMAP, vmin=0.0, vmax=1.0, origin="lower")


def input_spectrogram(path: Path, waveform: np.ndarray, sample_rate: int, title: str) -> None:
    """The input clip's spectrogram (dB, 1024-point Hann STFT) as a labelled figure: time in s, Hz up."""
    plt = _pyplot()
    nperseg = min(1024, max(16, len(waveform)))
    freqs, times, power = spectrogram(waveform, fs=sample_rate, nperseg=nperseg, noverlap=nperseg * 3 // 4)
    db = 10.0 * np.log10(np.maximum(power, 1e-20) / max(float(power.max()), 1e-20))
    fig, ax = plt.subplots(figsize=(9, 2.6))
    mesh = ax.pcolormesh(times, freqs, np.maximum(db, -80.0), shading="auto", cmap=COLORMAP)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(title, fontsize=10)
    fig.colorbar(mesh, ax=ax, label="dB re max")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
