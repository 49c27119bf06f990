"""Files -> windows -> model, with decoding overlapped with the model by a thread pool.

Reading (:class:`Reader`): files up to ``whole_file_max_bytes`` are decoded whole by the tagging module's
``prepare_bytes`` (the graph of the exported ``from_bytes``: header rate, decode, downmix, resample); larger
ones are read in ``segment_seconds`` segments with tensorflow-io's ``AudioIOTensor`` and resampled with a
margin so that segment joins are seamless. Every file becomes consecutive windows of ``spec.window``
samples, the last one zero-padded.

Streaming (:func:`iter_tagged`): a ``concurrent.futures.ThreadPoolExecutor`` decodes up to
``2 * workers`` files ahead (TensorFlow ops release the GIL) while the calling thread runs the model;
windows of several consecutive short files share one model call (split models), and a call is made as soon
as the next file is not decoded yet, so the model never waits for a full batch. A streamed (large) file is
read by a one-thread executor one chunk ahead of the model. A file that cannot be read becomes a
:class:`~hvd_magtag.tag.tagger.FileFailure` with a one-line reason; the others are still tagged.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_io as tfio

from hvd_magtag.audio import (
    decode_file,
    decode_mp3_fast,
    file_problem,
    format_of,
    graph_decoder,
    stream_file,
    tail_padded_windows,
)
from hvd_magtag.features import window_context
from hvd_magtag.tag.model import TaggerError
from hvd_magtag.tag.results import FileFailure

#: Seconds of audio (at the file's own rate) decoded and resampled at a time in a streamed file.
SEGMENT_SECONDS = 60.0
#: Files up to this size (bytes) are decoded whole (in parallel); larger ones are streamed. 4 MiB is ~4 min
#: of 128 kbit/s mp3 (~90 MB as float32 at 44.1 kHz stereo) or 47 s of 44.1 kHz stereo wav.
WHOLE_FILE_MAX_BYTES = 4 << 20
#: Windows per model call from the Python side (the graph batches them further, serving.BATCH_WINDOWS).
CHUNK_WINDOWS = 32
#: Minimum extra context (s) read on each side of a segment so the resampler's edges fall outside it.
RESAMPLE_MARGIN_SECONDS = 0.05
#: Files decoded ahead of the model per decoding worker.
LOOKAHEAD_PER_WORKER = 2
#: Full scale of 16-bit PCM (wav/flac read as int16).
_INT16_SCALE = 32768.0
#: Exceptions that mean "this file cannot be tagged" (anything else is a bug and propagates).
FILE_ERRORS = (tf.errors.OpError, OSError, ValueError, RuntimeError)

#: tensorflow-io 0.37.1's AudioIOTensor misreads when two are alive in one process, even in one thread (reading
#: the first after opening a second returns wrong samples; across threads it can abort the process with a
#: dtype check). Streamed (large) files therefore hold this lock for the reader's whole life: one at a time.
_READER_LOCK = threading.Lock()


def one_line(exc: BaseException) -> str:
    """A one-line message from an exception. TF op errors carry graph context (``Graph execution error``,
    ``Detected at node ... File ...`` traces, ``[[{{node ...}}]]``, ``[Op:...]``): keep the reason only."""
    text = exc.message if isinstance(exc, tf.errors.OpError) else str(exc)
    lines = [line.strip() for line in text.splitlines()]
    noise = ("Graph execution error", "Detected at node", "File ", "[[")
    reasons = [line for line in lines if line and not line.startswith(noise)]
    reason = reasons[-1] if reasons else type(exc).__name__
    reason = re.sub(r"^\{\{function_node [^}]*\}\}\s*", "", reason)  # eager op prefix
    reason = re.sub(r"\s*\[Op:[^\]]*\]$", "", reason)  # op suffix
    reason = re.sub(r"^assertion failed: \[(.*)\]$", r"\1", reason)  # tf.debugging.Assert messages
    return f"{type(exc).__name__}: {reason}"


def _check_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Raise :class:`TaggerError` with the manifest's one-line reason when the bytes show the file is unusable
    (``audio.file_problem``: wrong container for its suffix, DRM, a cut last frame, a sample rate that
    changes mid-stream...)."""
    problem = file_problem(path, data)
    if problem:
        raise TaggerError(f"{path}: {problem[0]}: {problem[1]}")


@dataclass
class Decoded:
    """A file decoded whole: ``windows`` float32 [n, context + spec.window]; ``seconds`` of source audio."""

    windows: np.ndarray
    seconds: float


@dataclass
class Streamed:
    """A file too large to decode whole: read in segments by the model's thread (one such file at a time)."""

    path: str


