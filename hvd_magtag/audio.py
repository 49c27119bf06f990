"""In-graph audio ops: decode, downmix, resample and cut into windows.

Every function here is plain TensorFlow (tensorflow-io for compressed formats) and runs inside ``tf.data``,
a ``tf.function`` or an exported SavedModel. Shapes use ``samples`` for time in samples at the stated rate;
waveforms are float32 in [-1, 1].

    x = decode(tf.io.read_file(path), "mp3")          # [samples, channels] at the file's own rate
    x = resample(to_mono(x), rate_in=44100, rate_out=16000)   # [samples'] at 16 kHz
    w = random_window(x, 59049, seed=[0, 7])           # [59049]
    ws = even_windows(x, 59049, 10)                    # [10, 59049]
    ws = all_windows(x, 59049)                         # [k, 59049], k = max(1, samples // 59049)

Clips shorter than a window are zero-padded at the end. The ``align`` argument of the window functions
snaps window starts down to a multiple of ``align`` samples: filterbank models use their hop length, so a
window of a full-clip filterbank (a TFRecord format) is a slice of whole frames.
"""

from __future__ import annotations

import os

import tensorflow as tf

#: Formats :func:`decode` understands, keyed by file extension (lower case, without the dot).
FORMATS: dict[str, str] = {"mp3": "mp3", "wav": "wav", "flac": "flac", "ogg": "ogg", "oga": "ogg"}

_INT16_SCALE = 32768.0  # full scale of 16-bit PCM


