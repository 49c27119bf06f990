"""Decoding: in the graph (tensorflow-io / TensorFlow ops, by decoder name) and in Python (soundfile, PyAV).

    x = decode(tf.io.read_file(path), "mp3")          # [samples, channels] float32 at the file's own rate
    x = from_bytes(contents, "flac", 44100, 16000)     # [samples'] mono at 16 kHz
    samples, rate = decode_file("song.m4a")            # numpy float32 [samples, channels], Hz (any format)

The decoders per format are listed in :mod:`hvd_magtag.audio.formats`.
"""

from __future__ import annotations

import os

import av
import numpy as np
import soundfile as sf
import tensorflow as tf
import tensorflow_io as tfio

from hvd_magtag.audio.containers import encrypted_mp4
from hvd_magtag.audio.formats import BY_SUFFIX, GRAPH_DECODERS, GRAPH_NAMES, PYTHON_DECODERS
from hvd_magtag.audio.mpeg import mp3_layout
from hvd_magtag.audio.resampling import resample

_INT16_SCALE = 32768.0  # full scale of 16-bit PCM


def _decode_mp3(contents: tf.Tensor) -> tf.Tensor:

    return tfio.audio.decode_mp3(contents)


def _decode_wav(contents: tf.Tensor) -> tf.Tensor:
    return tf.audio.decode_wav(contents).audio  # 16-bit PCM -> float32 in [-1, 1)


def _decode_flac(contents: tf.Tensor) -> tf.Tensor:

    return tf.cast(tfio.audio.decode_flac(contents, dtype=tf.int16), tf.float32) / _INT16_SCALE


def _decode_ogg(contents: tf.Tensor) -> tf.Tensor:

    return tfio.audio.decode_vorbis(contents)


_DECODERS = {"mp3": _decode_mp3, "wav": _decode_wav, "flac": _decode_flac, "ogg": _decode_ogg}
assert tuple(_DECODERS) == GRAPH_DECODERS  # the branch order of the in-graph switch


def decode(contents: tf.Tensor, fmt: str | tf.Tensor) -> tf.Tensor:
    """Decode an encoded audio file in the graph.

    contents: scalar tf.string, the file's bytes (``tf.io.read_file``).
    fmt:      an in-graph decoder, "mp3" | "wav" | "flac" | "ogg" (or an extension of their formats, e.g.
              "oga"), as a Python string (one decoder in the graph) or a scalar tf.string tensor (an in-graph
              switch over all decoders; unknown names raise at run time).
    Returns float32 ``[samples, channels]`` in [-1, 1] at the file's own sample rate (mp3 carries no rate
    in the decoded tensor: take it from the manifest). Only the files ``formats.TABLE``'s ``graph_takes``
    names: wav must be 16-bit PCM, flac 16-bit, ogg Vorbis; other files go through :func:`decode_file`.
    """
    if isinstance(fmt, str):
        name = GRAPH_NAMES.get(fmt.lower())
        if name is None:
            raise ValueError(
                f"no in-graph decoder for {fmt!r}; use one of {', '.join(GRAPH_DECODERS)} "
                "(other formats decode in Python: hvd_magtag.audio.decode_file)"
            )
        return _DECODERS[name](contents)
    fmt = tf.strings.lower(fmt)
    names = tf.constant(list(GRAPH_NAMES))
    canonical = tf.constant([GRAPH_DECODERS.index(v) for v in GRAPH_NAMES.values()], tf.int32)
    hit = tf.where(tf.equal(names, fmt))
    tf.debugging.assert_positive(
        tf.size(hit), message=f"no in-graph decoder for this format (use {'|'.join(GRAPH_DECODERS)})"
    )
    branch = tf.gather(canonical, tf.reshape(hit, [-1])[0])
    out = tf.switch_case(branch, [lambda d=_DECODERS[n]: d(contents) for n in GRAPH_DECODERS])
    return tf.ensure_shape(out, [None, None])


def to_mono(x: tf.Tensor) -> tf.Tensor:
    """Downmix ``[samples, channels]`` to ``[samples]`` by averaging channels (a ``[samples]`` input is returned)."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank == 1:
        return x
    return tf.reduce_mean(x, axis=-1)


def from_bytes(
    contents: tf.Tensor, fmt: str | tf.Tensor, rate_in: int | tf.Tensor, rate_out: int
) -> tf.Tensor:
    """Decode, downmix and resample a file's bytes: float32 ``[samples]`` at ``rate_out`` Hz."""
    return resample(to_mono(decode(contents, fmt)), rate_in, rate_out)


