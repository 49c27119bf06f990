"""Small audio files written in a test's tmp_path: tones of known frequency, one per clip.

Used by test_audio / test_pipeline / test_tfrecord. Each clip's tone frequency identifies it, so a test can
tell which clip a window came from by its spectrum alone (no reliance on the pipeline's own bookkeeping).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hvd_magtag.data.catalog import Clip


def tone(freq: float, seconds: float, rate: int, channels: int = 1, amplitude: float = 0.4) -> np.ndarray:
    """float32 ``[samples, channels]`` sine at ``freq`` Hz (every channel the same)."""
    t = np.arange(int(round(seconds * rate))) / rate
    x = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(x[:, None], channels, axis=1)


def write_audio(path: Path, samples: np.ndarray, rate: int) -> str:
    """Encode ``[samples, channels]`` float32 to ``path`` (.mp3 via tensorflow-io/LAME, .wav 16-bit PCM)."""
    import tensorflow as tf

    if path.suffix == ".mp3":
        import tensorflow_io as tfio

        data = tfio.audio.encode_mp3(tf.constant(samples), rate=rate)
    elif path.suffix == ".wav":
        data = tf.audio.encode_wav(tf.constant(samples), rate)
    else:
        raise ValueError(f"{path}: fixtures write .mp3 or .wav")
    tf.io.write_file(str(path), data)
    return str(path)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    """Frequency (Hz) of the largest FFT magnitude of ``[samples]`` (Hann window, zero-padded x8)."""
    x = np.asarray(x, np.float64)
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)), n=8 * len(x)))
    return float(np.argmax(spectrum) * rate / (8 * len(x)))


def tone_clips(
    folder: Path,
    n: int,
    *,
    n_tags: int = 6,
    seconds: float = 1.0,
    rate: int = 16000,
    ext: str = ".mp3",
    base_freq: float = 300.0,
    step_freq: float = 100.0,
    split: str = "train",
) -> tuple[list[Clip], dict[str, int], list[float]]:
    """``n`` clips, clip i a tone at ``base_freq + i * step_freq`` Hz with a distinct multi-hot label row.

    Returns (clips, {path: rate} manifest, frequencies).
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    clips, rates, freqs = [], {}, []
    for i in range(n):
        freq = base_freq + i * step_freq
        path = write_audio(folder / f"clip{i:03d}{ext}", tone(freq, seconds, rate), rate)
        labels = (rng.random(n_tags) < 0.4).astype(np.float32)
        labels[i % n_tags] = 1.0
        clips.append(Clip(f"c{i:03d}", path, labels, split))
        rates[path] = rate
        freqs.append(freq)
    return clips, rates, freqs


def which_clip(window: np.ndarray, rate: int, freqs: list[float]) -> int:
    """Index of the clip whose tone frequency is nearest the window's spectral peak."""
    return int(np.argmin(np.abs(np.asarray(freqs) - peak_frequency(window, rate))))
