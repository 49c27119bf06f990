"""Validate the audio files of a catalog once: does each decode, at what rate, how many channels, how long.

``validate(catalog)`` scans every file of the catalog in parallel (threads; TensorFlow ops release the GIL),
records one :class:`FileInfo` per file and returns the catalog without the bad files plus the
:class:`Manifest`. A file is bad when it is

- ``missing``: no such file;
- ``empty``: 0 bytes (MTAT and FMA each ship a few);
- ``unsupported``: not .mp3/.wav/.flac/.ogg;
- ``garbage``: the decoder for its suffix rejects it (random bytes, an HTML error page, a WAV named .mp3:
  the pipeline decodes by suffix, so the reason says what the bytes look like and how to fix it), or an MP3
  whose sample rate or channel count changes mid-stream (two streams glued together);
- ``truncated``: cut short: the last MP3 frame or Ogg page is incomplete, an MP3 Xing/Info header or a WAV
  data chunk announces more than the file holds, or the decoder stops early;
- ``too short``: shorter than ``min_duration`` seconds (decided at validation from the recorded duration,
  so changing the minimum needs no rescan).

How a file is checked: ``tfio.audio.AudioIOTensor(path)`` gives the sample rate and shape, a full decode of
the bytes with the decoder the pipeline uses for that suffix (``tfio.audio.decode_mp3`` ...) proves it
decodes and gives the real length (``duration = decoded samples / rate``), and a walk over the MP3 frames /
Ogg pages / WAV chunks finds truncation that decoders silently accept. For an MP3 the walk
(:func:`mp3_layout`) also records the byte range of its audio frames (``FileInfo.audio_start`` /
``audio_end``: after the ID3v2 tags and the Xing/Info/VBRI header frame, before trailing ID3v1 / APE /
Lyrics3 tags and the frames holding the encoder padding), from which training cuts its window slices
(:func:`hvd_magtag.audio.mp3_random_window`).

The results are cached as JSON beside the data (``<root>/hvd_magtag_manifest.json``; when the data folder is
read-only, in ``cache_dir`` or ``~/.cache/hvd_magtag/manifests``) and a file is rescanned only when its size
or mtime changed. Every validation also writes a readable report of the bad files
(``hvd_magtag_bad_files.tsv``: path, reason) next to the cache.

Multi-rank jobs: validate on rank 0 and broadcast the result (the Manifest pickles), or let rank 0 fill the
cache before the other ranks call ``validate`` (they then only stat the files).

Command line: ``python -m hvd_magtag.data.manifest --dataset mtat --root /data/mtat [--min-duration 3]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hvd_magtag.data.catalog import Catalog

log = logging.getLogger(__name__)

MANIFEST_NAME = "hvd_magtag_manifest.json"
REPORT_NAME = "hvd_magtag_bad_files.tsv"
#: bump when the checks change: cached entries of another version are rescanned
SCANNER_VERSION = 2

#: tfio.audio.AudioIOTensor is not safe to open from several threads at once: two concurrent opens can
#: report each other's dtype/shape. Opening is cheap (< 1 ms, no decoding); decoding stays parallel.
_AUDIO_IO_LOCK = threading.Lock()

#: file suffix -> decoder name (the formats hvd_magtag.audio decodes)
FORMATS = {".mp3": "mp3", ".wav": "wav", ".flac": "flac", ".ogg": "ogg"}


@dataclass(frozen=True)
class FileInfo:
    """What the scan found for one file. ``status`` is ok | missing | empty | unsupported | garbage | truncated."""

    size: int  # bytes; -1 when missing
    mtime_ns: int
    status: str
    detail: str = ""  # why not ok, one line
    format: str = ""  # decoder chosen by the suffix: mp3 | wav | flac | ogg
    rate: int = 0  # Hz
    channels: int = 0
    samples: int = 0  # decoded samples per channel
    # mp3: byte range [audio_start, audio_end) of whole audio frames a training slice may be cut from (after
    # ID3v2 tags and the Xing/Info/VBRI frame, before trailing tags and the encoder padding; Mp3Layout);
    # 0, 0 for other formats
    audio_start: int = 0
    audio_end: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def duration(self) -> float:
        """Length in seconds (decoded samples / rate)."""
        return self.samples / self.rate if self.rate else 0.0

    @property
    def reason(self) -> str:
        return f"{self.status}: {self.detail}" if self.detail else self.status


class Manifest:
    """Per-file facts for the files of one validated catalog (keys: the clips' absolute paths).

    ``rate(path)`` Hz, ``channels(path)``, ``duration(path)`` s, ``samples(path)`` per channel, ``format(path)``;
    ``bad``: [(path, reason)] for every file left out (decode failures and clips shorter than
    ``min_duration``). ``cache_path`` / ``report_path``: where the JSON cache and the report were written;
    ``scanned`` / ``reused``: files decoded in this call vs taken from the cache.
    """

    def __init__(
        self,
        files: dict[str, FileInfo],
        *,
        min_duration: float = 0.0,
        cache_path: Path | None = None,
        report_path: Path | None = None,
        scanned: int = 0,
        reused: int = 0,
    ) -> None:
        self.files = files
        self.min_duration = min_duration
        self.cache_path = cache_path
        self.report_path = report_path
        self.scanned = scanned
        self.reused = reused

    def info(self, path: str) -> FileInfo:
        try:
            return self.files[str(path)]
        except KeyError:
            raise KeyError(f"{path} is not in the manifest; validate a catalog that contains it") from None

    def rate(self, path: str) -> int:
        return self.info(path).rate

    def channels(self, path: str) -> int:
        return self.info(path).channels

    def duration(self, path: str) -> float:
        return self.info(path).duration

    def samples(self, path: str) -> int:
        return self.info(path).samples

    def format(self, path: str) -> str:
        return self.info(path).format

    def audio_range(self, path: str) -> tuple[int, int]:
        """``(audio_start, audio_end)`` bytes of an mp3's audio frames (``(0, 0)`` for other formats)."""
        entry = self.info(path)
        return entry.audio_start, entry.audio_end

    def reason(self, path: str) -> str:
        """Why ``path`` is bad ("" if it is fine)."""
        entry = self.info(path)
        if not entry.ok:
            return entry.reason
        if entry.duration < self.min_duration:
            return f"too short: {entry.duration:.2f} s < {self.min_duration:g} s"
        return ""

    @property
    def bad(self) -> list[tuple[str, str]]:
        return [(p, r) for p in sorted(self.files) if (r := self.reason(p))]

    def __len__(self) -> int:
        return len(self.files)

    def __contains__(self, path: object) -> bool:
        return str(path) in self.files


# -- checking one file -----------------------------------------------------------------------------------------


def inspect_file(path: str | Path) -> FileInfo:
    """Check one audio file (see the module docstring for the statuses). Safe to call from threads."""
    path = str(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return FileInfo(-1, 0, "missing", "no such file")
    except OSError as e:
        return FileInfo(-1, 0, "missing", f"cannot stat ({e.strerror})")
    size, mtime = stat.st_size, stat.st_mtime_ns
    fmt = FORMATS.get(Path(path).suffix.lower(), "")
    if not fmt:
        return FileInfo(
            size, mtime, "unsupported", f"suffix {Path(path).suffix!r} is not one of {', '.join(FORMATS)}"
        )
    if size == 0:
        return FileInfo(size, mtime, "empty", "0 bytes", fmt)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as e:
        return FileInfo(size, mtime, "missing", f"cannot read ({e.strerror})", fmt)
    sniffed = sniff_format(data)
    if sniffed and sniffed != fmt:
        return FileInfo(
            size,
            mtime,
            "garbage",
            f"named .{fmt} but the bytes are {sniffed.upper()}; rename it to .{sniffed}",
            fmt,
        )
    layout = mp3_layout(data) if fmt == "mp3" else None
    structure = layout.problem if layout is not None else STRUCTURE_CHECKS[fmt](data)
    if structure and structure[0] == "garbage":
        return FileInfo(size, mtime, "garbage", structure[1], fmt)

    import tensorflow as tf
    import tensorflow_io as tfio

    try:
        with _AUDIO_IO_LOCK:  # AudioIOTensor's reader resource is shared between concurrent calls (seen)
            audio = tfio.audio.AudioIOTensor(path)
            rate = int(audio.rate.numpy())
            header_samples, channels = (int(n) for n in audio.shape.numpy())
            dtype = audio.dtype
    except (tf.errors.OpError, ValueError) as e:
        if structure:  # cut so early that even the header is unreadable
            return FileInfo(size, mtime, *structure, fmt)
        return FileInfo(size, mtime, "garbage", f"not a readable {fmt} file ({_tf_message(e)})", fmt)
    try:
        decoded = DECODERS[fmt](tf.constant(data), dtype)
        samples = int(decoded.shape[0])
    except tf.errors.OpError as e:
        if structure:
            return FileInfo(size, mtime, *structure, fmt, rate, channels, 0)
        cut = isinstance(e, tf.errors.OutOfRangeError) or "unable to read" in _tf_message(e)
        detail = f"{fmt} decoder fails: {_tf_message(e)}"
        return FileInfo(size, mtime, "truncated" if cut else "garbage", detail, fmt, rate, channels, 0)
    if structure:  # truncated, though the decoder accepted it
        return FileInfo(size, mtime, structure[0], structure[1], fmt, rate, channels, samples)
    if samples == 0 or rate <= 0:
        return FileInfo(
            size, mtime, "garbage", f"decodes to {samples} samples at {rate} Hz", fmt, rate, channels
        )
    if samples < 0.99 * header_samples:
        return FileInfo(
            size,
            mtime,
            "truncated",
            f"header announces {header_samples} samples, decoding gives {samples}",
            fmt,
            rate,
            channels,
            samples,
        )
    audio_start = audio_end = 0
    if layout is not None:
        from hvd_magtag.audio import MP3_WARMUP_SAMPLES

        audio_start, audio_end = layout.audio_range(samples, MP3_WARMUP_SAMPLES)
    return FileInfo(size, mtime, "ok", "", fmt, rate, channels, samples, audio_start, audio_end)


def _tf_message(e: Exception) -> str:
    message = getattr(e, "message", str(e))
    return re.sub(r"\{\{.*?\}\}\s*", "", message).split(" [Op:")[0].strip()


def _decode_mp3(data, dtype):
    import tensorflow_io as tfio

    return tfio.audio.decode_mp3(data)


def _decode_wav(data, dtype):
    import tensorflow_io as tfio

    return tfio.audio.decode_wav(data, dtype=dtype)


def _decode_flac(data, dtype):
    import tensorflow_io as tfio

    return tfio.audio.decode_flac(data, dtype=dtype)


def _decode_ogg(data, dtype):
    import tensorflow_io as tfio

    return tfio.audio.decode_vorbis(data)


DECODERS = {"mp3": _decode_mp3, "wav": _decode_wav, "flac": _decode_flac, "ogg": _decode_ogg}


def sniff_format(data: bytes) -> str:
    """The audio format the first bytes announce ("" if none is recognisable; raw MP3 frames count as mp3)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:4] == b"fLaC":
        return "flac"
    if data[:4] == b"OggS":
        return "ogg"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    return ""


# -- container structure (what decoders silently accept) -------------------------------------------------------

# MPEG audio bitrates in kbit/s by (MPEG-1?, layer), for bitrate index 1..14
_MP3_KBPS = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}
#: Bytes after the ID3v2 tag(s) searched for the first MPEG frame.
MP3_SYNC_SEARCH_BYTES = 1 << 16


@dataclass(frozen=True)
class _Frame:
    """One MPEG audio frame header: its length in bytes and what must stay constant along a stream."""

    length: int
    mpeg1: bool
    layer: int
    rate: int  # Hz
    channels: int
    crc: bool  # a 16-bit CRC follows the header

    @property
    def samples(self) -> int:
        """Samples per channel the frame decodes to."""
        return 384 if self.layer == 1 else 1152 if self.mpeg1 or self.layer == 2 else 576

    def same_stream(self, other: _Frame) -> bool:
        return (self.mpeg1, self.layer, self.rate) == (other.mpeg1, other.layer, other.rate)


def _mp3_header(data: bytes, i: int) -> _Frame | None:
    """The valid MPEG audio frame header at ``data[i]``, else None."""
    if i < 0 or i + 4 > len(data) or data[i] != 0xFF or data[i + 1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (data[i + 1] >> 3) & 3, (data[i + 1] >> 1) & 3
    bitrate_index, rate_index = data[i + 2] >> 4, (data[i + 2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3:
        return None  # reserved values (free-format streams are not supported either)
    mpeg1, layer = version == 3, 4 - layer_bits
    bitrate = _MP3_KBPS[(mpeg1, layer)][bitrate_index - 1] * 1000
    rate = _MP3_RATES[version][rate_index]
    padding = (data[i + 2] >> 1) & 1
    if layer == 1:
        length = (12 * bitrate // rate + padding) * 4
    else:
        length = (144 if mpeg1 or layer == 2 else 72) * bitrate // rate + padding
    channels = 1 if data[i + 3] >> 6 == 3 else 2
    return _Frame(length, mpeg1, layer, rate, channels, not data[i + 1] & 1)


def _mp3_frame(data: bytes, i: int) -> tuple[int, bool, int] | None:
    """(frame length in bytes, MPEG-1?, channels) of a valid MPEG audio frame header at ``data[i]``, else None."""
    frame = _mp3_header(data, i)
    return None if frame is None else (frame.length, frame.mpeg1, frame.channels)


def _syncsafe(b: bytes) -> int | None:
    """A 28-bit ID3v2 "syncsafe" size (4 bytes of 7 bits), None if a byte has its top bit set."""
    if len(b) != 4 or any(x & 0x80 for x in b):
        return None
    return b[0] << 21 | b[1] << 14 | b[2] << 7 | b[3]


def _leading_tags_end(data: bytes) -> int:
    """Offset just past the ID3v2 tag(s) at the start of ``data`` (header, body and footer; 0 if none)."""
    start = 0
    while data[start : start + 3] == b"ID3" and len(data) >= start + 10:
        size = _syncsafe(data[start + 6 : start + 10])
        if size is None:
            break
        start += 10 + size + (10 if data[start + 5] & 0x10 else 0)
    return min(start, len(data))


def _trailing_tags_start(data: bytes, start: int) -> int:
    """Offset where trailing tags begin (ID3v1 / ID3v1 enhanced "TAG+", APEv1/v2, Lyrics3 v1/v2, an appended
    ID3v2.4 tag with footer), in any order and number; ``len(data)`` if there are none."""
    end = len(data)
    while end > start:
        before = end
        if end - start >= 128 and data[end - 128 : end - 125] == b"TAG":
            end -= 128
            if end - start >= 227 and data[end - 227 : end - 223] == b"TAG+":
                end -= 227
        if end - start >= 32 and data[end - 32 : end - 24] == b"APETAGEX":
            size = int.from_bytes(data[end - 20 : end - 16], "little")  # items + footer
            has_header = data[end - 9] & 0x80
            end -= size + (32 if has_header else 0)
        if end - start >= 15 and data[end - 9 : end] == b"LYRICS200" and data[end - 15 : end - 9].isdigit():
            end -= int(data[end - 15 : end - 9]) + 15
        elif data[end - 9 : end] == b"LYRICSEND":
            begin = data.rfind(b"LYRICSBEGIN", max(start, end - 5100 - 20), end)
            if begin >= 0:
                end = begin
        if end - start >= 20 and data[end - 10 : end - 7] == b"3DI":
            size = _syncsafe(data[end - 4 : end])
            if size is not None:
                end -= size + 20
        if end == before:
            break
    return max(end, start)


@dataclass(frozen=True)
class Mp3Layout:
    """Where the parts of an MP3 file lie, found by walking its frames (bytes are offsets into the file).

    ``frames``: offsets of the audio frames the decoder turns into samples, in order, and after them the end
    of the last one; the Xing/Info header frame is not among them (tensorflow-io's decoder, minimp3, skips
    it and reads its frame count), a VBRI header frame is (minimp3 decodes it as a silent frame).
    ``header``: "Xing" | "Info" | "VBRI" | "". ``announced``: the frame count of a Xing/Info header.
    ``delay`` / ``padding``: samples per channel minimp3 drops at the start / end (from the LAME/Lavc
    extension of a Xing/Info header: encoder delay + 529, padding - 529; 0 without one).
    ``problem``: ("garbage" | "truncated", why) when the frames show the file is unusable, else None.
    """

    tags_end: int  # end of the leading ID3v2 tag(s)
    trailing_start: int  # start of the trailing tags (ID3v1, APE, Lyrics3, appended ID3v2)
    first: int  # offset of the first frame (the header frame when there is one); -1 if none
    frames: tuple[int, ...] = ()
    samples_per_frame: int = 0
    rate: int = 0
    channels: int = 0
    header: str = ""
    announced: int | None = None
    delay: int = 0
    padding: int = 0
    problem: tuple[str, str] | None = None

    @property
    def audio_start(self) -> int:
        """Offset of the first audio frame after the tags and the VBR header frame (-1 if none)."""
        skip = 1 if self.header == "VBRI" else 0
        return self.frames[skip] if len(self.frames) > skip + 1 else -1

    def audio_range(self, decoded_samples: int, warmup: int) -> tuple[int, int]:
        """``(start, end)`` byte range of whole audio frames whose decoded samples all lie inside the
        whole-file decode of ``decoded_samples`` samples per channel, where a decode starting at ``start``
        is exact after its first ``warmup`` samples.

        The whole-file decode is the concatenated frames minus ``delay`` samples at the start, cut to
        ``decoded_samples`` (minimp3 drops the encoder padding and stops at the announced frame count). A
        decode from byte ``start`` gives frame samples from there on; its first ``warmup`` samples are
        dropped, so frames are skipped until ``start``'s frame + ``warmup`` lies past ``delay``. The end is
        the last frame that ends within ``delay + decoded_samples``. ``(0, 0)`` when nothing is left.
        """
        spf, n = self.samples_per_frame, len(self.frames) - 1
        if n <= 0 or spf <= 0:
            return (0, 0)
        lead = max(1 if self.header == "VBRI" else 0, -(-max(0, self.delay - warmup) // spf))
        keep = min(n, (self.delay + decoded_samples) // spf)
        if keep <= lead:
            return (0, 0)
        return (self.frames[lead], self.frames[keep])


def mp3_layout(data: bytes) -> Mp3Layout:
    """Walk the frames of an MP3 file: leading ID3v2 tags (with footers), the first frame (one whose
    successor is a frame of the same stream, as decoders lock on), a Xing/Info/VBRI header frame, every
    frame to the trailing tags. ``problem`` says when the bytes are not usable: no frames; a last frame
    longer than the bytes left or fewer frames than a Xing/Info header announces (truncated); a sample
    rate, layer or channel count that changes mid-stream (garbage: decoders would mix rates)."""
    tags_end = _leading_tags_end(data)
    end = _trailing_tags_start(data, tags_end)
    first, head = -1, None
    position = data.find(b"\xff", tags_end, end)
    while 0 <= position < min(end, tags_end + MP3_SYNC_SEARCH_BYTES):
        head = _mp3_header(data, position)
        if head:
            successor = _mp3_header(data, position + head.length)
            if position + head.length >= end or (successor and head.same_stream(successor)):
                first = position
                break
        position = data.find(b"\xff", position + 1, end)
    if first < 0 or head is None:
        return Mp3Layout(tags_end, end, -1, problem=("garbage", "no MPEG audio frames found"))
    header, announced, delay, padding = _vbr_header(data, first, head)
    frames: list[int] = []
    i = first + head.length if header in ("Xing", "Info") else first
    problem = None
    while True:
        frame = _mp3_header(data, i)
        if frame is None:
            break
        if not frame.same_stream(head) or frame.channels != head.channels:
            what = (
                f"sample rate changes from {head.rate} Hz to {frame.rate} Hz"
                if frame.rate != head.rate
                else f"channels change from {head.channels} to {frame.channels}"
                if frame.channels != head.channels
                else "the MPEG version or layer changes"
            )
            problem = ("garbage", f"{what} at byte {i}: a concatenation of different streams")
            break
        if i + frame.length > end:
            problem = ("truncated", f"last MP3 frame is cut: needs {frame.length} bytes, {end - i} left")
            break
        frames.append(i)
        i += frame.length
    frames.append(i)
    n_frames = len(frames) - 1
    if problem is None and announced is not None and n_frames < announced:
        # lenient: encoders differ on whether the header frame counts itself
        problem = (
            "truncated",
            f"the Xing/Info header announces {announced} frames, the file holds {n_frames}",
        )
    return Mp3Layout(
        tags_end, end, first, tuple(frames), head.samples, head.rate, head.channels, header, announced,
        delay, padding, problem,
    )  # fmt: skip


def _vbr_header(data: bytes, first: int, head: _Frame) -> tuple[str, int | None, int, int]:
    """(kind, announced frames, delay, padding) of a Xing/Info/VBRI header in the frame at ``first``, read as
    minimp3 (tensorflow-io's decoder) reads it: a Xing/Info header it cannot parse is an ordinary audio frame
    (kind ""), one without a frame count is skipped but gives no count."""
    if head.layer != 3:
        return ("", None, 0, 0)
    if data[first + 36 : first + 40] == b"VBRI":
        return ("VBRI", None, 0, 0)
    side_info = (32 if head.channels == 2 else 17) if head.mpeg1 else (17 if head.channels == 2 else 9)
    at, limit = first + 4 + (2 if head.crc else 0) + side_info, first + head.length
    kind = data[at : at + 4]
    if kind not in (b"Xing", b"Info") or limit - at < 8:
        return ("", None, 0, 0)
    flags = data[at + 7]
    if not flags & 1:
        return (kind.decode(), None, 0, 0)
    tag = at + 8
    if limit - tag < 4:
        return ("", None, 0, 0)
    announced = int.from_bytes(data[tag : tag + 4], "big")
    tag += 4 + (4 if flags & 2 else 0) + (100 if flags & 4 else 0) + (4 if flags & 8 else 0)
    if limit - tag < 1:
        return ("", None, 0, 0)
    if not data[tag]:
        return (kind.decode(), announced, 0, 0)
    if limit - tag <= 35:  # an encoder extension (LAME, Lavc) too short for its delay/padding fields
        return ("", None, 0, 0)
    t = data[tag + 21 : tag + 24]
    delay = ((t[0] << 4) | (t[1] >> 4)) + 529
    padding = (((t[1] & 0xF) << 8) | t[2]) - 529
    return (kind.decode(), announced, delay, padding)


def check_mp3(data: bytes) -> tuple[str, str] | None:
    """("garbage" | "truncated", why) when the MP3 frame sequence shows it, else None (see :func:`mp3_layout`)."""
    return mp3_layout(data).problem


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


# -- scanning, caching, validating -----------------------------------------------------------------------------


def default_workers() -> int:
    """The number of cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def scan(paths: Iterable[str], workers: int | None = None) -> dict[str, FileInfo]:
    """:func:`inspect_file` on every path, ``workers`` threads at once (default: the core count)."""
    import tensorflow_io  # noqa: F401  (import once, before the clock and the threads start)

    paths = list(paths)
    workers = max(1, workers or default_workers())
    results: dict[str, FileInfo] = {}
    started = last_log = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="manifest") as pool:
        for done, (path, info) in enumerate(zip(paths, pool.map(inspect_file, paths)), start=1):
            results[path] = info
            now = time.monotonic()
            if now - last_log > 10:
                last_log = now
                log.info(
                    "manifest: %d/%d files checked (%.0f files/s)", done, len(paths), done / (now - started)
                )
    if paths:
        seconds = time.monotonic() - started
        log.info(
            "manifest: checked %d files in %.1f s (%.1f files/s, %d threads)",
            len(paths),
            seconds,
            len(paths) / seconds,
            workers,
        )
    return results


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hvd_magtag" / "manifests"


def _locations(root: Path, name: str, cache_dir: str | Path | None) -> list[tuple[Path, Path]]:
    """(cache file, report file) candidates in order: beside the data, then cache_dir (or the user cache)."""
    tag = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    fallback = Path(cache_dir) if cache_dir else _default_cache_dir()
    return [
        (root / MANIFEST_NAME, root / REPORT_NAME),
        (fallback / f"{name}-{tag}-{MANIFEST_NAME}", fallback / f"{name}-{tag}-{REPORT_NAME}"),
    ]


def _key(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def _read_cache(path: Path, root: Path) -> dict[str, FileInfo]:
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    if payload.get("version") != SCANNER_VERSION:
        return {}
    fields = {f.name for f in dataclasses.fields(FileInfo)}
    out = {}
    for key, entry in payload.get("files", {}).items():
        if isinstance(entry, dict) and set(entry) == fields:
            out[key if os.path.isabs(key) else str(root / key)] = FileInfo(**entry)
    return out


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def validate(
    catalog: Catalog,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    *,
    min_duration: float = 0.0,
) -> tuple[Catalog, Manifest]:
    """The catalog without its bad files, and the manifest of its files.

    Args:
        catalog: any loader's catalog; its ``root`` is where the cache and report go.
        cache_dir: used when ``catalog.root`` is read-only (default ``~/.cache/hvd_magtag/manifests``).
        workers: parallel checks (default: the core count).
        min_duration: files shorter than this many seconds are bad ("too short").

    Bad clips move to ``excluded`` as (clip_id, "<status>: <why>: <path>").
    """
    root = Path(catalog.root)
    paths = list(dict.fromkeys(c.path for c in catalog.clips))
    locations = _locations(root, catalog.name, cache_dir)
    cached: dict[str, FileInfo] = {}
    for cache_path, _ in reversed(locations):  # the file beside the data wins
        cached.update(_read_cache(cache_path, root))

    reuse: dict[str, FileInfo] = {}
    todo: list[str] = []
    for path in paths:
        old = cached.get(path)
        try:
            stat = os.stat(path)
            same = old is not None and (old.size, old.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
        except OSError:
            same = old is not None and old.status == "missing"
        if same:
            reuse[path] = old
        else:
            todo.append(path)
    fresh = scan(todo, workers) if todo else {}
    files = {p: reuse.get(p) or fresh[p] for p in paths}

    manifest = Manifest(files, min_duration=min_duration, scanned=len(fresh), reused=len(reuse))
    everything = {**cached, **files}
    payload = {
        "format": "hvd_magtag manifest",
        "version": SCANNER_VERSION,
        "root": str(root),
        "files": {_key(p, root): dataclasses.asdict(e) for p, e in sorted(everything.items())},
    }
    bad = manifest.bad
    for cache_path, report_path in locations:
        try:
            if fresh or not cache_path.is_file():
                _write_atomic(cache_path, json.dumps(payload, indent=0, sort_keys=True))
            _write_atomic(report_path, _report(root, bad, len(paths), min_duration))
        except OSError as e:
            log.info(
                "manifest: cannot write beside the data (%s); using %s", e.strerror, locations[-1][0].parent
            )
            continue
        manifest.cache_path, manifest.report_path = cache_path, report_path
        break
    else:
        log.warning(
            "manifest: no writable cache location (%s); results are not cached", locations[-1][0].parent
        )

    if bad:
        log.warning(
            "manifest: %d of %d files are bad and left out; see %s",
            len(bad),
            len(paths),
            manifest.report_path,
        )
    reasons = dict(bad)
    keep = [c for c in catalog.clips if c.path not in reasons]
    gone = [(c.clip_id, f"{reasons[c.path]}: {c.path}") for c in catalog.clips if c.path in reasons]
    return dataclasses.replace(catalog, clips=keep, excluded=catalog.excluded + gone), manifest


def _report(root: Path, bad: list[tuple[str, str]], n_files: int, min_duration: float) -> str:
    lines = [
        f"# hvd_magtag: {len(bad)} of {n_files} audio files under {root} are left out "
        f"(min duration {min_duration:g} s); written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
        "path\treason",
    ]
    lines += [f"{_key(path, root)}\t{reason}" for path, reason in bad]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Validate a dataset from the command line and print the summary and the bad files."""
    from hvd_magtag.config import DataConfig
    from hvd_magtag.data import LOADERS, load_catalog

    parser = argparse.ArgumentParser(
        prog="python -m hvd_magtag.data.manifest", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dataset", default="mtat", choices=list(LOADERS))
    parser.add_argument("--root", default="", help="dataset folder (data.root)")
    parser.add_argument("--split", default="directory", help="data.split (mtat: directory keeps every clip)")
    parser.add_argument("--vocabulary", default="top50")
    parser.add_argument("--subset", default="", help="fma subset")
    parser.add_argument("--min-duration", type=float, default=0.0, help="seconds; shorter files are bad")
    parser.add_argument("--workers", type=int, default=None, help="parallel checks (default: core count)")
    parser.add_argument("--cache-dir", default=None, help="cache location when the data folder is read-only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data_cfg = DataConfig(
        dataset=args.dataset, root=args.root, split=args.split, vocabulary=args.vocabulary, subset=args.subset
    )
    catalog = load_catalog(data_cfg)
    started = time.monotonic()
    valid, manifest = validate(catalog, args.cache_dir, args.workers, min_duration=args.min_duration)
    seconds = time.monotonic() - started
    print(
        f"{len(manifest)} files: {manifest.scanned} checked, {manifest.reused} from cache, {len(manifest.bad)} bad "
        f"({seconds:.1f} s); {len(valid.clips)} clips kept {valid.split_counts()}"
    )
    for path, reason in manifest.bad:
        print(f"  {path}\t{reason}")
    print(f"cache: {manifest.cache_path}\nreport: {manifest.report_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
