"""Extraction: every selected conv layer's map for a clip, through the model's own input features."""

from __future__ import annotations

import math

import keras
import numpy as np

from hvd_magtag.analysis.introspect import ConvLayerInfo, describe_layers, encoder_of, select_layers
from hvd_magtag.audio import tail_padded_windows
from hvd_magtag.features import features_for


def map_extractor(model, layer_names: list[str] | None = None, tap: str = "conv"):
    """(keras.Model encoder input -> list of conv maps, [ConvLayerInfo]) for ``model`` (spec in ``model.spec``).

    ``tap``: "conv" (each conv layer's own output, linear in its input) or "activation" (after the batch
    norm / activation that follow it: what the next layer sees, before pooling).
    """
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
    spec = model.spec
    extractor, infos = extractor or map_extractor(model, layer_names)
    windows = tail_padded_windows(np.asarray(waveform, np.float32).reshape(-1), spec.window).numpy()
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
