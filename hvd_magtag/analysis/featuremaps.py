"""Feature maps you can listen to: extract every conv layer's output for a clip, sonify, index.

Vocabulary (used across :mod:`hvd_magtag.analysis`):

- The *encoder* is the functional (sub-)model holding the conv layers: the model itself for ``split``
  models, its ``window_encoder`` sub-model for ``superpool`` models (one window in, per-window maps out).
- A *conv layer* is a ``Conv1D`` / ``Conv2D`` of the encoder, in input-to-output order. Its *map* for a
  clip is its output (``tap="conv"``, the default: before the batch norm / activation that follow; or
  ``tap="activation"``: after them, what the next layer sees before pooling) with the clip's consecutive windows
  concatenated along time: ``[time, channels]`` for 1-D layers, ``[time, freq, channels]`` for 2-D layers
  (freq = the mel axis after the layer's pooling so far).
- A layer's *stride* is the number of audio samples per map step: input steps per map step (``window /
  steps`` for raw input, ``frames / steps`` times ``hop_length`` for filterbank input; rounded to an
  integer when within 5 % of one) and its *rate* is ``spec.sample_rate / stride`` (Hz): a
  layer at rate r covers audio frequencies 0..r/2.

Sonification (:func:`sonify_1d`, :func:`sonify_2d`) renders each channel at the audio rate
``spec.sample_rate`` as a 16-bit WAV: 1-D maps are upsampled with a polyphase resampler
(``scipy.signal.resample_poly``, which low-pass filters the images away, so the sound holds exactly the
map's content 0..r/2), DC removed, normalised to :data:`TARGET_RMS_DBFS` RMS with a soft-knee peak
limiter. 2-D (spectrogram) maps are not waveforms: each channel's map is read as a mel-band envelope and
resynthesised by a noise vocoder (random-phase STFT shaped by the mel filterbank), so one hears *where in
frequency and time* the channel is active.

Typical use::

    python -m hvd_magtag.analysis featuremaps runs/demo --clip song.mp3 --layers conv1,conv3
"""

from __future__ import annotations

import csv
import html
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from hvd_magtag.models.names import WINDOW_ENCODER

log = logging.getLogger(__name__)

#: Loudness of a sonified channel: RMS in dB relative to full scale.
TARGET_RMS_DBFS = -20.0
#: Peak ceiling of a sonified channel (dBFS) and where the soft-knee limiter starts (dBFS).
PEAK_CEILING_DBFS = -0.3
LIMITER_KNEE_DBFS = -6.0
#: A channel whose map RMS is below this (relative to the layer's loudest channel) is called silent.
SILENT_RELATIVE_RMS = 1e-6
#: Largest up-sampling factor of one resampling stage (bigger ratios are cascaded).
MAX_STAGE_FACTOR = 27
#: Name of the model input as a level (the audio, or the filterbank frames of spectrogram models).
INPUT_LEVEL = "input"
#: Where a conv layer's map is taken: its own output, or after the batch norm / activation following it.
TAPS = ("conv", "activation")
#: Strides within this relative distance of an integer are snapped to it.
_STRIDE_SNAP = 0.05


class AnalysisError(ValueError):
    """The model, run directory or request cannot be analysed; the message says what to change."""


@dataclass(frozen=True)
class ConvLayerInfo:
    """One conv layer of an encoder, with its place on the audio time axis.

    name:        Keras layer name (``conv3``, ``block2_conv``...).
    kind:        "1d" (Conv1D, map [time, channels]) or "2d" (Conv2D, map [time, freq, channels]).
    channels:    output channels (filters).
    steps:       map steps per model window.
    stride:      audio samples per map step (float only when not near an integer).
    rate_hz:     map rate in Hz = sample_rate / stride.
    in_rate_hz:  rate of the level below (Hz).
    freq_bins:   mel bins of a 2-d map (0 for 1-d).
    below:       the *level below*: the nearest conv layer upstream in the graph (breadth-first through
                 batch norm, activations, pooling, additions; the latest in layer order on ties, i.e. the
                 main path rather than a residual shortcut), or :data:`INPUT_LEVEL`.
    tap:         the layer whose output is taken as this conv layer's map (itself, or with tap="activation"
                 the last of the batch-norm / activation layers that directly follow it).
    """

    name: str
    kind: str
    channels: int
    steps: int
    stride: float
    rate_hz: float
    in_rate_hz: float
    freq_bins: int = 0
    below: str = "input"
    tap: str = ""


