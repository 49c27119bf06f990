"""Audio in and out for analysis: decode a clip (a path or a dataset clip id) at a model's rate, write WAVs."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import tensorflow_io as tfio
from scipy.io import wavfile

from hvd_magtag import audio
from hvd_magtag.analysis.introspect import AnalysisError
from hvd_magtag.data import load_catalog


def _file_rate(path: Path) -> int:
    """Sample rate (Hz) stored in an audio file's header."""
    if path.suffix.lower() == ".wav":
        with wave.open(str(path), "rb") as w:
            return w.getframerate()
    return int(tfio.audio.AudioIOTensor(str(path)).rate.numpy())


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode ``path`` (any format of ``hvd_magtag.audio.formats``), downmix and resample: float32 [samples]
    at ``sample_rate`` Hz. mp3 is decoded as training decodes it (tensorflow-io in the graph), other formats
    by their Python decoder (``audio.decode_file``: soundfile / PyAV)."""
    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"{path}: audio file not found")
    try:
        if audio.format_of(str(path)) == "mp3":
            x = audio.load(str(path), "mp3", _file_rate(path), sample_rate)
        else:
            samples, rate = audio.decode_file(path)
            x = audio.resample(audio.to_mono(samples), rate, sample_rate)
    except audio.DecodeError as e:
        raise AnalysisError(str(e)) from None
    return np.asarray(x, np.float32).reshape(-1)


def resolve_clip(run, clip: str) -> Path:
    """``clip`` as an audio path: an existing file, or a clip id of the run's dataset (config.data)."""
    path = Path(clip).expanduser()
    if path.is_file():
        return path.resolve()
    if not run.config_path.is_file():
        raise AnalysisError(
            f"--clip {clip!r}: no such file, and {run.config_path} is missing so clip ids cannot be looked up"
        )

    catalog = load_catalog(run.config.data)
    for c in catalog.clips:
        if c.clip_id == clip:
            return Path(c.path)
    examples = ", ".join(c.clip_id for c in catalog.clips[:3])
    raise AnalysisError(
        f"--clip {clip!r}: not a file and not a clip id of dataset {catalog.name!r} ({catalog.root}); "
        f"give an audio path or a clip id such as {examples}"
    )


def to_pcm16(y: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 PCM (rounded, clipped), any shape."""
    scaled = np.rint(np.asarray(y, np.float32) * 32767.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def write_wav(path: Path, y: np.ndarray, sample_rate: int) -> None:
    """Write mono audio as a 16-bit PCM WAV: float in [-1, 1] (converted by :func:`to_pcm16`) or int16."""
    pcm = y if np.asarray(y).dtype == np.int16 else to_pcm16(y)
    wavfile.write(str(path), int(sample_rate), np.ascontiguousarray(pcm))
