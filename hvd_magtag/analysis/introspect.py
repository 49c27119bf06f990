"""Model introspection for analysis: which layers are convolutions, at what rate they run on the audio axis,
what feeds them, and where their maps are taken.

Vocabulary (used across :mod:`hvd_magtag.analysis`):

- The *encoder* is the functional (sub-)model holding the conv layers: the model itself for ``split``
  models, its ``window_encoder`` sub-model for ``superpool`` models (one window in, per-window maps out).
- A *conv layer* is a ``Conv1D`` / ``Conv2D`` of the encoder, in input-to-output order; models whose
  front end runs several branches side by side (multi-kernel blocks, musicnn's timbral / temporal filters)
  have one conv layer per branch, each described on its own. Its *map* for a clip is its output
  (``tap="conv"``, the default: before the batch norm / activation that follow; or ``tap="activation"``:
  after them, what the next layer sees before pooling) with the clip's consecutive windows concatenated
  along time: ``[time, channels]`` for 1-D layers, ``[time, freq, channels]`` for 2-D layers (freq = the
  mel axis after the layer's pooling so far; 1 for a filter spanning every band).
- A layer's *stride* is the number of audio samples per map step: input steps per map step (``window /
  steps`` for raw input, ``frames / steps`` times ``hop_length`` for filterbank input; rounded to an
  integer when within 5 % of one) and its *rate* is ``spec.sample_rate / stride`` (Hz): a
  layer at rate r covers audio frequencies 0..r/2.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np

from hvd_magtag.analysis import TAPS
from hvd_magtag.config import ConfigError
from hvd_magtag.models.names import WINDOW_ENCODER

#: Name of the model input as a level (the audio, or the filterbank frames of spectrogram models).
INPUT_LEVEL = "input"
#: Strides within this relative distance of an integer are snapped to it.
_STRIDE_SNAP = 0.05
#: layers a map taken with tap="activation" follows through
_FOLLOW = (
    keras.layers.BatchNormalization,
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
)
_CONVS = (keras.layers.Conv1D, keras.layers.Conv2D)


class AnalysisError(ConfigError):
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
    freq_bins:   frequency bins of a 2-d map (0 for 1-d).
    mel_first, mel_step:  where those bins sit on the input's mel axis: bin j is centred on input mel band
                 ``mel_first + mel_step * j`` (fractional band index; 2-d only). Follows pooling and strides
                 (a bin of a layer pooled by s spans s bands) and "valid" kernels (a 7x38 kernel's first
                 output bin is centred on band 18.5), so branches with different kernel shapes line up.
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
    mel_first: float = 0.0
    mel_step: float = 0.0

    def mel_centres(self):
        """Input mel band (fractional index) at the centre of each frequency bin: [freq_bins] (2-d only)."""
        return self.mel_first + self.mel_step * np.arange(self.freq_bins)


def encoder_of(model):
    """The functional (sub-)model whose layers include the conv layers (see module docstring)."""
    if any(isinstance(layer, _CONVS) for layer in model.layers):
        return model
    # sub-models called directly, or wrapped (TimeDistributed(encoder) keeps it in ``.layer``)
    subs = [
        inner
        for layer in model.layers
        for inner in (layer, getattr(layer, "layer", None))
        if isinstance(inner, keras.Model)
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
    return [layer for layer in encoder.layers if isinstance(layer, _CONVS)]


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
    consumers: dict[int, list] = {}
    for layer in encoder.layers:
        for tensor in _input_tensors(layer):
            consumers.setdefault(id(tensor), []).append(layer)
    layer = conv
    while True:
        after = consumers.get(id(layer.output), [])
        if len(after) != 1 or not isinstance(after[0], _FOLLOW):
            return layer
        layer = after[0]


def _mel_placement(layer, below_bins: int, below_place: tuple[float, float]) -> tuple[float, float]:
    """(first bin centre, step) on the input mel axis of a Conv2D's output bins (see :class:`ConvLayerInfo`),
    from the placement of its level below: pooling / strides in between by the ratio of bin counts, then
    the conv's own kernel (its centre, for "valid") and stride along frequency."""
    first, step = below_place
    in_bins = int(layer.input.shape[2])
    pool = below_bins / in_bins if in_bins else 1.0
    first, step = first + step * (pool - 1) / 2, step * pool  # pooled bin j spans `pool` bins below
    kernel, stride, dilation = layer.kernel_size[1], layer.strides[1], layer.dilation_rate[1]
    if layer.padding == "valid":
        first += step * (kernel - 1) * dilation / 2
    return first, step * stride


def describe_layers(encoder, spec, tap: str = "conv") -> list[ConvLayerInfo]:
    """Rates, strides, shapes and levels below of ``encoder``'s conv layers for input ``spec`` (a ModelSpec)."""
    infos: list[ConvLayerInfo] = []
    # the model input's time axis: audio samples (raw) or filterbank frames, hop_length samples apart (fbank)
    input_steps = spec.window_shape()[0]
    input_stride = 1 if spec.input == "raw" else spec.fbank.hop_length
    rates = {INPUT_LEVEL: spec.sample_rate / input_stride}
    n_mels = spec.fbank.n_mels if spec.input == "fbank" else 0
    placement = {INPUT_LEVEL: (n_mels, (0.0, 1.0))}  # level -> (bins, (first centre, step)) on the mel axis
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
        mel_first = mel_step = 0.0
        if kind == "2d":
            below_bins, below_place = placement.get(below, (n_mels, (0.0, 1.0)))
            mel_first, mel_step = _mel_placement(layer, below_bins or int(shape[2]), below_place)
            placement[layer.name] = (int(shape[2]), (mel_first, mel_step))
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
                mel_first=mel_first,
                mel_step=mel_step,
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