# -- model introspection ---------------------------------------------------------------------------------
def _conv_types():
    import keras

    return (keras.layers.Conv1D, keras.layers.Conv2D)


def _is_model(layer) -> bool:
    import keras

    return isinstance(layer, keras.Model)


def encoder_of(model):
    """The functional (sub-)model whose layers include the conv layers (see module docstring)."""
    convs = _conv_types()
    if any(isinstance(layer, convs) for layer in model.layers):
        return model
    # sub-models called directly, or wrapped (TimeDistributed(encoder) keeps it in ``.layer``)
    subs = [
        inner
        for layer in model.layers
        for inner in (layer, getattr(layer, "layer", None))
        if _is_model(inner)
    ]
    named = [s for s in subs if s.name == WINDOW_ENCODER]
    for sub in named + subs:
        try:
            return encoder_of(sub)
        except AnalysisError:
            continue
    raise AnalysisError(
        f"model {model.name!r} has no Conv1D/Conv2D layers (nor a {WINDOW_ENCODER!r} sub-model holding them)"
    )


def conv_layers(encoder) -> list:
    """Conv1D / Conv2D layers of ``encoder`` in input-to-output (graph) order."""
    convs = _conv_types()
    return [layer for layer in encoder.layers if isinstance(layer, convs)]


def _snap_stride(stride: float) -> float:
    nearest = round(stride)
    if nearest >= 1 and abs(stride - nearest) <= _STRIDE_SNAP * nearest:
        return float(nearest)
    return stride


def _input_tensors(layer) -> list:
    nodes = getattr(layer, "_inbound_nodes", [])
    return list(nodes[0].input_tensors) if nodes else []


def level_below(conv, conv_order: dict[str, int]) -> str:
    """The nearest conv layer upstream of ``conv`` (see :class:`ConvLayerInfo`), or :data:`INPUT_LEVEL`."""
    frontier, seen = _input_tensors(conv), set()
    while frontier:
        found, upstream = [], []
        for tensor in frontier:
            history = getattr(tensor, "_keras_history", None)
            if history is None or id(history.operation) in seen:
                continue
            op = history.operation
            seen.add(id(op))
            if op.name in conv_order:
                found.append(op.name)
            else:
                upstream += _input_tensors(op)
        if found:
            return max(found, key=conv_order.__getitem__)
        frontier = upstream
    return INPUT_LEVEL


def tap_layer(conv, encoder, tap: str = "conv"):
    """The layer whose output is ``conv``'s map: ``conv`` itself, or (tap="activation") the end of the chain of
    batch norm / activation layers that alone consume its output (conv -> bn -> relu gives relu)."""
    if tap not in TAPS:
        raise AnalysisError(f"--tap must be one of {', '.join(TAPS)}, got {tap!r}")
    if tap == "conv":
        return conv
    import keras

    follow = (
        keras.layers.BatchNormalization,
        keras.layers.ReLU,
        keras.layers.Activation,
        keras.layers.LeakyReLU,
        keras.layers.ELU,
        keras.layers.PReLU,
    )
    consumers: dict[int, list] = {}
    for layer in encoder.layers:
        for tensor in _input_tensors(layer):
            consumers.setdefault(id(tensor), []).append(layer)
    layer = conv
    while True:
        after = consumers.get(id(layer.output), [])
        if len(after) != 1 or not isinstance(after[0], follow):
            return layer
        layer = after[0]