def format_of(path: str) -> str:
    """The decoder name (mp3 | wav | flac | ogg) for a file path, from its extension."""
    ext = os.path.splitext(str(path))[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise ValueError(
            f"{path}: unsupported audio extension {ext!r}; use one of {', '.join(sorted(FORMATS))}"
        )
    return FORMATS[ext]


def _decode_mp3(contents: tf.Tensor) -> tf.Tensor:
    import tensorflow_io as tfio

    return tfio.audio.decode_mp3(contents)


def _decode_wav(contents: tf.Tensor) -> tf.Tensor:
    return tf.audio.decode_wav(contents).audio  # 16-bit PCM -> float32 in [-1, 1)


def _decode_flac(contents: tf.Tensor) -> tf.Tensor:
    import tensorflow_io as tfio

    return tf.cast(tfio.audio.decode_flac(contents, dtype=tf.int16), tf.float32) / _INT16_SCALE


def _decode_ogg(contents: tf.Tensor) -> tf.Tensor:
    import tensorflow_io as tfio

    return tfio.audio.decode_vorbis(contents)


_DECODERS = {"mp3": _decode_mp3, "wav": _decode_wav, "flac": _decode_flac, "ogg": _decode_ogg}
_DECODER_NAMES = tuple(_DECODERS)  # branch order of the in-graph switch


def decode(contents: tf.Tensor, fmt: str | tf.Tensor) -> tf.Tensor:
    """Decode an encoded audio file.

    contents: scalar tf.string, the file's bytes (``tf.io.read_file``).
    fmt:      "mp3" | "wav" | "flac" | "ogg" as a Python string (one decoder in the graph) or a scalar
              tf.string tensor (an in-graph switch over all decoders; unknown names raise at run time).
    Returns float32 ``[samples, channels]`` in [-1, 1] at the file's own sample rate (mp3 carries no rate
    in the decoded tensor: take it from the manifest). wav must be 16-bit PCM; flac 16-bit.
    """
    if isinstance(fmt, str):
        name = FORMATS.get(fmt.lower())
        if name is None:
            raise ValueError(f"unsupported audio format {fmt!r}; use one of {', '.join(_DECODER_NAMES)}")
        return _DECODERS[name](contents)
    fmt = tf.strings.lower(fmt)
    names = tf.constant(list(FORMATS))
    canonical = tf.constant([_DECODER_NAMES.index(v) for v in FORMATS.values()], tf.int32)
    hit = tf.where(tf.equal(names, fmt))
    tf.debugging.assert_positive(tf.size(hit), message="unsupported audio format (use mp3|wav|flac|ogg)")
    branch = tf.gather(canonical, tf.reshape(hit, [-1])[0])
    out = tf.switch_case(branch, [lambda d=_DECODERS[n]: d(contents) for n in _DECODER_NAMES])
    return tf.ensure_shape(out, [None, None])


def to_mono(x: tf.Tensor) -> tf.Tensor:
    """Downmix ``[samples, channels]`` to ``[samples]`` by averaging channels (a ``[samples]`` input is returned)."""
    if x.shape.rank == 1:
        return x
    return tf.reduce_mean(x, axis=-1)


def resample(x: tf.Tensor, rate_in: int | tf.Tensor, rate_out: int) -> tf.Tensor:
    """Resample ``[samples]`` or ``[samples, channels]`` from ``rate_in`` Hz to ``rate_out`` Hz.

    ``rate_in`` may be a Python int (no op in the graph when equal) or a scalar int tensor (a ``tf.cond``
    skips the resampler when equal). Output length is about ``samples * rate_out / rate_in``
    (tensorflow-io's resampler, which trims its filter delay).
    """
    import tensorflow_io as tfio

    if isinstance(rate_in, int):
        if rate_in == rate_out:
            return x
        return tfio.audio.resample(x, rate_in, rate_out)
    rate_in = tf.cast(rate_in, tf.int64)
    shape = [None] * x.shape.rank
    return tf.cond(
        tf.equal(rate_in, rate_out),
        lambda: x,
        lambda: tf.ensure_shape(tfio.audio.resample(x, rate_in, tf.constant(rate_out, tf.int64)), shape),
    )


def pad_to(x: tf.Tensor, length: int) -> tf.Tensor:
    """Zero-pad ``[samples]`` at the end to at least ``length`` samples."""
    missing = tf.maximum(length - tf.shape(x)[0], 0)
    return tf.pad(x, [[0, missing]])


def _snap(start: tf.Tensor, align: int) -> tf.Tensor:
    return start if align <= 1 else (start // align) * align


def random_window_start(n_samples: tf.Tensor, window: int, seed: tf.Tensor, align: int = 1) -> tf.Tensor:
    """Start sample (int32 scalar) of a uniformly random window in a clip of ``n_samples`` samples
    (0 when the clip is shorter than the window), snapped down to a multiple of ``align``."""
    slack = tf.maximum(tf.cast(n_samples, tf.int32) - window, 0)
    start = tf.random.stateless_uniform([], seed=seed, minval=0, maxval=slack + 1, dtype=tf.int32)
    return _snap(start, align)


def random_window(x: tf.Tensor, window: int, seed: tf.Tensor, align: int = 1) -> tf.Tensor:
    """One window of ``window`` samples at a uniformly random start: ``[samples] -> [window]``.

    seed: shape-[2] int tensor for ``tf.random.stateless_uniform`` (the same seed gives the same crop,
    whatever the pipeline's parallelism). align: the start is snapped down to a multiple of ``align``.
    """
    start = random_window_start(tf.shape(x)[0], window, seed, align)
    x = pad_to(x, window)
    return tf.ensure_shape(x[start : start + window], [window])


def even_window_starts(n_samples: tf.Tensor, window: int, n: int, align: int = 1) -> tf.Tensor:
    """Start samples ``[n]`` int32 of ``n`` windows spread evenly from the clip start to its end."""
    slack = tf.cast(tf.maximum(tf.cast(n_samples, tf.int32) - window, 0), tf.float64)
    starts = tf.cast(tf.round(tf.linspace(tf.constant(0.0, tf.float64), slack, n)), tf.int32)
    return _snap(starts, align)


def even_windows(x: tf.Tensor, window: int, n: int, align: int = 1) -> tf.Tensor:
    """``n`` windows evenly spaced over the clip (first at 0, last ending at the clip end):
    ``[samples] -> [n, window]``. Windows overlap when the clip is shorter than ``n * window``."""
    x = pad_to(x, window)
    starts = even_window_starts(tf.shape(x)[0], window, n, align)
    idx = starts[:, None] + tf.range(window)[None, :]
    return tf.ensure_shape(tf.gather(x, idx), [n, window])


def all_window_starts(n_samples: tf.Tensor, window: int, align: int = 1) -> tf.Tensor:
    """Start samples ``[k]`` int32 of the consecutive windows, ``k = max(1, n_samples // window)``."""
    k = tf.maximum(tf.cast(n_samples, tf.int32) // window, 1)
    return _snap(tf.range(k) * window, align)


def all_windows(x: tf.Tensor, window: int, align: int = 1) -> tf.Tensor:
    """All consecutive non-overlapping windows: ``[samples] -> [k, window]`` with
    ``k = max(1, samples // window)``; the tail shorter than a window is dropped, a clip shorter than one
    window gives one zero-padded window."""
    x = pad_to(x, window)
    starts = all_window_starts(tf.shape(x)[0], window, align)
    idx = starts[:, None] + tf.range(window)[None, :]
    return tf.ensure_shape(tf.gather(x, idx), [None, window])


def load(path: tf.Tensor, fmt: str | tf.Tensor, rate_in: int | tf.Tensor, rate_out: int) -> tf.Tensor:
    """Read, decode, downmix and resample one file: scalar path -> float32 ``[samples]`` at ``rate_out`` Hz."""
    x = decode(tf.io.read_file(path), fmt)
    return resample(to_mono(x), rate_in, rate_out)