def load(path: tf.Tensor, fmt: str | tf.Tensor, rate_in: int | tf.Tensor, rate_out: int) -> tf.Tensor:
    """Read, decode, downmix and resample one file: scalar path -> float32 ``[samples]`` at ``rate_out`` Hz.

    fmt: the file's decoder (``FileInfo.decoder``): an in-graph one (mp3 | wav | flac | ogg) or a Python one
    (soundfile | av, through :func:`decode_python`), as a Python string or a scalar tf.string tensor."""
    if isinstance(fmt, str):
        if fmt in PYTHON_DECODERS:
            return resample(to_mono(decode_python(path, fmt)), rate_in, rate_out)
        return from_bytes(tf.io.read_file(path), fmt, rate_in, rate_out)
    in_python = tf.reduce_any(tf.equal(tf.constant(list(PYTHON_DECODERS)), fmt))
    x = tf.cond(
        in_python, lambda: decode_python(path, fmt), lambda: decode(tf.io.read_file(path), fmt)
    )  # [samples, channels]
    return resample(to_mono(x), rate_in, rate_out)


# -- Python-side decoders (formats and files the graph decoders do not take) ------------------------------


class DecodeError(ValueError):
    """A file that a Python-side decoder cannot use; the message is one line naming the file and why."""


def python_decoder(path: str, decoder: str | None = None) -> str:
    """The Python decoder for ``path``: ``decoder`` when given, else its format's (``formats.TABLE``)."""

    if decoder in ("soundfile", "av"):
        return decoder

    entry = BY_SUFFIX.get(os.path.splitext(str(path))[1].lower())
    if entry is None:
        raise DecodeError(f"{path}: not an audio file the toolkit reads (suffix)")
    return entry.python


def decode_file(path, decoder: str | None = None):
    """Decode a whole audio file in Python: ``(samples float32 [samples, channels] in [-1, 1], rate Hz)``.

    Any format of :mod:`hvd_magtag.audio.formats` (``decoder``: "soundfile" | "av", default the format's).
    Integer PCM is scaled by its full scale (``2 ** (bits - 1)``; 8-bit WAV is unsigned, offset 128), float
    samples are kept as they are. Raises :class:`DecodeError` (one line) for a file it cannot use:
    undecodable bytes, no audio stream, encrypted (DRM) audio, a sample rate that changes mid-stream.
    """

    rate, _, _, blocks = stream_file(path, 1 << 18, decoder)
    parts = list(blocks)
    if not parts:
        raise DecodeError(f"{path}: contains no audio samples")
    return np.concatenate(parts), rate


def decode_mp3_fast(path, data: bytes) -> tuple[np.ndarray, int] | None:
    """``(samples float32 [samples, channels], rate Hz)`` of an MP3 file, decoded by libsndfile's mpg123, when
    they are the samples the in-graph decoder (tensorflow-io's minimp3) gives, else None (decode in the graph).

    Why: tensorflow-io's minimp3 is built without SIMD; mpg123 decodes 30 s of 16 kHz mono in 10 ms instead of
    35 ms and of 44.1 kHz stereo in 49 ms instead of 113 ms on this machine, with the same sample count and
    samples within 6e-7 of minimp3's on every LAME/FFmpeg fixture (tests/test_formats.py). mpg123 trusts what
    libsndfile estimates as the length, which is short for a VBR stream without a Xing header, so the file's
    own frames decide (:attr:`~hvd_magtag.audio.mpeg.Mp3Layout.decoded_samples`): rate, channels and sample
    count must all agree, or None.
    """
    layout = mp3_layout(data)
    want = layout.decoded_samples
    if want is None:
        return None
    try:
        with sf.SoundFile(str(path)) as handle:
            if (handle.frames, handle.samplerate, handle.channels) != (want, layout.rate, layout.channels):
                return None
            x = handle.read(dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError):
        return None
    return (x, layout.rate) if len(x) == want else None


