"""Validate the audio files of a catalog once: does each decode, at what rate, how many channels, how long.

``validate(catalog)`` scans every file of the catalog in parallel (threads; TensorFlow ops release the GIL),
records one :class:`FileInfo` per file and returns the catalog without the bad files plus the
:class:`Manifest`. A file is bad when it is

- ``missing``: no such file;
- ``empty``: 0 bytes (MTAT and FMA each ship a few);
- ``unsupported``: a suffix that is not one of ``hvd_magtag.audio.AUDIO_SUFFIXES``;
- ``garbage``: the decoder for its suffix rejects it (random bytes, an HTML error page, a WAV named .mp3:
  the pipeline decodes by suffix, so the reason says what the bytes look like and how to fix it), or an MP3
  whose sample rate or channel count changes mid-stream (two streams glued together);
- ``truncated``: cut short: the last MP3 frame or Ogg page is incomplete, an MP3 Xing/Info header or a WAV
  data chunk announces more than the file holds, or the decoder stops early;
- ``too short``: shorter than ``min_duration`` seconds (decided at validation from the recorded duration,
  so changing the minimum needs no rescan).

How a file is checked: the format's in-graph decoder, exactly as the pipeline runs it
(``hvd_magtag.audio.decode``; tensorflow-io's ``AudioIOTensor`` gives the sample rate and header length)
decodes the whole file; when it does not take the file (24-bit WAV, 24-bit FLAC...) or the format has none
(Opus, AIFF, M4A), the format's Python decoder does (``hvd_magtag.audio.decode_file``: soundfile or PyAV).
``FileInfo.decoder`` records which one the pipeline must use; ``duration = decoded samples / rate``. A walk over the MP3 frames /
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

import dataclasses
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from hvd_magtag import cli, fsutil, locations
from hvd_magtag.audio.containers import (  # noqa: F401 (re-exported)
    STRUCTURE_CHECKS,
    check_flac,
    check_ogg,
    check_wav,
    file_problem,
    sniff_format,
)
from hvd_magtag.audio.formats import AUDIO_SUFFIXES, BY_SUFFIX
from hvd_magtag.audio.mpeg import Mp3Layout, _mp3_frame, check_mp3, mp3_layout  # noqa: F401 (re-exported)
from hvd_magtag.config import DataConfig
from hvd_magtag.data.catalog import Catalog

log = logging.getLogger(__name__)

MANIFEST_NAME = "hvd_magtag_manifest.json"
REPORT_NAME = "hvd_magtag_bad_files.tsv"
#: bump when the checks change: cached entries of another version are rescanned
SCANNER_VERSION = 3

#: tfio.audio.AudioIOTensor is not safe to open from several threads at once: two concurrent opens can
#: report each other's dtype/shape. Opening is cheap (< 1 ms, no decoding); decoding stays parallel.
_AUDIO_IO_LOCK = threading.Lock()


@dataclass(frozen=True)
class FileInfo:
    """What the scan found for one file. ``status`` is ok | missing | empty | unsupported | garbage | truncated."""

    size: int  # bytes; -1 when missing
    mtime_ns: int
    status: str
    detail: str = ""  # why not ok, one line
    format: str = (
        ""  # the format named by the suffix (hvd_magtag.audio.formats): mp3 | wav | flac | ogg | ...
    )
    rate: int = 0  # Hz
    channels: int = 0
    samples: int = 0  # decoded samples per channel
    # mp3: byte range [audio_start, audio_end) of whole audio frames a training slice may be cut from (after
    # ID3v2 tags and the Xing/Info/VBRI frame, before trailing tags and the encoder padding; Mp3Layout);
    # 0, 0 for other formats
    audio_start: int = 0
    audio_end: int = 0
    # the decoder that decodes this file: in the graph (mp3 | wav | flac | ogg) when the format's graph
    # decoder takes it, else the format's Python decoder (soundfile | av); "" for a bad file
    decoder: str = ""

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

    ``rate(path)`` Hz, ``channels(path)``, ``duration(path)`` s, ``samples(path)`` per channel, ``format(path)``,
    ``decoder(path)``, ``audio_range(path)`` (mp3 bytes);
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

    def decoder(self, path: str) -> str:
        """The decoder the pipeline uses for ``path``: mp3 | wav | flac | ogg (in the graph) or soundfile | av."""
        return self.info(path).decoder

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
    """Check one audio file (see the module docstring for the statuses). Safe to call from threads.

    The decoder recorded is the first that decodes the whole file without error: the format's in-graph
    decoder (``hvd_magtag.audio.decode``, exactly what the pipeline runs), else its Python decoder
    (``hvd_magtag.audio.decode_file``); a file neither decodes is bad with the reason of the last one."""

    path = str(path)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return FileInfo(-1, 0, "missing", "no such file")
    except OSError as e:
        return FileInfo(-1, 0, "missing", f"cannot stat ({e.strerror})")
    size, mtime = stat.st_size, stat.st_mtime_ns
    entry = BY_SUFFIX.get(Path(path).suffix.lower())
    if entry is None:
        return FileInfo(
            size,
            mtime,
            "unsupported",
            f"suffix {Path(path).suffix!r} is not one of {', '.join(AUDIO_SUFFIXES)}",
        )
    fmt = entry.name
    if size == 0:
        return FileInfo(size, mtime, "empty", "0 bytes", fmt)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as e:
        return FileInfo(size, mtime, "missing", f"cannot read ({e.strerror})", fmt)
    problem = file_problem(path, data)
    if problem and problem[0] == "garbage":
        return FileInfo(size, mtime, *problem, fmt)
    layout = mp3_layout(data) if entry.container == "mp3" else None
    structure = problem

    failure: tuple[str, str] = ("garbage", f"not a readable {fmt} file")
    if entry.graph:
        result = _graph_decode(path, data, entry.graph, fmt)
        if isinstance(result, FileInfo):
            found = result
        else:
            found, failure = None, result
    else:
        found = None
    if found is None:
        result = _python_decode(path, entry.python, fmt)
        if isinstance(result, FileInfo):
            found = result
        elif not (entry.graph and result[0] == "garbage" and failure[0] == "truncated"):
            failure = result
    if found is None:
        if structure:  # what the bytes show explains why the decoders fail
            return FileInfo(size, mtime, *structure, fmt)
        return FileInfo(size, mtime, *failure, fmt)
    found = dataclasses.replace(found, size=size, mtime_ns=mtime)
    if structure:  # truncated, though a decoder accepted it
        return dataclasses.replace(found, status=structure[0], detail=structure[1], decoder="")
    if layout is not None and found.decoder == "mp3":
        from hvd_magtag.audio.windows import MP3_WARMUP_SAMPLES

        start, end = layout.audio_range(found.samples, MP3_WARMUP_SAMPLES)
        found = dataclasses.replace(found, audio_start=start, audio_end=end)
    return found


def _graph_decode(path: str, data: bytes, decoder: str, fmt: str) -> FileInfo | tuple[str, str]:
    """The file decoded by the pipeline's in-graph decoder (rate and header length from tensorflow-io's
    AudioIOTensor), or (status, why) when that decoder does not take it."""
    import tensorflow as tf
    import tensorflow_io as tfio

    from hvd_magtag.audio.decoding import decode

    try:
        with _AUDIO_IO_LOCK:  # AudioIOTensor's reader resource is shared between concurrent calls (seen)
            reader = tfio.audio.AudioIOTensor(path)
            rate = int(reader.rate.numpy())
            header_samples, channels = (int(n) for n in reader.shape.numpy())
    except (tf.errors.OpError, ValueError) as e:
        return ("garbage", f"not a readable {fmt} file ({_tf_message(e)})")
    try:
        samples = int(decode(tf.constant(data), decoder).shape[0])
    except tf.errors.OpError as e:
        cut = isinstance(e, tf.errors.OutOfRangeError) or "unable to read" in _tf_message(e)
        return ("truncated" if cut else "garbage", f"{fmt} decoder fails: {_tf_message(e)}")
    if samples == 0 or rate <= 0:
        return ("garbage", f"decodes to {samples} samples at {rate} Hz")
    if samples < 0.99 * header_samples:
        return ("truncated", f"header announces {header_samples} samples, decoding gives {samples}")
    return FileInfo(0, 0, "ok", "", fmt, rate, channels, samples, decoder=decoder)


def _python_decode(path: str, decoder: str, fmt: str) -> FileInfo | tuple[str, str]:
    """The file decoded whole by its Python decoder (``hvd_magtag.audio.stream_file``), or (status, why)."""
    from hvd_magtag.audio.decoding import DecodeError, stream_file

    samples = 0
    try:
        rate, channels, frames, blocks = stream_file(path, 1 << 13, decoder)  # small: count what decodes
        for block in blocks:
            samples += len(block)
    except DecodeError as e:
        reason = str(e).split(": ", 1)[-1]
        return ("truncated" if samples else "garbage", reason)
    except (OSError, RuntimeError, ValueError, MemoryError) as e:
        return ("garbage", f"{decoder} fails: {e}".replace("\n", " "))
    if samples == 0 or rate <= 0:
        return ("garbage", f"decodes to {samples} samples at {rate} Hz")
    if frames > 0 and samples < 0.99 * frames:
        return ("truncated", f"header announces {frames} samples, decoding gives {samples}")
    return FileInfo(0, 0, "ok", "", fmt, rate, channels, samples, decoder=decoder)


def _tf_message(e: Exception) -> str:
    message = getattr(e, "message", str(e))
    return re.sub(r"\{\{.*?\}\}\s*", "", message).split(" [Op:")[0].strip()


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

    return locations.cache_dir("manifests")


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
                fsutil.atomic_write(cache_path, json.dumps(payload, indent=0, sort_keys=True))
            fsutil.atomic_write(report_path, _report(root, bad, len(paths), min_duration))
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
    from hvd_magtag.data import LOADERS

    parser = cli.OneLineParser(
        prog="python -m hvd_magtag.data.manifest", description=__doc__.split("\n")[0], debug_flag=True
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
    return cli.run_cli(lambda: _validate_command(args), debug=args.debug)


def _validate_command(args) -> None:
    from hvd_magtag.data import load_catalog

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


if __name__ == "__main__":
    sys.exit(main())