def describe_layers(encoder, spec, tap: str = "conv") -> list[ConvLayerInfo]:
    """Rates, strides, shapes and levels below of ``encoder``'s conv layers for input ``spec`` (a ModelSpec)."""
    infos: list[ConvLayerInfo] = []
    # the model input's time axis: audio samples (raw) or filterbank frames, hop_length samples apart (fbank)
    input_steps = spec.window_shape()[0]
    input_stride = 1 if spec.input == "raw" else spec.fbank.hop_length
    rates = {INPUT_LEVEL: spec.sample_rate / input_stride}
    convs = conv_layers(encoder)
    order = {layer.name: i for i, layer in enumerate(convs)}
    for layer in convs:
        shape = tuple(layer.output.shape)
        if shape[1] is None:
            raise AnalysisError(
                f"layer {layer.name!r} has no fixed time length; build the model for spec.window"
            )
        steps = int(shape[1])
        kind = "1d" if len(shape) == 3 else "2d"
        stride = input_stride * _snap_stride(input_steps / steps)
        rates[layer.name] = spec.sample_rate / stride
        below = level_below(layer, order)
        infos.append(
            ConvLayerInfo(
                name=layer.name,
                kind=kind,
                channels=int(shape[-1]),
                steps=steps,
                stride=stride,
                rate_hz=rates[layer.name],
                in_rate_hz=rates[below],
                freq_bins=int(shape[2]) if kind == "2d" else 0,
                below=below,
                tap=tap_layer(layer, encoder, tap).name,
            )
        )
    return infos


def select_layers(infos: list[ConvLayerInfo], names: list[str] | None) -> list[ConvLayerInfo]:
    """``infos`` restricted to ``names`` (all when None/empty); unknown names raise one clear error."""
    if not names:
        return infos
    known = {i.name: i for i in infos}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise AnalysisError(
            f"--layers: no conv layer named {', '.join(unknown)}; this model has: {', '.join(known)}"
        )
    return [known[n] for n in names]


# -- audio ---------------------------------------------------------------------------------------------------
def _file_rate(path: Path) -> int:
    """Sample rate (Hz) stored in an audio file's header."""
    if path.suffix.lower() == ".wav":
        import wave

        with wave.open(str(path), "rb") as w:
            return w.getframerate()
    import tensorflow_io as tfio

    return int(tfio.audio.AudioIOTensor(str(path)).rate.numpy())


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode ``path`` (mp3 / wav / flac / ogg), downmix and resample: float32 [samples] at ``sample_rate`` Hz."""
    from hvd_magtag import audio

    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"{path}: audio file not found")
    x = audio.load(str(path), audio.format_of(str(path)), _file_rate(path), sample_rate)
    return np.asarray(x, np.float32).reshape(-1)


def resolve_clip(run, clip: str) -> Path:
    """``clip`` as an audio path: an existing file, or a clip id of the run's dataset (config.data)."""
    path = Path(clip).expanduser()
    if path.is_file():
        return path.resolve()
    if not run.config_path.is_file():
        raise AnalysisError(
            f"--clip {clip!r}: no such file, and {run.config_path} is missing so clip ids cannot be looked up"
        )
    from hvd_magtag.data import load_catalog

    catalog = load_catalog(run.config.data)
    for c in catalog.clips:
        if c.clip_id == clip:
            return Path(c.path)
    examples = ", ".join(c.clip_id for c in catalog.clips[:3])
    raise AnalysisError(
        f"--clip {clip!r}: not a file and not a clip id of dataset {catalog.name!r} ({catalog.root}); "
        f"give an audio path or a clip id such as {examples}"
    )


def window_batch(x: np.ndarray, window: int) -> np.ndarray:
    """Consecutive windows of ``x`` [samples]: [n_windows, window], the last zero-padded (n >= 1).

    Unlike ``hvd_magtag.audio.all_windows`` (which drops the tail, as evaluation does) the tail is kept,
    so the maps cover the whole clip.
    """
    n = max(1, math.ceil(len(x) / window))
    padded = np.zeros(n * window, np.float32)
    padded[: len(x)] = x
    return padded.reshape(n, window)