def stream_file(path, block_frames: int, decoder: str | None = None):
    """Open an audio file for reading in blocks: ``(rate Hz, channels, frames or -1 if unknown, blocks)``,
    ``blocks`` an iterator of float32 ``[<= block_frames, channels]`` (the last may be shorter), scaled as
    :func:`decode_file`. Errors: :class:`DecodeError` with a one-line reason (also while iterating)."""
    path = str(path)
    name = python_decoder(path, decoder)
    return _stream_soundfile(path, block_frames) if name == "soundfile" else _stream_av(path, block_frames)


def _stream_soundfile(path: str, block_frames: int):

    try:
        handle = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError) as e:
        raise DecodeError(f"{path}: libsndfile cannot read it ({_sndfile_reason(e)})") from None
    rate, channels, frames = handle.samplerate, handle.channels, handle.frames

    def blocks():
        with handle:
            while True:
                try:
                    block = handle.read(block_frames, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as e:
                    raise DecodeError(f"{path}: decoding fails ({_sndfile_reason(e)})") from None
                if not len(block):
                    return
                yield block

    return rate, channels, frames if frames > 0 else -1, blocks()


def _sndfile_reason(e: Exception) -> str:
    text = str(e).replace("\n", " ")
    return text.split(": ", 1)[-1] if text.startswith("Error opening") else text


def _stream_av(path: str, block_frames: int):

    if path.lower().endswith((".m4a", ".mp4", ".m4b")):
        with open(path, "rb") as handle:
            if encrypted_mp4(handle.read(1 << 22)):  # the sample description, when moov comes first
                raise DecodeError(f"{path}: encrypted (DRM-protected) audio: it cannot be decoded")
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError, ValueError) as e:
        raise DecodeError(f"{path}: FFmpeg cannot read it ({_av_reason(e)})") from None
    streams = container.streams.audio
    if not streams:
        container.close()
        raise DecodeError(f"{path}: no audio stream")
    stream = streams[0]
    rate, channels = int(stream.codec_context.sample_rate or 0), int(stream.codec_context.channels or 0)
    if rate <= 0 or channels <= 0:
        container.close()
        raise DecodeError(f"{path}: no decodable audio stream ({stream.codec_context.name})")
    frames = -1
    if stream.duration is not None and stream.time_base is not None:
        frames = int(round(float(stream.duration * stream.time_base) * rate))

    def blocks():
        pending, held = [], 0
        with container:
            try:
                for frame in container.decode(stream):
                    if frame.sample_rate != rate:
                        raise DecodeError(
                            f"{path}: the sample rate changes mid-stream ({rate} Hz -> {frame.sample_rate} Hz)"
                        )
                    x = _av_samples(frame, np)
                    if x.shape[1] != channels:
                        raise DecodeError(f"{path}: the channel count changes mid-stream")
                    pending.append(x)
                    held += len(x)
                    while held >= block_frames:
                        joined = np.concatenate(pending)
                        yield joined[:block_frames]
                        pending, held = [joined[block_frames:]], held - block_frames
            except av.FFmpegError as e:
                raise DecodeError(f"{path}: decoding fails ({_av_reason(e)})") from None
            if held:
                yield np.concatenate(pending)

    return rate, channels, frames, blocks()


def _av_samples(frame, np):
    """An audio frame as float32 ``[samples, channels]`` scaled to [-1, 1]."""
    x = frame.to_ndarray()
    channels = len(frame.layout.channels)
    x = x if frame.format.is_planar else x.reshape(-1, channels).T  # -> [channels, samples]
    if x.dtype == np.uint8:
        x = (x.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float32) / float(-np.iinfo(x.dtype).min)
    return np.ascontiguousarray(x.T, dtype=np.float32)


def _av_reason(e: Exception) -> str:
    return str(getattr(e, "strerror", None) or e).replace("\n", " ")


def decode_python(path: tf.Tensor, decoder: str | tf.Tensor = "") -> tf.Tensor:
    """In-graph wrapper of :func:`decode_file` (``tf.numpy_function``): scalar path -> float32
    ``[samples, channels]`` at the file's own rate. Runs Python under the GIL (the decoders release it
    while they decode); see the README for its measured cost."""

    def text(v) -> str:
        v = v.item() if hasattr(v, "item") else v  # numpy_function passes 0-d arrays of bytes
        return v.decode() if isinstance(v, bytes) else str(v)

    def run(p, d):
        return decode_file(text(p), text(d) or None)[0]

    out = tf.numpy_function(run, [path, decoder], tf.float32, stateful=False, name="decode_python")
    return tf.ensure_shape(out, [None, None])
