"""The one table of audio formats: file suffix -> format -> decoders (no TensorFlow here).

Every file is decoded by one of two kinds of decoder:

- **in the graph** (tf.data, ``tf.function``, the exported SavedModel): tensorflow-io's ``decode_mp3``
  (minimp3), ``decode_flac`` (16-bit), ``decode_vorbis`` and TensorFlow's ``tf.audio.decode_wav`` (16-bit
  PCM). Fast, no Python, no GIL; the only decoders an exported model (``from_bytes``) can use.
- **in Python**: libsndfile through ``soundfile`` (WAV of any bit depth / float / WAVE_FORMAT_EXTENSIBLE /
  any channel count, FLAC 8-32 bit up to 655 kHz, AIFF, Ogg Vorbis and Opus, mp3) and FFmpeg through PyAV
  (``av``: AAC and ALAC in .m4a / .mp4, ADTS .aac), entering tf.data through ``tf.numpy_function``.

A format's graph decoder takes only some of its files (``graph_takes``); the manifest
(:mod:`hvd_magtag.data.manifest`) tries it on each file and records the decoder that works for that file
(``FileInfo.decoder``): the graph decoder when it takes the file, else the format's Python decoder. Why these
decoders (measured): see the README's "Audio formats" section.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class AudioFormat:
    """One audio format: its suffixes, which files its graph decoder takes and its Python decoder."""

    name: str  # mp3 | wav | flac | ogg | opus | aiff | m4a | aac
    suffixes: tuple[str, ...]  # lower case, with the dot
    graph: str  # the in-graph decoder (a key of GRAPH_DECODERS) or "" when there is none
    graph_takes: str  # which files of this format the graph decoder takes
    python: str  # the Python-side decoder (a key of PYTHON_DECODERS) for every file of the format
    container: str  # what the first bytes say (manifest.sniff_format): files of one container share it


#: The formats, in the order documentation lists them.
TABLE: tuple[AudioFormat, ...] = (
    AudioFormat("mp3", (".mp3",), "mp3", "all: MPEG-1/2/2.5 Layer III, CBR/VBR/ABR", "soundfile", "mp3"),
    AudioFormat(
        "wav",
        (".wav", ".wave"),
        "wav",
        "16-bit PCM (format tag 1, fmt chunk of 16/18 bytes)",
        "soundfile",
        "wav",
    ),  # fmt: skip
    AudioFormat("flac", (".flac",), "flac", "16-bit samples", "soundfile", "flac"),
    AudioFormat("ogg", (".ogg", ".oga"), "ogg", "Vorbis streams", "soundfile", "ogg"),
    AudioFormat("opus", (".opus",), "", "none", "av", "ogg"),
    AudioFormat("aiff", (".aiff", ".aif", ".aifc"), "", "none", "soundfile", "aiff"),
    AudioFormat("m4a", (".m4a", ".mp4", ".m4b"), "", "none", "av", "mp4"),
    AudioFormat("aac", (".aac",), "", "none", "av", "aac"),
)

#: In-graph decoders, in the branch order of ``hvd_magtag.audio.decoding``'s switch.
GRAPH_DECODERS: tuple[str, ...] = ("mp3", "wav", "flac", "ogg")
#: Python-side decoders: name -> the Python package that provides it (and its licence, for the README).
PYTHON_DECODERS: dict[str, str] = {"soundfile": "soundfile (libsndfile)", "av": "av (PyAV: FFmpeg)"}

BY_NAME: dict[str, AudioFormat] = {f.name: f for f in TABLE}
BY_SUFFIX: dict[str, AudioFormat] = {s: f for f in TABLE for s in f.suffixes}
#: Audio file suffixes the toolkit reads (lower case, with the dot): folder catalogs, ``tag`` folders.
AUDIO_SUFFIXES: tuple[str, ...] = tuple(BY_SUFFIX)
#: Extension (lower case, no dot) -> format name.
FORMATS: dict[str, str] = {s.lstrip("."): f.name for s, f in BY_SUFFIX.items()}

#: Names the in-graph functions take (``audio.decode``, an exported model's ``from_bytes``) -> graph decoder:
#: the decoders themselves and every extension of their formats ("oga" -> "ogg").
GRAPH_NAMES: dict[str, str] = {
    **{ext: BY_NAME[name].graph for ext, name in FORMATS.items() if BY_NAME[name].graph},
    **{d: d for d in GRAPH_DECODERS},
}

#: MPEG audio sample rates (Hz) by [version bits][sample-rate index] of a frame header; version bits 0 =
#: MPEG 2.5, 1 = reserved, 2 = MPEG 2, 3 = MPEG 1; index 3 is reserved (0 here).
MPEG_RATES: tuple[tuple[int, int, int], ...] = (
    (11025, 12000, 8000),
    (0, 0, 0),
    (22050, 24000, 16000),
    (44100, 48000, 32000),
)


def is_audio(path: str | os.PathLike) -> bool:
    """Whether ``path``'s suffix is one of :data:`AUDIO_SUFFIXES` (any case)."""
    return os.path.splitext(str(path))[1].lower() in BY_SUFFIX


def format_of(path: str | os.PathLike) -> str:
    """The format name (mp3 | wav | flac | ogg | opus | aiff | m4a | aac) of a path, from its suffix.

    Raises ``ValueError`` naming the file and the suffixes that are read."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in BY_SUFFIX:
        raise ValueError(
            f"{path}: unsupported audio extension {ext.lstrip('.')!r}; use one of {', '.join(sorted(FORMATS))}"
        )
    return BY_SUFFIX[ext].name


def graph_decoder(fmt: str) -> str:
    """The in-graph decoder of format (or decoder) name ``fmt`` ("" when it has none)."""
    if fmt in GRAPH_DECODERS:
        return fmt
    entry = BY_NAME.get(fmt) or BY_SUFFIX.get(f".{fmt}")
    return entry.graph if entry else ""