# -- extraction ----------------------------------------------------------------------------------------------
def map_extractor(model, layer_names: list[str] | None = None, tap: str = "conv"):
    """(keras.Model encoder input -> list of conv maps, [ConvLayerInfo]) for ``model`` (spec in ``model.spec``).

    ``tap``: "conv" (each conv layer's own output, linear in its input) or "activation" (after the batch
    norm / activation that follow it: what the next layer sees, before pooling).
    """
    import keras

    encoder = encoder_of(model)
    infos = select_layers(describe_layers(encoder, model.spec, tap), layer_names)
    outputs = [encoder.get_layer(i.tap).output for i in infos]
    return keras.Model(encoder.inputs, outputs, name=f"{encoder.name}_maps"), infos


def feature_maps(
    model,
    waveform: np.ndarray,
    layer_names: list[str] | None = None,
    batch_windows: int = 8,
    extractor: tuple | None = None,
) -> tuple[dict[str, np.ndarray], list[ConvLayerInfo]]:
    """Conv maps of ``waveform`` (float32 [samples] at ``model.spec.sample_rate``) through ``model``.

    The clip is cut into consecutive model windows (last zero-padded), each window goes through the encoder,
    and the maps are concatenated along time and trimmed to the clip: ``ceil(samples / stride)`` steps.
    ``extractor``: a :func:`map_extractor` result to reuse across clips (then ``layer_names`` is ignored).
    Returns ({layer: [time, channels] or [time, freq, channels]}, infos in the same order).
    """
    from hvd_magtag.features import features_for

    spec = model.spec
    extractor, infos = extractor or map_extractor(model, layer_names)
    windows = window_batch(np.asarray(waveform, np.float32).reshape(-1), spec.window)
    featurize = features_for(spec)
    in_shape = tuple(extractor.inputs[0].shape[1:])
    parts: list[list[np.ndarray]] = [[] for _ in infos]
    for start in range(0, len(windows), batch_windows):
        x = np.asarray(featurize(windows[start : start + batch_windows]), np.float32)
        x = x.reshape((-1, *in_shape))
        outs = extractor([x], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for k, out in enumerate(outs):
            parts[k].append(np.asarray(out))
    maps: dict[str, np.ndarray] = {}
    for info, chunks in zip(infos, parts):
        stacked = np.concatenate(chunks, axis=0)  # [n_windows, steps, (freq,) channels]
        joined = stacked.reshape((-1, *stacked.shape[2:]))
        keep = max(1, math.ceil(len(waveform) / info.stride))
        maps[info.name] = joined[:keep].astype(np.float32)
    return maps, infos


# -- sonification --------------------------------------------------------------------------------------------
def _db_to_amp(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def normalise_loudness(
    y: np.ndarray,
    target_rms_dbfs: float = TARGET_RMS_DBFS,
    ceiling_dbfs: float = PEAK_CEILING_DBFS,
    knee_dbfs: float = LIMITER_KNEE_DBFS,
) -> np.ndarray:
    """Remove DC, scale to ``target_rms_dbfs`` RMS, then soft-limit peaks above ``knee_dbfs`` to ``ceiling_dbfs``.

    Works along the last axis of ``y`` ([samples] or [channels, samples]). The limiter is static and
    continuous with unit slope at the knee: above it, magnitudes follow
    ``knee + (ceiling - knee) * tanh((|y| - knee) / (ceiling - knee))``, so nothing exceeds the ceiling.
    An all-zero (or constant) signal comes back as zeros.
    """
    y = np.array(y, np.float32)  # a copy: scaled and limited in place
    y -= y.mean(axis=-1, keepdims=True)
    rms = np.sqrt(np.mean(np.square(y, dtype=np.float64), axis=-1, keepdims=True))
    y *= np.where(rms > 1e-12, _db_to_amp(target_rms_dbfs) / np.maximum(rms, 1e-12), 0.0).astype(np.float32)
    knee, ceiling = _db_to_amp(knee_dbfs), _db_to_amp(ceiling_dbfs)
    rows = y.reshape(-1, y.shape[-1]) if y.size else y.reshape(0, 0)
    for r in np.nonzero(np.abs(rows).max(axis=-1, initial=0.0) > knee)[0]:
        idx = np.nonzero(np.abs(rows[r]) > knee)[0]  # usually a few samples: limit only those
        v = rows[r, idx]
        rows[r, idx] = np.sign(v) * (knee + (ceiling - knee) * np.tanh((np.abs(v) - knee) / (ceiling - knee)))
    return y


def _stage_factors(factor: int, max_stage: int = MAX_STAGE_FACTOR) -> list[int]:
    """``factor`` split into stages (products of its prime factors) of at most ``max_stage``, ascending."""
    primes, n, p = [], factor, 2
    while n > 1:
        while n % p == 0:
            primes.append(p)
            n //= p
        p += 1
    stages, current = [], 1
    for q in sorted(primes, reverse=True):
        if current * q > max_stage and current > 1:
            stages.append(current)
            current = 1
        current *= q
    stages.append(current)
    return sorted(stages)


def upsample(x: np.ndarray, rate_hz: float, sample_rate: int, axis: int = 0) -> np.ndarray:
    """``x`` sampled at ``rate_hz`` resampled to ``sample_rate`` Hz along ``axis``: float32.

    The ratio ``sample_rate / rate_hz = up / down`` (as a fraction) is done with ``scipy.signal.resample_poly``
    (polyphase, Kaiser-windowed FIR at each stage's Nyquist) in cascaded up-stages of at most
    :data:`MAX_STAGE_FACTOR` (3^9 = 19683 in one go would design a 400k-tap filter and take minutes; the
    cascade does the same band-limited interpolation in about a second), then one ``down`` stage.
    """
    from scipy.signal import resample_poly

    ratio = Fraction(sample_rate / rate_hz).limit_denominator(1000)
    y = np.moveaxis(np.asarray(x, np.float32), axis, -1)
    y = np.ascontiguousarray(y)
    if ratio != 1:
        for stage in _stage_factors(ratio.numerator):
            if stage > 1:
                y = resample_poly(y, stage, 1, axis=-1)
        if ratio.denominator > 1:
            y = resample_poly(y, 1, ratio.denominator, axis=-1)
    return np.moveaxis(y.astype(np.float32), -1, axis)


def sonify_1d(maps: np.ndarray, rate_hz: float, sample_rate: int, n_samples: int) -> np.ndarray:
    """1-D maps [time, channels] at ``rate_hz`` -> loudness-normalised audio [n_samples, channels] at ``sample_rate``.

    DC is removed before resampling (no edge transients), the upsampled signal is cut or zero-padded to
    ``n_samples`` and normalised per channel (:func:`normalise_loudness`).
    """
    rows = np.asarray(maps, np.float32).T  # [channels, time]: contiguous rows for the resampler
    rows = rows - rows.mean(axis=1, keepdims=True)
    up = upsample(rows, rate_hz, sample_rate, axis=1)
    out = np.zeros((rows.shape[0], n_samples), np.float32)
    n = min(n_samples, up.shape[1])
    out[:, :n] = normalise_loudness(up[:, :n])
    return out.T


def mel_centres_hz(fbank, sample_rate: int) -> np.ndarray:
    """Centre frequency (Hz) of each mel band of ``fbank``: [n_mels] (the filterbank's mel points 1..n_mels)."""
    from hvd_magtag.features import hz_to_mel, mel_to_hz

    fmax = fbank.fmax or sample_rate / 2
    points = np.linspace(hz_to_mel(fbank.fmin), hz_to_mel(fmax), fbank.n_mels + 2)
    return mel_to_hz(points[1:-1])


def stretch_axis(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Linear interpolation of ``x`` along ``axis`` to ``n`` points (sample centres aligned)."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, -1)
    m = x.shape[-1]
    if m == n:
        return np.moveaxis(x, -1, axis)
    src = (np.arange(m) + 0.5) / m
    dst = (np.arange(n) + 0.5) / n
    flat = x.reshape(-1, m)
    out = np.stack([np.interp(dst, src, row) for row in flat]).reshape((*x.shape[:-1], n))
    return np.moveaxis(out, -1, axis)


def sonify_2d(maps: np.ndarray, spec, n_samples: int, seed: int = 0) -> np.ndarray:
    """2-D maps [time, freq, channels] -> noise-vocoded audio [n_samples, channels] at ``spec.sample_rate``.

    Each channel's map, shifted to be non-negative (map - min), is stretched to [STFT frames, n_mels]
    (frames at ``spec.fbank.hop_length``), mapped to linear-frequency magnitudes through the mel filterbank,
    given random phases and inverted (Hann, ``n_fft``); then loudness-normalised like 1-D maps.
    """
    from scipy.signal import istft

    from hvd_magtag.features import mel_filterbank

    fbank = spec.fbank
    fb = mel_filterbank(fbank, spec.sample_rate).T  # [n_mels, bins]
    hop, n_fft = fbank.hop_length, fbank.n_fft
    frames = max(2, math.ceil(n_samples / hop) + 1)
    rng = np.random.default_rng(seed)
    out = np.zeros((n_samples, maps.shape[-1]), np.float32)
    for c in range(maps.shape[-1]):
        env = maps[..., c].astype(np.float64)
        env = env - env.min()
        env = stretch_axis(stretch_axis(env, frames, 0), fbank.n_mels, 1)  # [frames, n_mels]
        mag = env @ fb  # [frames, bins]
        phase = np.exp(2j * np.pi * rng.random(mag.shape))
        _, y = istft((mag * phase).T, fs=spec.sample_rate, nperseg=n_fft, noverlap=n_fft - hop, boundary=True)
        n = min(n_samples, len(y))
        out[:n, c] = normalise_loudness(y[:n])
    return out


def to_pcm16(y: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] -> int16 PCM (rounded, clipped), any shape."""
    scaled = np.rint(np.asarray(y, np.float32) * 32767.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def write_wav(path: Path, y: np.ndarray, sample_rate: int) -> None:
    """Write mono audio as a 16-bit PCM WAV: float in [-1, 1] (converted by :func:`to_pcm16`) or int16."""
    from scipy.io import wavfile

    pcm = y if np.asarray(y).dtype == np.int16 else to_pcm16(y)
    wavfile.write(str(path), int(sample_rate), np.ascontiguousarray(pcm))


# -- per-channel statistics ----------------------------------------------------------------------------------
def dominant_frequency_1d(maps: np.ndarray, rate_hz: float) -> np.ndarray:
    """Peak frequency (Hz, DC excluded) of each channel's Welch spectrum: [channels] (NaN if too short)."""
    from scipy.signal import welch

    steps = maps.shape[0]
    if steps < 4:
        return np.full(maps.shape[1], np.nan)
    freqs, psd = welch(maps, fs=rate_hz, nperseg=min(256, steps), axis=0, detrend="constant")
    return freqs[1:][np.argmax(psd[1:], axis=0)]


def dominant_frequency_2d(maps: np.ndarray, spec) -> np.ndarray:
    """Centre (Hz) of the mel band where each channel's time-averaged map peaks: [channels]."""
    profiles = mel_profiles(maps, spec.fbank.n_mels)  # [channels, n_mels]
    return mel_centres_hz(spec.fbank, spec.sample_rate)[np.argmax(profiles, axis=1)]


def mel_profiles(maps: np.ndarray, n_mels: int) -> np.ndarray:
    """Per-channel frequency profile of 2-D maps [time, freq, channels]: mean over time, upsampled to
    ``n_mels`` along the mel axis -> [channels, n_mels]."""
    profile = np.asarray(maps, np.float64).mean(axis=0)  # [freq, channels]
    return stretch_axis(profile, n_mels, 0).T


# -- the featuremaps command ---------------------------------------------------------------------------------
@dataclass
class ChannelRow:
    run: str
    layer: str
    channel: int
    rate_hz: float
    rms: float
    dominant_hz: float
    silent: bool
    wav: str  # path relative to the index


def render_run(
    model,
    waveform: np.ndarray,
    out_dir: Path,
    run_label: str,
    layer_names: list[str] | None = None,
    max_channels: int = 0,
    tap: str = "conv",
) -> list[ChannelRow]:
    """Extract, save and sonify every selected conv layer of ``model`` for ``waveform``.

    Writes ``out_dir/featuremaps.npz`` ({layer: map}, ``__layers__``, ``__rates_hz__``, ``__strides__``,
    ``__sample_rate__``), ``out_dir/layers.json`` and ``out_dir/<layer>/ch<NNN>.wav``. ``max_channels`` > 0
    keeps only the loudest (highest map RMS) channels of each layer; ``tap`` as in :func:`map_extractor`.
    Returns one row per written channel.
    """
    spec = model.spec
    out_dir.mkdir(parents=True, exist_ok=True)
    maps, infos = feature_maps(model, waveform, extractor=map_extractor(model, layer_names, tap))
    np.savez(
        out_dir / "featuremaps.npz",
        __layers__=np.array([i.name for i in infos]),
        __rates_hz__=np.array([i.rate_hz for i in infos]),
        __strides__=np.array([i.stride for i in infos]),
        __sample_rate__=np.array(spec.sample_rate),
        **maps,
    )
    (out_dir / "layers.json").write_text(json.dumps([asdict(i) for i in infos], indent=2) + "\n")
    n_samples = len(waveform)
    rows: list[ChannelRow] = []
    for info in infos:
        m = maps[info.name]
        axes = tuple(range(m.ndim - 1))
        rms = np.sqrt(np.mean((m - m.mean(axis=axes, keepdims=True)) ** 2, axis=axes))
        channels = np.arange(info.channels)
        if max_channels and max_channels < info.channels:
            channels = np.sort(np.argsort(-rms, kind="stable")[:max_channels])
        sub = m[..., channels]
        if info.kind == "1d":
            audio = sonify_1d(sub, info.rate_hz, spec.sample_rate, n_samples)
            dominant = dominant_frequency_1d(sub, info.rate_hz)
        else:
            audio = sonify_2d(sub, spec, n_samples)
            dominant = dominant_frequency_2d(sub, spec)
        layer_dir = out_dir / info.name
        layer_dir.mkdir(exist_ok=True)
        loudest = float(rms.max()) if rms.size else 0.0
        pcm = to_pcm16(audio.T)  # [channels, samples]
        for k, c in enumerate(channels):
            wav = layer_dir / f"ch{c:03d}.wav"
            write_wav(wav, pcm[k], spec.sample_rate)
            rows.append(
                ChannelRow(
                    run=run_label,
                    layer=info.name,
                    channel=int(c),
                    rate_hz=float(info.rate_hz),
                    rms=float(rms[c]),
                    dominant_hz=float(dominant[k]),
                    silent=bool(rms[c] <= SILENT_RELATIVE_RMS * max(loudest, 1e-30)),
                    wav=os.path.relpath(wav, out_dir.parent),
                )
            )
        log.info("%s: %s %d channels at %.1f Hz", run_label, info.name, len(channels), info.rate_hz)
    return rows


def _fmt_hz(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.1f}"


def write_index(out: Path, rows: list[ChannelRow], clip_wav: str, title: str, tap: str = "conv") -> None:
    """``index.html`` (a table with <audio> players; runs side by side), ``index.md`` and ``index.csv``."""
    where = "conv outputs" if tap == "conv" else "conv outputs after their batch norm / activation"
    fields = list(ChannelRow.__dataclass_fields__)
    with open(out / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(asdict(r))
    md = [f"# {title}", "", f"Input clip: [{clip_wav}]({clip_wav}); maps are {where}.", ""]
    md += [
        "| run | layer | channel | rate (Hz) | RMS | dominant (Hz) | audio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        note = " (silent)" if r.silent else ""
        md.append(
            f"| {r.run} | {r.layer} | {r.channel} | {r.rate_hz:.1f} | {r.rms:.4g} | "
            f"{_fmt_hz(r.dominant_hz)} | [wav]({r.wav}){note} |"
        )
    (out / "index.md").write_text("\n".join(md) + "\n")

    runs = list(dict.fromkeys(r.run for r in rows))
    keyed: dict[tuple[str, int], dict[str, ChannelRow]] = {}
    for r in rows:
        keyed.setdefault((r.layer, r.channel), {})[r.run] = r
    esc = html.escape
    head = "".join(f"<th colspan=4>{esc(run)}</th>" for run in runs)
    sub = "<th>rate (Hz)</th><th>RMS</th><th>dominant (Hz)</th><th>listen</th>" * len(runs)
    body = []
    for (layer, channel), per_run in keyed.items():
        cells = []
        for run in runs:
            r = per_run.get(run)
            if r is None:
                cells.append("<td colspan=4>-</td>")
                continue
            cls = ' class="silent"' if r.silent else ""
            cells.append(
                f"<td>{r.rate_hz:.1f}</td><td{cls}>{r.rms:.4g}</td><td>{_fmt_hz(r.dominant_hz)}</td>"
                f'<td><audio controls preload="none" src="{esc(r.wav)}"></audio></td>'
            )
        body.append(f"<tr><td>{esc(layer)}</td><td>{channel}</td>{''.join(cells)}</tr>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}} .silent{{color:#b00}}</style></head>
<body><h1>{esc(title)}</h1>
<p>Input clip: <audio controls preload="none" src="{esc(clip_wav)}"></audio></p>
<p>Maps are {where}. Each channel's map is upsampled from the layer rate to the audio rate (polyphase), DC removed and
normalised to {TARGET_RMS_DBFS:g} dBFS RMS with a soft peak limiter; 2-D maps are noise-vocoded through the
mel filterbank. RMS is of the map itself (before normalisation); dominant = peak of the map's spectrum
(1-D) or centre of the mel band where the channel's time-averaged map peaks (2-D); red = silent channel.</p>
<table><tr><th rowspan=2>layer</th><th rowspan=2>channel</th>{head}</tr><tr>{sub}</tr>
{chr(10).join(body)}
</table></body></html>
"""
    (out / "index.html").write_text(page)


def run_featuremaps(
    run_dirs: list[str | Path],
    clip: str,
    out: str | Path | None = None,
    layer_names: list[str] | None = None,
    max_channels: int = 0,
    start_seconds: float = 0.0,
    duration_seconds: float | None = None,
    which: str = "best",
    tap: str = "conv",
) -> Path:
    """The ``featuremaps`` command for one run (or two, side by side); returns the output folder.

    ``duration_seconds`` None = one model window of the first run (the whole clip if shorter); 0 = whole clip.
    The output folder defaults to ``RUN_DIR/analysis/featuremaps/<clip stem>``.
    """
    from hvd_magtag.rundir import RunDir

    runs = [RunDir(p) for p in run_dirs]
    src = resolve_clip(runs[0], clip)
    first_spec = runs[0].spec
    if out is None:
        out = runs[0].path / "analysis" / "featuremaps" / src.stem
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows: list[ChannelRow] = []
    labels = _run_labels(runs)
    clip_wav = ""
    for run, label in zip(runs, labels):
        model = run.load_model(which)
        spec = model.spec
        waveform = load_audio(src, spec.sample_rate)
        duration = first_spec.window_seconds if duration_seconds is None else duration_seconds
        begin = int(round(start_seconds * spec.sample_rate))
        end = len(waveform) if duration <= 0 else begin + int(round(duration * spec.sample_rate))
        waveform = waveform[begin:end]
        if waveform.size == 0:
            raise AnalysisError(f"--start {start_seconds}: beyond the end of {src}")
        rows += render_run(model, waveform, out / label, label, layer_names, max_channels, tap)
        if not clip_wav:
            clip_wav = "input.wav"
            write_wav(out / clip_wav, np.clip(waveform, -1.0, 1.0), spec.sample_rate)
    title = f"Feature maps of {src.name}: " + " vs ".join(labels)
    write_index(out, rows, clip_wav, title, tap)
    log.info("featuremaps: %d channels written under %s (open index.html)", len(rows), out)
    return out


def _run_labels(runs) -> list[str]:
    names = [r.path.name for r in runs]
    if len(set(names)) < len(names):
        names = [f"{i}_{n}" for i, n in enumerate(names)]
    return names


def summarise(rows: list[ChannelRow]) -> dict[str, Any]:
    """Counts per run and layer (for logs and benchmarks)."""
    out: dict[str, Any] = {}
    for r in rows:
        out.setdefault(r.run, {}).setdefault(r.layer, 0)
        out[r.run][r.layer] += 1
    return out
