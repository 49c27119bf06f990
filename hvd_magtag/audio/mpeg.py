"""MP3 files as bytes: frame headers, ID3v2 / ID3v1 / APE / Lyrics3 tags, Xing/Info/VBRI header frames, and the
byte range of the audio frames a training slice may be cut from (:class:`Mp3Layout`). No TensorFlow here.

tensorflow-io decodes mp3 with minimp3, whose reading of these structures this module follows where it
matters for exactness: it skips one leading ID3v2 tag and trailing ID3v1 / APEv2 tags, locks onto a frame
whose successors match, skips a Xing/Info frame and takes its frame count, encoder delay (+ 529) and
padding (- 529) from a LAME/Lavc extension, and decodes a VBRI frame as a silent frame.
"""

from __future__ import annotations

from dataclasses import dataclass

from hvd_magtag.audio.formats import MPEG_RATES

# MPEG audio bitrates in kbit/s by (MPEG-1?, layer), for bitrate index 1..14
_MP3_KBPS = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
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


#: a marker: a header not parsed yet (``mp3_layout``'s walk)
_UNPARSED = object()


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
    rate = MPEG_RATES[version][rate_index]
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
    def decoded_samples(self) -> int | None:
        """Samples per channel tensorflow-io's whole-file decode (minimp3) gives: every audio frame's samples
        minus the encoder ``delay`` and ``padding``; None when the frames do not say it for sure (no frames,
        a problem, or a Xing/Info frame count other than the frames found)."""
        n = len(self.frames) - 1
        if self.problem or n <= 0 or self.samples_per_frame <= 0:
            return None
        if self.announced is not None and self.announced != n:
            return None
        return max(0, n * self.samples_per_frame - self.delay - self.padding)

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
    # Headers repeat (a CBR stream has two: with and without the padding byte), so each distinct 4 bytes is
    # parsed once: the walk costs ~1 us per frame instead of ~7 (30 s of 16 kHz mono: 1,250 frames).
    parsed: dict[int, _Frame | None] = {}
    size = len(data)
    while True:
        if i < 0 or i + 4 > size:
            break
        key = int.from_bytes(data[i : i + 4], "big")
        frame = parsed.get(key, _UNPARSED)
        if frame is _UNPARSED:
            frame = parsed[key] = _mp3_header(data, i)
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