class Reader:
    """Decodes audio files into mono windows at the model's rate with a tagging module's graph functions.

    module: a :func:`hvd_magtag.serving.tagging_module` (or its SavedModel); spec: its ModelSpec.
    segment_seconds / whole_file_max_bytes / chunk_windows: see the module constants.
    """

    def __init__(self, module, spec, segment_seconds: float, whole_file_max_bytes: int, chunk_windows: int):

        self.module, self.spec = module, spec
        #: samples before each window that its features read (rows are context + window samples)
        self.context = window_context(spec)
        self.segment_seconds = float(segment_seconds)
        self.whole_file_max_bytes = int(whole_file_max_bytes)
        self.chunk_windows = int(chunk_windows)

    def open(self, path: str | os.PathLike) -> Decoded | Streamed:
        """Decode a small file whole (thread-safe: run it in the pool) or say it must be streamed."""
        if self._streamed(path):
            return Streamed(str(path))
        waveform, seconds = self._whole(path)
        return Decoded(tail_padded_windows(waveform, self.spec.window, self.context).numpy(), seconds)

    def _streamed(self, path: str | os.PathLike) -> bool:
        format_of(str(path))  # unsupported extensions fail with a clear message before any decoding
        size = os.path.getsize(path)  # a missing file raises FileNotFoundError naming it
        if size == 0:
            raise TaggerError(f"{path}: empty file (0 bytes)")
        if size > self.whole_file_max_bytes:
            _check_bytes(path, Path(path).read_bytes())
            return True
        return False

    def _whole(self, path: str | os.PathLike) -> tuple[np.ndarray, float]:
        """The whole file: in the graph (``prepare_bytes``, the exported ``from_bytes``) when its format's
        graph decoder takes it, else decoded in Python (``audio.decode_file``) and ``prepare``d. An MP3 is
        decoded by mpg123 when that gives the in-graph decoder's samples (``audio.decode_mp3_fast``: the
        same count, within 6e-7), else in the graph."""
        data = Path(path).read_bytes()
        _check_bytes(path, data)  # the manifest's checks: the same files are named unusable
        graph = graph_decoder(format_of(str(path)))
        if graph == "mp3" and (fast := decode_mp3_fast(path, data)) is not None:  # minimp3's samples, faster
            x, rate = fast
            return self.module.prepare(x, rate)["waveform"].numpy(), len(x) / rate
        if graph:
            try:
                out = self.module.prepare_bytes(data, graph)
                return out["waveform"].numpy(), int(out["samples"]) / int(out["sample_rate"])
            except tf.errors.InvalidArgumentError:
                pass  # e.g. 24-bit WAV or FLAC: the Python decoder takes every variant
        x, rate = decode_file(path)
        return self.module.prepare(x, rate)["waveform"].numpy(), len(x) / rate

    def segments(self, path: str | os.PathLike) -> Iterator[tuple[np.ndarray, float]]:
        """A file as mono float32 ``[samples]`` pieces at ``spec.sample_rate`` Hz, each with its duration in
        seconds of source audio; the pieces concatenate to the whole file resampled at once."""
        if not self._streamed(path):
            yield self._whole(path)
            return
        with _READER_LOCK:  # held while the reader exists: tensorflow-io allows one live AudioIOTensor
            yield from self._stream(path)

    def _stream(self, path: str | os.PathLike) -> Iterator[tuple[np.ndarray, float]]:

        if not graph_decoder(format_of(str(path))):
            yield from self._stream_python(path)
            return
        try:
            reader = tfio.audio.AudioIOTensor(str(path))
        except (tf.errors.OpError, ValueError):  # a variant tensorflow-io cannot open (24-bit WAV...)
            yield from self._stream_python(path)
            return
        rate = int(reader.rate.numpy())
        n_samples, n_channels = (int(v) for v in reader.shape.numpy())
        if rate <= 0 or n_channels <= 0:
            raise TaggerError(f"{path}: no audio stream (rate {rate} Hz, {n_channels} channels)")
        if n_samples == 0:
            raise TaggerError(f"{path}: contains no audio samples")
        target = self.spec.sample_rate
        g = math.gcd(rate, target)
        unit_in, unit_out = rate // g, target // g  # unit_in source samples <-> unit_out samples, exactly
        segment = max(1, round(self.segment_seconds * rate / unit_in)) * unit_in
        margin = (
            0 if rate == target else max(1, math.ceil(RESAMPLE_MARGIN_SECONDS * rate / unit_in)) * unit_in
        )
        for start in range(0, n_samples, segment):
            stop = min(start + segment, n_samples)
            lo, hi = max(0, start - margin), min(n_samples, stop + margin)
            x = reader[lo:hi].numpy()  # [hi - lo, channels]
            if x.dtype == np.int16:
                x = x.astype(np.float32) / _INT16_SCALE
            y = self.module.prepare(x.astype(np.float32, copy=False), rate)["waveform"].numpy()
            first = (start - lo) // unit_in * unit_out
            if stop == n_samples:
                y = y[first:]  # the resampler decides the rounding of the total length
            else:
                y = y[first : first + (stop - start) // unit_in * unit_out]
            yield y, (stop - start) / rate

    def _stream_python(self, path: str | os.PathLike) -> Iterator[tuple[np.ndarray, float]]:
        """:meth:`_stream` for files read sequentially by a Python decoder (``audio.stream_file``): the same
        segments, resampled with the same margins, from a rolling buffer."""
        rate, channels, _, blocks = stream_file(path, 1 << 16)
        target = self.spec.sample_rate
        g = math.gcd(rate, target)
        unit_in, unit_out = rate // g, target // g
        segment = max(1, round(self.segment_seconds * rate / unit_in)) * unit_in
        margin = (
            0 if rate == target else max(1, math.ceil(RESAMPLE_MARGIN_SECONDS * rate / unit_in)) * unit_in
        )
        buf, buf_start, start, done = np.zeros((0, channels), np.float32), 0, 0, False
        while True:
            while not done and buf_start + len(buf) < start + segment + margin:
                block = next(blocks, None)
                if block is None:
                    done = True
                else:
                    buf = np.concatenate([buf, block])
            total = buf_start + len(buf)
            if start >= total:
                if start == 0:
                    raise TaggerError(f"{path}: contains no audio samples")
                return
            stop = min(start + segment, total)
            last = done and stop == total
            lo, hi = max(0, start - margin), min(total, stop + margin)
            y = self.module.prepare(buf[lo - buf_start : hi - buf_start], rate)["waveform"].numpy()
            first = (start - lo) // unit_in * unit_out
            y = y[first:] if last else y[first : first + (stop - start) // unit_in * unit_out]
            yield y, (stop - start) / rate
            if last:
                return
            start = stop
            drop = max(0, start - margin - buf_start)
            buf, buf_start = buf[drop:], buf_start + drop

    def window_chunks(self, path: str | os.PathLike) -> Iterator[tuple[np.ndarray, float]]:
        """A file as chunks ``[k <= chunk_windows, context + spec.window]`` of consecutive windows (the last
        window zero-padded; each preceded by its ``context`` samples) with the seconds of source audio each
        chunk completes."""
        opened = self.open(path)
        if isinstance(opened, Decoded):
            yield from _split(opened, self.chunk_windows)
            return
        with _READER_LOCK:
            yield from self._chunks_of(self._stream(path))

    def _chunks_of(self, pieces: Iterator[tuple[np.ndarray, float]]) -> Iterator[tuple[np.ndarray, float]]:
        window, context = self.spec.window, self.context
        carry = np.zeros(0, np.float32)  # samples after the last whole window so far
        before = np.zeros(context, np.float32)  # the `context` samples preceding carry
        ready: list[np.ndarray] = []  # whole windows (with their context) not yet yielded
        seconds, yielded = 0.0, False
        for piece, piece_seconds in pieces:
            seconds += piece_seconds
            buf = np.concatenate([carry, piece]) if carry.size else piece
            k = buf.size // window
            if k:
                ready.extend(tail_padded_windows(buf[: k * window], window, context, before).numpy())
                before = np.concatenate([before, buf[: k * window]])[k * window :]  # the last `context`
            carry = buf[k * window :].copy()
            while len(ready) >= self.chunk_windows:
                yield np.stack(ready[: self.chunk_windows]), seconds
                ready, seconds, yielded = ready[self.chunk_windows :], 0.0, True
        if carry.size or not (ready or yielded):  # the tail (or a file shorter than a window), zero-padded
            ready.append(tail_padded_windows(carry, window, context, before).numpy()[0])
        if ready:
            yield np.stack(ready), seconds


def _split(decoded: Decoded, chunk: int) -> Iterator[tuple[np.ndarray, float]]:
    """A whole decoded file as chunks of at most ``chunk`` windows; the last carries the seconds."""
    n = len(decoded.windows)
    for start in range(0, n, chunk):
        yield decoded.windows[start : start + chunk], (decoded.seconds if start + chunk >= n else 0.0)


@dataclass
class Accumulator:
    """Per-file partial outputs while its window chunks go through the model; ``pieces_left``: chunks not
    predicted yet (None while unknown)."""

    taggram: list[np.ndarray] = field(default_factory=list)
    embedding: list[np.ndarray] = field(default_factory=list)
    clip_sum: np.ndarray | None = None
    clip_weight: float = 0.0
    seconds: float = 0.0
    pieces_left: int | None = None

    def add(self, out: dict[str, np.ndarray], n_windows: int, group: int, seconds: float) -> None:
        """Add one model call's outputs for ``n_windows`` windows of this file (``group``: windows per
        model call of a superpool model, 1 for split models)."""
        self.taggram.append(out["taggram"])
        self.embedding.append(out["embedding"])
        weight = -(-n_windows // group)  # model calls (groups) this chunk's clip averages over
        contribution = out["clip"].astype(np.float64) * weight
        self.clip_sum = contribution if self.clip_sum is None else self.clip_sum + contribution
        self.clip_weight += weight
        self.seconds += seconds
        if self.pieces_left is not None:
            self.pieces_left -= 1


def _readahead(chunks: Iterator, pool: ThreadPoolExecutor) -> Iterator:
    """``chunks`` with its next item always being produced in ``pool`` while the caller uses the current one."""
    done = object()
    future = pool.submit(next, chunks, done)
    try:
        while (item := future.result()) is not done:
            future = pool.submit(next, chunks, done)
            yield item
    finally:
        try:
            future.result()  # a generator cannot be closed while another thread runs it
        except BaseException:  # noqa: S110 - already raised to the caller, or the caller stopped early
            pass
        chunks.close()  # releases the streamed file's reader lock


def iter_tagged(
    tagger, paths: Sequence[str | os.PathLike], *, workers: int, on_done: Callable[[int], None] | None = None
) -> Iterator[tuple[int, object]]:
    """Tag ``paths`` with ``tagger`` (a :class:`~hvd_magtag.tag.tagger.Tagger`): yields ``(index, TagResult |
    FileFailure)`` as files finish (not in input order). ``workers`` threads decode ahead of the model;
    ``on_done(index)`` is called for each finished file (progress)."""
    reader, group = tagger.reader, tagger.group
    workers = max(1, int(workers))
    accs: dict[int, Accumulator] = {}
    pending: list[tuple[int, np.ndarray, float]] = []  # (file index, windows, seconds) awaiting the model
    inflight: deque[tuple[int, Future]] = deque()  # files being decoded, in input order
    todo = iter(enumerate(paths))

    def finished(index: int, result) -> tuple[int, object]:
        accs.pop(index, None)
        if on_done:
            on_done(index)
        return index, result

    def flush() -> Iterator[tuple[int, object]]:
        pieces = pending[:]
        pending.clear()
        if not pieces:
            return
        for (index, windows, seconds), out in zip(pieces, tagger.predict_chunks([w for _, w, _ in pieces])):
            accs[index].add(out, len(windows), group, seconds)
        for index in dict.fromkeys(i for i, _, _ in pieces):
            if accs[index].pieces_left == 0:
                yield finished(index, tagger.finish(str(paths[index]), accs[index]))

    def stream(index: int, path: str) -> str | None:
        """Tag a streamed file chunk by chunk; the one-line reason if reading it failed, else None."""
        acc = accs[index]
        with closing(_readahead(reader.window_chunks(path), stream_pool)) as chunks:
            while True:
                try:
                    item = next(chunks, None)
                except FILE_ERRORS as e:  # decoding errors only: the model's own errors propagate
                    return one_line(e)
                if item is None:
                    return None
                acc.add(tagger.predict_windows(item[0]), len(item[0]), group, item[1])

    with (
        ThreadPoolExecutor(workers, thread_name_prefix="tag-decode") as pool,
        ThreadPoolExecutor(1, thread_name_prefix="tag-stream") as stream_pool,
    ):
        try:
            while True:
                while len(inflight) < LOOKAHEAD_PER_WORKER * workers and (item := next(todo, None)):
                    inflight.append((item[0], pool.submit(reader.open, item[1])))
                if not inflight:
                    break
                index, future = inflight.popleft()
                accs[index] = Accumulator()
                try:
                    opened = future.result()
                except FILE_ERRORS as e:
                    yield finished(index, FileFailure(str(paths[index]), one_line(e)))
                    continue
                if isinstance(opened, Streamed):  # one at a time, read ahead of the model
                    yield from flush()
                    error = stream(index, opened.path)
                    path = str(paths[index])
                    yield finished(
                        index, FileFailure(path, error) if error else tagger.finish(path, accs[index])
                    )
                    continue
                pieces = list(_split(opened, reader.chunk_windows))
                accs[index].pieces_left = len(pieces)
                for windows, seconds in pieces:
                    pending.append((index, windows, seconds))
                    if group > 1 or sum(len(w) for _, w, _ in pending) >= reader.chunk_windows:
                        yield from flush()
                if not inflight or not inflight[0][1].done():
                    yield from flush()  # the model would otherwise wait for the next decode
            yield from flush()
        finally:
            for _, future in inflight:
                future.cancel()
