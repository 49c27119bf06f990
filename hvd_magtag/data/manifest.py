"""Validate the audio files of a catalog once: does each decode, at what rate, how many channels, how long.

``validate(catalog)`` scans every file of the catalog in parallel (threads; TensorFlow ops release the GIL),
records one :class:`FileInfo` per file and returns the catalog without the bad files plus the
:class:`Manifest`. A file is bad when it is

- ``missing``: no such file;
- ``empty``: 0 bytes (MTAT and FMA each ship a few);
- ``unsupported``: not .mp3/.wav/.flac/.ogg;
- ``garbage``: the decoder for its suffix rejects it (random bytes, an HTML error page, a WAV named .mp3:
  the pipeline decodes by suffix, so the reason says what the bytes look like and how to fix it);
- ``truncated``: cut short: the last MP3 frame or Ogg page is incomplete, an MP3 Xing/Info header or a WAV
  data chunk announces more than the file holds, or the decoder stops early;
- ``too short``: shorter than ``min_duration`` seconds (decided at validation from the recorded duration,
  so changing the minimum needs no rescan).

How a file is checked: ``tfio.audio.AudioIOTensor(path)`` gives the sample rate and shape, a full decode of
the bytes with the decoder the pipeline uses for that suffix (``tfio.audio.decode_mp3`` ...) proves it
decodes and gives the real length (``duration = decoded samples / rate``), and a walk over the MP3 frames /
Ogg pages / WAV chunks finds truncation that decoders silently accept.

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
SCANNER_VERSION = 1

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
    structure = STRUCTURE_CHECKS[fmt](data)
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
    return FileInfo(size, mtime, "ok", "", fmt, rate, channels, samples)


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


def _mp3_frame(data: bytes, i: int) -> tuple[int, bool, int] | None:
    """(frame length in bytes, MPEG-1?, channels) of a valid MPEG audio frame header at ``data[i]``, else None."""
    if i + 4 > len(data) or data[i] != 0xFF or data[i + 1] & 0xE0 != 0xE0:
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
    return length, mpeg1, 1 if data[i + 3] >> 6 == 3 else 2


def check_mp3(data: bytes) -> tuple[str, str] | None:
    """("garbage" | "truncated", why) when the MP3 frame sequence shows it, else None.

    Skips an ID3v2 tag at the start and ID3v1 / APE tags at the end; the first frame is one whose successor
    also has a valid header (as decoders lock on). A last frame longer than the bytes left, or fewer frames
    than an Xing/Info header announces, means the file was cut.
    """
    start, end = 0, len(data)
    if data[:3] == b"ID3" and len(data) >= 10:
        start = 10 + (data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9]) + (10 if data[5] & 0x10 else 0)
    if end - start >= 128 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    if end - start >= 32 and data[end - 32 : end - 24] == b"APETAGEX":
        end -= int.from_bytes(data[end - 20 : end - 16], "little") + (32 if data[end - 9] & 0x80 else 0)
    first = None
    position = data.find(b"\xff", start, end)
    while 0 <= position < min(end, start + 65536):
        frame = _mp3_frame(data, position)
        if frame and (position + frame[0] >= end or _mp3_frame(data, position + frame[0])):
            first = position
            break
        position = data.find(b"\xff", position + 1, end)
    if first is None:
        return ("garbage", "no MPEG audio frames found")
    announced = _xing_frames(data, first)
    frames, i = 0, first
    while True:
        frame = _mp3_frame(data, i)
        if frame is None:
            break
        if i + frame[0] > end:
            return ("truncated", f"last MP3 frame is cut: needs {frame[0]} bytes, {end - i} left")
        i += frame[0]
        frames += 1
    if announced is not None and frames < announced:  # lenient: encoders differ on counting the tag frame
        return ("truncated", f"the Xing/Info header announces {announced} frames, the file holds {frames}")
    return None


def _xing_frames(data: bytes, first: int) -> int | None:
    frame = _mp3_frame(data, first)
    if frame is None:
        return None
    _, mpeg1, channels = frame
    side_info = (32 if channels == 2 else 17) if mpeg1 else (17 if channels == 2 else 9)
    at = first + 4 + side_info
    if data[at : at + 4] not in (b"Xing", b"Info") or not int.from_bytes(data[at + 4 : at + 8], "big") & 1:
        return None
    return int.from_bytes(data[at + 8 : at + 12], "big")


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
