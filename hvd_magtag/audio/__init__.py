"""Audio: the formats table, decoding (in the graph and in Python), resampling, windows.

    from hvd_magtag import audio
    x = audio.decode(tf.io.read_file(path), "mp3")          # [samples, channels] at the file's own rate
    x = audio.resample(audio.to_mono(x), rate_in=44100, rate_out=16000)   # [samples'] at 16 kHz
    w = audio.random_window(x, 59049, seed=[0, 7])           # [59049]
    ws = audio.even_windows(x, 59049, 10)                    # [10, 59049]
    ws = audio.all_windows(x, 59049)                         # [k, 59049], k = max(1, samples // 59049)
    samples, rate = audio.decode_file("song.m4a")            # numpy, any format of audio.formats

Modules: :mod:`~hvd_magtag.audio.formats` (the one table: suffix -> format -> decoders; MPEG rates),
:mod:`~hvd_magtag.audio.mpeg` (MP3 frames and tags as bytes),
:mod:`~hvd_magtag.audio.containers` (what a file's bytes say: container, structure, DRM), :mod:`~hvd_magtag.audio.decoding`,
:mod:`~hvd_magtag.audio.resampling`, :mod:`~hvd_magtag.audio.windows` (TensorFlow). The graph functions are
plain TensorFlow (tensorflow-io for compressed formats) and run inside ``tf.data``, a ``tf.function`` or an
exported SavedModel; shapes use ``samples`` for time at the stated rate; waveforms are float32 in [-1, 1].

Names are loaded on first use: ``audio.formats`` / ``audio.mpeg`` / ``audio.containers`` (and ``FORMATS``, ``format_of``,
``AUDIO_SUFFIXES``) do not import TensorFlow, so catalogs and ``--help`` stay fast.
"""

from __future__ import annotations

import importlib

#: public name -> submodule that defines it
_HOME = {
    **dict.fromkeys(
        ["FORMATS", "AUDIO_SUFFIXES", "TABLE", "AudioFormat", "MPEG_RATES", "format_of", "is_audio",
         "graph_decoder", "GRAPH_DECODERS", "GRAPH_NAMES", "PYTHON_DECODERS"], "formats"),
    **dict.fromkeys(["Mp3Layout", "mp3_layout", "check_mp3"], "mpeg"),
    **dict.fromkeys(
        ["decode", "from_bytes", "load", "to_mono", "decode_file", "decode_mp3_fast", "stream_file", "decode_python",
         "DecodeError", "python_decoder"], "decoding"),
    **dict.fromkeys(["sniff_format", "file_problem", "encrypted_mp4"], "containers"),
    **dict.fromkeys(
        ["resample", "resample_edge", "RESAMPLE_KAISER_BETA", "RESAMPLE_HALF_ZEROS",
         "RESAMPLE_MAX_CONV_WEIGHTS"], "resampling"),
    **dict.fromkeys(
        ["pad_to", "random_window_start", "random_window", "even_window_starts", "even_windows",
         "all_window_starts", "all_windows", "tail_padded_windows", "first_success", "mp3_slice_plan", "mp3_window_and_path",
         "mp3_random_window", "MP3_WARMUP_SAMPLES", "MP3_SLICE_SLACK_BYTES", "MP3_SLICE_DENSITY_MARGIN",
         "MP3_SLICE_MAX_FRACTION", "MP3_PATH_SLICE", "MP3_PATH_SHORT", "MP3_PATH_FAILED",
         "MP3_PATH_WHOLE"], "windows"),
}  # fmt: skip
_SUBMODULES = ("formats", "mpeg", "containers", "decoding", "resampling", "windows")

__all__ = sorted(_HOME)


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME) | set(_SUBMODULES))
