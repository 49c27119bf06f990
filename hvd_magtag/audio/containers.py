"""What an audio file's bytes say before any decoder runs (no TensorFlow here): the container its first
bytes announce (:func:`sniff_format`), structure that decoders silently accept (a cut last MP3 frame or Ogg
page, a WAV data chunk announcing more than the file holds, an MP3 whose sample rate changes mid-stream),
encrypted (DRM) MP4 audio. :func:`file_problem` is the check the manifest and ``tag`` share.
"""

from __future__ import annotations

import os

from hvd_magtag.audio.formats import BY_SUFFIX
from hvd_magtag.audio.mpeg import check_mp3

#: sniff_format's container name -> how a message names it, and the suffix to rename a file to.
_CONTAINER_NAMES = {"mp4": "MP4/M4A (AAC or ALAC)", "aac": "AAC (ADTS)", "aiff": "AIFF"}
_SUFFIX_OF_CONTAINER = {"mp4": "m4a", "aac": "aac", "aiff": "aiff", "ogg": "ogg"}


def sniff_format(data: bytes) -> str:
    """The container the first bytes announce ("" if none is recognisable): wav | flac | ogg (Vorbis or
    Opus) | aiff | mp4 | aac (ADTS) | mp3 (an ID3v2 tag or a raw MPEG audio frame)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    if data[4:8] == b"ftyp":
        return "mp4"
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0:  # ADTS: sync, layer bits 00
        return "aac"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return ""


# -- container structure (what decoders silently accept) -------------------------------------------------------


def check_wav(data: bytes) -> tuple[str, str] | None:
    """("garbage" | "truncated", why) from the RIFF chunks: a data chunk announcing more bytes than present."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return ("garbage", "no RIFF/WAVE header")
    i = 12
    while i + 8 <= len(data):
        chunk, size = data[i : i + 4], int.from_bytes(data[i + 4 : i + 8], "little")
        if chunk == b"data":
            if size not in (0, 0xFFFFFFFF) and i + 8 + size > len(data):
                return ("truncated", f"WAV data chunk announces {size} bytes, {len(data) - i - 8} present")
            return None
        i += 8 + size + (size & 1)
    return ("truncated", "WAV file ends before its data chunk")


def check_ogg(data: bytes) -> tuple[str, str] | None:
    """("garbage" | "truncated", why) from the Ogg pages: a cut last page or no end-of-stream page."""
    if data[:4] != b"OggS":
        return ("garbage", "no Ogg page at the start")
    i, last_flags = 0, 0
    while i + 27 <= len(data) and data[i : i + 4] == b"OggS":
        n_segments = data[i + 26]
        size = 27 + n_segments + sum(data[i + 27 : i + 27 + n_segments])
        if i + size > len(data):
            return ("truncated", f"last Ogg page is cut: needs {size} bytes, {len(data) - i} left")
        last_flags = data[i + 5]
        i += size
    if not last_flags & 0x04:
        return ("truncated", "the last Ogg page is not marked end-of-stream")
    return None


def check_flac(data: bytes) -> tuple[str, str] | None:
    """FLAC frames are checked by the decoder; only the signature is checked here."""
    return None if data[:4] == b"fLaC" else ("garbage", "no fLaC signature")


STRUCTURE_CHECKS = {"mp3": check_mp3, "wav": check_wav, "ogg": check_ogg, "flac": check_flac}


#: MP4 sample entries and boxes of protected audio: "enca" (common encryption), "drms" (iTunes FairPlay),
#: "sinf" (protection scheme information).
_MP4_PROTECTED = (b"enca", b"drms", b"sinf")


def encrypted_mp4(data: bytes) -> bool:
    """Whether an MP4/M4A file's sample description (``stsd`` box) marks its audio as encrypted (DRM)."""
    at = data.find(b"stsd")
    return at >= 0 and any(tag in data[at : at + 4096] for tag in _MP4_PROTECTED)


def file_problem(path: str | os.PathLike, data: bytes) -> tuple[str, str] | None:
    """("garbage" | "truncated" | "unsupported" | "empty", one-line why) when the bytes of ``path`` show it
    cannot be used, else None (a decoder still has to prove the rest). Checks, in order: the suffix is one
    of the table's, the file is not empty, the first bytes are the container its suffix names (a WAV named
    .mp3 is told to be renamed), MP4 audio is not encrypted, and the container's structure."""
    suffix = os.path.splitext(str(path))[1].lower()
    entry = BY_SUFFIX.get(suffix)
    if entry is None:
        return ("unsupported", f"suffix {suffix!r} is not an audio format the toolkit reads")
    if not data:
        return ("empty", "0 bytes")
    sniffed = sniff_format(data)
    if sniffed and sniffed != entry.container:
        rename = _SUFFIX_OF_CONTAINER.get(sniffed, sniffed)
        what = _CONTAINER_NAMES.get(sniffed, sniffed.upper())
        return ("garbage", f"named {suffix} but the bytes are {what}; rename it to .{rename}")
    if entry.container == "mp4" and encrypted_mp4(data):
        return ("garbage", "encrypted (DRM-protected) audio: it cannot be decoded")
    check = STRUCTURE_CHECKS.get(entry.container)
    return check(data) if check else None
