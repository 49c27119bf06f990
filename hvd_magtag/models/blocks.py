"""Functional blocks of the model zoo: each takes a symbolic tensor and returns one.

Every layer a block creates is named ``{name}_{part}`` so that analysis can find block outputs by name
(``block3_pool``, ``block3_conv``...). Layouts are channels-last: 1-D ``[batch, time, channels]``, 2-D
``[batch, time, freq, channels]``. The layers themselves are in :mod:`hvd_magtag.models.layers`.

- :func:`conv_bn_relu`, :func:`conv_block` (SampleCNN's conv-BN-ReLU-pool), :func:`dilated_block`,
  :func:`multikernel_block`, :func:`se_block` / :func:`squeeze_excitation`, :func:`residual_block`
  (Res-n / ReSE-n of Kim et al. 2018), :func:`residual_block_2d` (Won et al. 2020);
- :func:`pool1d` / :func:`pool2d` (``"max"`` or ``"stochastic"``), :func:`window_pool` (across windows);
- model ends: :func:`waveform_input`, :func:`logmel_input`, :func:`dense_embedding`, :func:`tag_head`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from hvd_magtag.errors import ConfigError
from hvd_magtag.models.layers import (
    AttentionPooling,
    FastConv1D,
    FusedBatchNorm,
    StochasticPooling1D,
    StochasticPooling2D,
)
from hvd_magtag.models.names import EMBEDDING_LAYER, OUTPUT_LAYER

#: pooling kinds accepted by every model's ``pool`` override
POOL_KINDS = ("max", "stochastic")
#: cross-window pooling kinds of superpool models (``window_pool`` override)
WINDOW_POOL_KINDS = ("max", "mean", "attention")
#: multi-kernel merge modes
MERGE_KINDS = ("concat", "sum")


def scaled(channels: int, width: float) -> int:
    """Channel count ``channels * width`` rounded, at least 1 (``width`` is the model's channel multiplier)."""
    if width <= 0:
        raise ConfigError(f"model override width must be > 0, got {width}")
    return max(1, int(round(channels * width)))


def waveform_input(spec, name: str = "waveform"):
    """``[B, window]`` model Input (samples at ``spec.sample_rate``) and the ``[B, window, 1]`` tensor the
    convs read."""
    inputs = keras.Input(shape=spec.window_shape(), name=name)
    return inputs, keras.layers.Reshape((spec.window, 1), name="add_channel")(inputs)


def logmel_input(spec, freq_bn: bool):
    """``[B, frames, n_mels]`` model Input and ``[B, frames, n_mels, 1]``, batch-normalised per mel band
    (``freq_bn``, Choi et al.) or as one channel (Won et al.'s ``spec_bn``): ``input_bn``."""
    inputs = keras.Input(shape=spec.window_shape(), name="logmel")
    frames, n_mels = spec.window_shape()
    x = keras.layers.Reshape((frames, n_mels, 1), name="add_channel")(inputs)
    return inputs, FusedBatchNorm(axis=2 if freq_bn else -1, name="input_bn")(x)


def dense_embedding(x, units: int):
    """Dense ``fc`` -> BN ``fc_bn`` -> ReLU ``embedding``: ``[B, D] -> [B, units]`` (Kim et al. 2018,
    Won et al. 2020)."""
    x = keras.layers.Dense(units, name="fc")(x)
    x = FusedBatchNorm(name="fc_bn")(x)
    return keras.layers.ReLU(name=EMBEDDING_LAYER)(x)


def tag_head(x, n_tags: int, dropout: float = 0.0):
    """``embedding [B, D]`` -> Dropout(``dropout``) ``dropout`` -> Dense(n_tags, sigmoid) ``tags``."""
    if dropout > 0:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    return keras.layers.Dense(n_tags, activation="sigmoid", name=OUTPUT_LAYER)(x)


def pool1d(x, pool_size: int, kind: str = "max", *, name: str, seed: int | None = None):
    """Non-overlapping 1-D pooling ``[B, T, C] -> [B, T // pool_size, C]``: ``kind`` "max" or "stochastic"."""
    if kind == "max":
        return keras.layers.MaxPooling1D(pool_size, name=name)(x)
    if kind == "stochastic":
        return StochasticPooling1D(pool_size, seed=seed, name=name)(x)
    raise ConfigError(f"model override pool must be one of {POOL_KINDS}, got {kind!r}")


def pool2d(x, pool_size: tuple[int, int], kind: str = "max", *, name: str, seed: int | None = None):
    """Non-overlapping 2-D pooling ``[B, T, F, C] -> [B, T // pt, F // pf, C]``: "max" or "stochastic"."""
    if kind == "max":
        return keras.layers.MaxPooling2D(pool_size, name=name)(x)
    if kind == "stochastic":
        return StochasticPooling2D(pool_size, seed=seed, name=name)(x)
    raise ConfigError(f"model override pool must be one of {POOL_KINDS}, got {kind!r}")


def window_pool(x, kind: str, *, name: str, attention_units: int = 128):
    """Pool window embeddings ``[B, W, D] -> [B, D]`` by "max", "mean" or learned "attention"."""
    if kind == "max":
        return keras.layers.GlobalMaxPooling1D(name=name)(x)
    if kind == "mean":
        return keras.layers.GlobalAveragePooling1D(name=name)(x)
    if kind == "attention":
        return AttentionPooling(attention_units, name=name)(x)
    raise ConfigError(f"model override window_pool must be one of {WINDOW_POOL_KINDS}, got {kind!r}")


def conv_bn_relu(
    x, filters: int, kernel_size, *, name: str, strides=1, dilation_rate=1, padding="same", dims=1
):
    """Conv (``{name}``) -> BatchNorm (``{name}_bn``) -> ReLU (``{name}_relu``); 1-D or 2-D (``dims``)."""
    conv = FastConv1D if dims == 1 else keras.layers.Conv2D
    x = conv(filters, kernel_size, strides=strides, dilation_rate=dilation_rate, padding=padding, name=name)(
        x
    )
    x = FusedBatchNorm(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def conv_block(
    x, filters: int, kernel_size: int, pool_size: int, *, name: str, pool: str = "max", dilation_rate=1
):
    """SampleCNN basic block (Lee et al. 2017): ``[B, T, C] -> [B, T // pool_size, filters]``.

    Conv1D(filters, kernel_size, "same") ``{name}_conv`` -> BN -> ReLU -> pool ``{name}_pool``.
    """
    x = conv_bn_relu(x, filters, kernel_size, dilation_rate=dilation_rate, name=f"{name}_conv")
    return pool1d(x, pool_size, pool, name=f"{name}_pool")


def dilated_block(
    x, filters: int, kernel_size: int, pool_size: int, dilation_rate: int, *, name: str, pool="max"
):
    """Basic block with a dilated conv (Yu & Koltun 2016): receptive field ``(kernel_size - 1) * dilation + 1``
    steps per layer for the same parameters. ``[B, T, C] -> [B, T // pool_size, filters]``."""
    return conv_block(x, filters, kernel_size, pool_size, name=name, pool=pool, dilation_rate=dilation_rate)


def multikernel_block(
    x,
    filters: int,
    kernel_sizes: Sequence[int],
    pool_size: int,
    *,
    name: str,
    merge: str = "concat",
    pool: str = "max",
):
    """Parallel convs of several kernel sizes over the same input, merged, then BN -> ReLU -> pool.

    ``[B, T, C] -> [B, T // pool_size, filters]``. Branch ``j`` is ``{name}_conv{j}`` (kernel
    ``kernel_sizes[j]``, "same" padding). ``merge="concat"`` splits ``filters`` over the branches (so the
    block has ``filters`` output channels); ``merge="sum"`` gives each branch ``filters`` channels and adds.
    """
    if merge not in MERGE_KINDS:
        raise ConfigError(f"model override merge must be one of {MERGE_KINDS}, got {merge!r}")
    n = len(kernel_sizes)
    if n == 0:
        raise ConfigError("model override kernels must list at least one kernel size")
    if merge == "concat":
        per = [filters // n + (1 if j < filters % n else 0) for j in range(n)]
        if min(per) < 1:
            raise ConfigError(
                f"multi-kernel block {name}: {filters} channels cannot be split over {n} kernels"
            )
    else:
        per = [filters] * n
    branches = [
        FastConv1D(c, k, padding="same", name=f"{name}_conv{j}")(x)
        for j, (c, k) in enumerate(zip(per, kernel_sizes))
    ]
    if n == 1:
        x = branches[0]
    elif merge == "concat":
        x = keras.layers.Concatenate(name=f"{name}_merge")(branches)
    else:
        x = keras.layers.Add(name=f"{name}_merge")(branches)
    x = FusedBatchNorm(name=f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return pool1d(x, pool_size, pool, name=f"{name}_pool")


def squeeze_excitation(x, amplifying_ratio: float, *, name: str):
    """Channel gates ``[B, T, C] -> [B, T, C]`` (x times sigmoid gates), Kim et al. 2018 variant of
    Hu et al. 2018: global average over time, Dense(C * amplifying_ratio, ReLU), Dense(C, sigmoid)."""
    channels = x.shape[-1]
    s = keras.layers.GlobalAveragePooling1D(name=f"{name}_squeeze")(x)
    s = keras.layers.Dense(
        max(1, int(channels * amplifying_ratio)), activation="relu", name=f"{name}_excite0"
    )(s)
    s = keras.layers.Dense(channels, activation="sigmoid", name=f"{name}_excite1")(s)
    s = keras.layers.Reshape((1, channels), name=f"{name}_gates")(s)
    return keras.layers.Multiply(name=f"{name}_scale")([x, s])


def se_block(
    x, filters: int, kernel_size: int, pool_size: int, *, name: str, amplifying_ratio=0.125, pool="max"
):
    """SE block (Kim et al. 2018): conv-BN-ReLU -> squeeze-excitation -> pool.
    ``[B, T, C] -> [B, T // pool_size, filters]``."""
    x = conv_bn_relu(x, filters, kernel_size, name=f"{name}_conv")
    x = squeeze_excitation(x, amplifying_ratio, name=f"{name}_se")
    return pool1d(x, pool_size, pool, name=f"{name}_pool")


def residual_block(
    x,
    filters: int,
    kernel_size: int,
    pool_size: int,
    *,
    name: str,
    n_convs: int = 2,
    dropout: float = 0.2,
    amplifying_ratio: float = 0.0,
    pool: str = "max",
):
    """Res-n / ReSE-n block (Kim et al. 2018): ``[B, T, C] -> [B, T // pool_size, filters]``.

    Residual branch: ``n_convs`` x (Conv1D ``{name}_conv{j}`` -> BN), ReLU + Dropout(``dropout``) between
    them, then (ReSE, ``amplifying_ratio > 0``) squeeze-excitation; shortcut: identity, or Conv1D(1)
    ``{name}_shortcut`` + BN when the channel count changes. Sum -> ReLU -> pool.
    """
    if n_convs < 1:
        raise ConfigError(f"residual block {name}: n_convs must be >= 1, got {n_convs}")
    if x.shape[-1] != filters:
        shortcut = FastConv1D(filters, 1, padding="same", name=f"{name}_shortcut")(x)
        shortcut = FusedBatchNorm(name=f"{name}_shortcut_bn")(shortcut)
    else:
        shortcut = x
    for j in range(1, n_convs + 1):
        x = FastConv1D(filters, kernel_size, padding="same", name=f"{name}_conv{j}")(x)
        x = FusedBatchNorm(name=f"{name}_conv{j}_bn")(x)
        if j < n_convs:
            x = keras.layers.ReLU(name=f"{name}_conv{j}_relu")(x)
            if dropout > 0:
                x = keras.layers.Dropout(dropout, name=f"{name}_conv{j}_dropout")(x)
    if amplifying_ratio > 0:
        x = squeeze_excitation(x, amplifying_ratio, name=f"{name}_se")
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return pool1d(x, pool_size, pool, name=f"{name}_pool")


def residual_block_2d(x, filters: int, *, name: str, strides=2):
    """Short-chunk ResNet block (Won et al. 2020): ``[B, T, F, C] -> [B, ceil(T/s), ceil(F/s), filters]``.

    Conv3x3(stride s) ``{name}_conv1`` -> BN -> ReLU -> Conv3x3 ``{name}_conv2`` -> BN; shortcut
    Conv3x3(stride s) ``{name}_shortcut`` -> BN when the shape changes; sum -> ReLU.
    """
    if strides != 1 or x.shape[-1] != filters:
        shortcut = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", name=f"{name}_shortcut")(
            x
        )
        shortcut = FusedBatchNorm(name=f"{name}_shortcut_bn")(shortcut)
    else:
        shortcut = x
    x = conv_bn_relu(x, filters, 3, strides=strides, name=f"{name}_conv1", dims=2)
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(x)
    x = FusedBatchNorm(name=f"{name}_conv2_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_relu")(x)
