"""Building blocks of the model zoo (Keras 3 layers and functional-API helpers).

Functional helpers take a symbolic tensor and return one; every layer they create is named
``{name}_{part}`` so that analysis can find block outputs by name (``block3_pool``, ``block3_conv``...).
Tensor layouts are channels-last: 1-D ``[batch, time, channels]``, 2-D ``[batch, time, freq, channels]``.

Layers (serializable, registered under the ``hvd_magtag`` package):

- :class:`StochasticPooling1D` / :class:`StochasticPooling2D` - Zeiler & Fergus 2013.
- :class:`AttentionPooling` - learned attention pooling over an axis (Ilse et al. 2018), used to pool
  window embeddings of a clip.
- :class:`FoldWindows` / :class:`UnfoldWindows` - ``[B, W, ...] <-> [B*W, ...]`` so that one window encoder
  sub-model runs on every window of a clip.

Functional blocks: :func:`conv_block` (conv-BN-ReLU-pool), :func:`dilated_block`, :func:`multikernel_block`,
:func:`residual_block` (Res-n / ReSE-n of Kim et al. 2018), :func:`se_block`, :func:`squeeze_excitation`,
:func:`pool1d` / :func:`pool2d` (``"max"`` or ``"stochastic"``).

This module imports Keras at import time; the zoo modules import it lazily inside their builders.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from hvd_magtag.config import ConfigError

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


# ---------------------------------------------------------------------------------------------------------
# Batch normalisation on TensorFlow's fused kernel
# ---------------------------------------------------------------------------------------------------------

#: input dtypes the fused kernel takes (scale, offset and statistics stay float32)
_FUSED_BN_DTYPES = ("float32", "bfloat16", "float16")


@keras.saving.register_keras_serializable(package="hvd_magtag")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed by TensorFlow's fused kernel where it can be.

    Keras 3 normalises with separate ops (``moments``: mean, squared difference, mean; then subtract,
    multiply, add, each a pass over the activation, upcast to float32 under a mixed policy, and as many again
    in the backward pass). ``FusedBatchNormV3`` / ``FusedBatchNormGradV3`` (oneDNN on CPU, cuDNN on GPU)
    do the statistics and the normalisation in one kernel each way, read bfloat16 directly and accumulate
    in float32. On SampleCNN's widest activation ([16, 19683, 128], bfloat16) forward + backward drops from
    ~375 ms to ~115 ms on this bench machine (``python -m hvd_magtag.bench train``).

    Same variables, same semantics as the Keras layer (so weights files are interchangeable): the batch
    variance is the biased one in the normalisation *and* in the moving-variance update (the kernel returns
    the Bessel-corrected variance; it is scaled back by (n - 1) / n), ``momentum`` / ``epsilon`` as in
    Keras. Falls back to the Keras computation when the fused kernel cannot express the call: another
    backend, a mask, renorm, synchronized BN, a normalised axis that is not the last one, or rank > 4.
    """

    def _fusable(self, inputs, mask) -> bool:
        rank = len(inputs.shape)
        return (
            keras.backend.backend() == "tensorflow"
            and mask is None
            and not self.renorm
            and not self.synchronized
            and 2 <= rank <= 4
            and self.axis in (-1, rank - 1)
            and keras.backend.standardize_dtype(inputs.dtype) in _FUSED_BN_DTYPES
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        shape = tf.shape(inputs)
        channels = inputs.shape[-1]
        x = tf.reshape(inputs, [1, -1, 1, channels]) if len(inputs.shape) != 4 else inputs
        if x.dtype != self.compute_dtype and self.compute_dtype in _FUSED_BN_DTYPES:
            x = tf.cast(x, self.compute_dtype)
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
            )
            count = tf.cast(tf.size(x) // channels, tf.float32)
            variance = variance * (count - 1.0) / tf.maximum(count, 1.0)  # the biased batch variance
            momentum = self.momentum
            self.moving_mean.assign(
                tf.cast(self.moving_mean, tf.float32) * momentum + mean * (1.0 - momentum)
            )
            self.moving_variance.assign(
                tf.cast(self.moving_variance, tf.float32) * momentum + variance * (1.0 - momentum)
            )
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x,
                gamma,
                beta,
                mean=tf.cast(self.moving_mean, tf.float32),
                variance=tf.cast(self.moving_variance, tf.float32),
                epsilon=self.epsilon,
                data_format="NHWC",
                is_training=False,
            )
        if len(inputs.shape) != 4:
            y = tf.reshape(y, shape)
        return tf.cast(y, self.compute_dtype)


# ---------------------------------------------------------------------------------------------------------
# 1-D convolution with matmul-shaped gradients
# ---------------------------------------------------------------------------------------------------------


def _shifted_products(x, dy, offset: int):
    """``sum_{b,t} x[b, t + offset]^T dy[b, t]`` over the pairs inside one example: ``[Cin, Cout]``.

    One matmul on the flattened ``[B*T, C]`` views (a leading-axis slice, no copy) pairs every row with the
    row ``offset`` later, which includes ``|offset|`` pairs per example boundary that straddle two examples;
    those are subtracted (a small ``[B-1, |offset|, C]`` product), in float32.
    """
    import tensorflow as tf

    steps = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
    cin, cout = x.shape[-1], dy.shape[-1]
    if isinstance(steps, int) and abs(offset) >= steps:
        return tf.zeros([cin, cout], dy.dtype)
    xf = tf.reshape(x, [-1, cin])
    gf = tf.reshape(dy, [-1, cout])
    n = tf.shape(xf)[0]
    if offset == 0:
        return tf.matmul(xf, gf, transpose_a=True)
    if offset > 0:
        full = tf.matmul(xf[offset:], gf[: n - offset], transpose_a=True)
        straddle = tf.einsum("btc,bto->co", tf.cast(x[1:, :offset], tf.float32),
                             tf.cast(dy[:-1, steps - offset :], tf.float32))  # fmt: skip
    else:
        q = -offset
        full = tf.matmul(xf[: n - q], gf[q:], transpose_a=True)
        straddle = tf.einsum("btc,bto->co", tf.cast(x[:-1, steps - q :], tf.float32),
                             tf.cast(dy[1:, :q], tf.float32))  # fmt: skip
    return tf.cast(tf.cast(full, tf.float32) - straddle, dy.dtype)


def conv1d_same(x, kernel, dilation: int = 1):
    """``tf.nn.conv1d(x, kernel, 1, "SAME", dilations=dilation)`` with the kernel gradient computed as one
    matmul per tap (:func:`_shifted_products`) instead of ``Conv2DBackpropFilter``.

    oneDNN's backward-weights kernel is slow on SampleCNN's long, one-row activations: for block 1
    (``[16, 19683, 128]``, k = 3) it takes ~117 ms in bfloat16 and ~480 ms in float32 on the bench machine,
    against ~1 ms per GFLOP for a matmul. The forward pass and the input gradient stay oneDNN's.
    """
    import tensorflow as tf

    k = kernel.shape[0]
    pad_left = (k - 1) * dilation // 2  # TensorFlow's SAME: the extra padding goes to the right

    @tf.custom_gradient
    def conv(x, kernel):
        y = tf.nn.conv1d(x, kernel, 1, "SAME", dilations=dilation)

        def grad(dy):
            dx = tf.compat.v1.nn.conv2d_backprop_input(
                tf.shape(x[:, None]), kernel[None], dy[:, None], strides=[1, 1, 1, 1], padding="SAME",
                dilations=[1, 1, dilation, 1],
            )[:, 0]  # fmt: skip
            dk = tf.stack([_shifted_products(x, dy, j * dilation - pad_left) for j in range(k)])
            return dx, dk

        return y, grad

    return conv(x, kernel)


@keras.saving.register_keras_serializable(package="hvd_magtag")
class Conv1D(keras.layers.Conv1D):
    """``keras.layers.Conv1D`` (same variables and outputs) with matmul-shaped training arithmetic where
    that is faster on the TensorFlow backend:

    - stride 1, ``"same"`` padding: :func:`conv1d_same` (kernel gradient by per-tap matmuls);
    - non-overlapping frames (``strides == kernel_size``, ``"valid"``, no dilation, SampleCNN's frame conv
      ``conv0``): a reshape to ``[B, T / k, k * Cin]`` and one matmul, forward and backward.

    Anything else (other strides or paddings, groups, channels_first, other backends) is Keras's own op.
    """

    def _fast_conv(self, inputs):
        """The convolution (no bias) by one of the fast paths, or None when none applies."""
        if keras.backend.backend() != "tensorflow" or self.groups != 1 or self.data_format != "channels_last":
            return None
        import tensorflow as tf

        (k,), (stride,), (dilation,) = self.kernel_size, self.strides, self.dilation_rate
        kernel = ops.cast(self.kernel, inputs.dtype)
        if stride == 1 and self.padding == "same":
            return conv1d_same(inputs, kernel, dilation)
        if stride == k and dilation == 1 and self.padding == "valid" and inputs.shape[1] is not None:
            frames, cin = inputs.shape[1] // k, inputs.shape[-1]
            x = inputs[:, : frames * k] if frames * k != inputs.shape[1] else inputs
            return tf.matmul(
                tf.reshape(x, [-1, frames, k * cin]), tf.reshape(kernel, [k * cin, self.filters])
            )
        return None

    def call(self, inputs):
        outputs = self._fast_conv(inputs)
        if outputs is None:
            return super().call(inputs)
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(ops.cast(self.bias, outputs.dtype), (1, 1, self.filters)))
        return outputs if self.activation is None else self.activation(outputs)


# ---------------------------------------------------------------------------------------------------------
# Stochastic pooling (Zeiler & Fergus 2013)
# ---------------------------------------------------------------------------------------------------------


def _stochastic_pick(windows, training: bool, seed_generator):
    """Pool ``windows [..., k, C]`` over axis -2.

    Probabilities ``p_i = a_i / sum_j a_j`` with ``a = max(x, 0)``. Training: one element per window sampled
    with probability p (inverse-CDF sampling: the first i whose cumulative sum exceeds u * total, u ~ U[0, 1),
    so zero-probability elements are never picked); the gradient flows to the picked element, as in max
    pooling. Inference: the probability-weighted average ``sum_i p_i a_i``. All-zero windows give 0.
    """
    a = ops.relu(windows)
    total = ops.sum(a, axis=-2, keepdims=True)  # [..., 1, C]
    if not training:
        safe = ops.where(total > 0, total, ops.ones_like(total))
        return ops.squeeze(ops.sum(a * a, axis=-2, keepdims=True) / safe, axis=-2)
    u = keras.random.uniform(ops.shape(total), dtype=windows.dtype, seed=seed_generator)
    threshold = u * total
    cum = ops.cumsum(a, axis=-2)
    picked = ops.logical_and(cum > threshold, (cum - a) <= threshold)
    picked = ops.stop_gradient(ops.cast(picked, windows.dtype))
    return ops.sum(picked * a, axis=-2)


@keras.saving.register_keras_serializable(package="hvd_magtag")
class StochasticPooling1D(keras.layers.Layer):
    """Stochastic pooling over time: ``[B, T, C] -> [B, T // pool_size, C]`` (non-overlapping windows,
    "valid": trailing ``T % pool_size`` steps are dropped, like ``MaxPooling1D``).

    Zeiler & Fergus 2013, "Stochastic pooling for regularization of deep convolutional neural networks":
    in training each window outputs one of its activations, drawn with probability proportional to the
    activation; at inference the probability-weighted average. Inputs are expected to be non-negative
    (after ReLU); negative values get probability 0. ``seed`` makes the draws reproducible (the layer owns
    a ``keras.random.SeedGenerator``, so it works eagerly, in ``tf.function`` and in graph mode).
    """

    def __init__(self, pool_size: int = 2, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if int(pool_size) < 1:
            raise ValueError(f"StochasticPooling1D pool_size must be >= 1, got {pool_size}")
        self.pool_size = int(pool_size)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        k = self.pool_size
        steps = ops.shape(inputs)[1] // k
        channels = inputs.shape[-1]
        x = inputs[:, : steps * k, :]
        windows = ops.reshape(x, (-1, steps, k, channels))
        return _stochastic_pick(windows, bool(training), self.seed_generator)

    def compute_output_shape(self, input_shape):
        b, t, c = input_shape
        return (b, None if t is None else t // self.pool_size, c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "seed": self.seed}


@keras.saving.register_keras_serializable(package="hvd_magtag")
class StochasticPooling2D(keras.layers.Layer):
    """Stochastic pooling over two axes: ``[B, H, W, C] -> [B, H // ph, W // pw, C]`` (non-overlapping
    ``pool_size = (ph, pw)`` windows, "valid"). Same rule as :class:`StochasticPooling1D`."""

    def __init__(self, pool_size: int | Sequence[int] = (2, 2), seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        ph, pw = (pool_size, pool_size) if isinstance(pool_size, int) else tuple(pool_size)
        if ph < 1 or pw < 1:
            raise ValueError(f"StochasticPooling2D pool_size must be >= 1, got {pool_size}")
        self.pool_size = (int(ph), int(pw))
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        ph, pw = self.pool_size
        shape = ops.shape(inputs)
        h, w = shape[1] // ph, shape[2] // pw
        channels = inputs.shape[-1]
        x = inputs[:, : h * ph, : w * pw, :]
        x = ops.reshape(x, (-1, h, ph, w, pw, channels))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))  # [B, h, w, ph, pw, C]
        windows = ops.reshape(x, (-1, h, w, ph * pw, channels))
        return _stochastic_pick(windows, bool(training), self.seed_generator)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        ph, pw = self.pool_size
        return (b, None if h is None else h // ph, None if w is None else w // pw, c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "seed": self.seed}


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


# ---------------------------------------------------------------------------------------------------------
# Window folding and attention pooling (superpool models)
# ---------------------------------------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="hvd_magtag")
class FoldWindows(keras.layers.Layer):
    """``[B, W, *window_shape] -> [B * W, *window_shape]``: every window becomes a batch row."""

    def call(self, inputs):
        return ops.reshape(inputs, (-1, *inputs.shape[2:]))

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[2:])


@keras.saving.register_keras_serializable(package="hvd_magtag")
class UnfoldWindows(keras.layers.Layer):
    """``[B * n_windows, *feature_shape] -> [B, n_windows, *feature_shape]`` (inverse of FoldWindows)."""

    def __init__(self, n_windows: int, **kwargs):
        super().__init__(**kwargs)
        self.n_windows = int(n_windows)

    def call(self, inputs):
        return ops.reshape(inputs, (-1, self.n_windows, *inputs.shape[1:]))

    def compute_output_shape(self, input_shape):
        return (None, self.n_windows, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "n_windows": self.n_windows}


@keras.saving.register_keras_serializable(package="hvd_magtag")
class AttentionPooling(keras.layers.Layer):
    """Learned attention pooling over axis 1: ``[B, W, D] -> [B, D]``.

    Ilse, Tomczak & Welling 2018 (attention-based multiple-instance pooling):
    ``score_w = v . tanh(V h_w + b)``, ``alpha = softmax_w(score)``, output ``sum_w alpha_w h_w``.
    ``units`` is the hidden size of ``V``. The weights of the last call are not stored; use
    :meth:`attention_weights` to inspect them.
    """

    def __init__(self, units: int = 128, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)

    def build(self, input_shape):
        dim = input_shape[-1]
        self.hidden = self.add_weight(name="hidden", shape=(dim, self.units), initializer="glorot_uniform")
        self.hidden_bias = self.add_weight(name="hidden_bias", shape=(self.units,), initializer="zeros")
        self.score = self.add_weight(name="score", shape=(self.units, 1), initializer="glorot_uniform")

    def attention_weights(self, inputs):
        """``[B, W, D] -> [B, W]`` softmax weights over the W axis."""
        h = ops.tanh(ops.matmul(inputs, self.hidden) + self.hidden_bias)  # [B, W, units]
        return ops.softmax(ops.squeeze(ops.matmul(h, self.score), axis=-1), axis=-1)

    def call(self, inputs):
        alpha = self.attention_weights(inputs)
        return ops.sum(inputs * alpha[..., None], axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def window_pool(x, kind: str, *, name: str, attention_units: int = 128):
    """Pool window embeddings ``[B, W, D] -> [B, D]`` by "max", "mean" or learned "attention"."""
    if kind == "max":
        return keras.layers.GlobalMaxPooling1D(name=name)(x)
    if kind == "mean":
        return keras.layers.GlobalAveragePooling1D(name=name)(x)
    if kind == "attention":
        return AttentionPooling(attention_units, name=name)(x)
    raise ConfigError(f"model override window_pool must be one of {WINDOW_POOL_KINDS}, got {kind!r}")


# ---------------------------------------------------------------------------------------------------------
# Functional blocks
# ---------------------------------------------------------------------------------------------------------


def conv_bn_relu(
    x, filters: int, kernel_size, *, name: str, strides=1, dilation_rate=1, padding="same", dims=1
):
    """Conv (``{name}``) -> BatchNorm (``{name}_bn``) -> ReLU (``{name}_relu``); 1-D or 2-D (``dims``)."""
    conv = Conv1D if dims == 1 else keras.layers.Conv2D
    x = conv(filters, kernel_size, strides=strides, dilation_rate=dilation_rate, padding=padding, name=name)(
        x
    )
    x = BatchNorm(name=f"{name}_bn")(x)
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
        Conv1D(c, k, padding="same", name=f"{name}_conv{j}")(x)
        for j, (c, k) in enumerate(zip(per, kernel_sizes))
    ]
    if n == 1:
        x = branches[0]
    elif merge == "concat":
        x = keras.layers.Concatenate(name=f"{name}_merge")(branches)
    else:
        x = keras.layers.Add(name=f"{name}_merge")(branches)
    x = BatchNorm(name=f"{name}_bn")(x)
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
        shortcut = Conv1D(filters, 1, padding="same", name=f"{name}_shortcut")(x)
        shortcut = BatchNorm(name=f"{name}_shortcut_bn")(shortcut)
    else:
        shortcut = x
    for j in range(1, n_convs + 1):
        x = Conv1D(filters, kernel_size, padding="same", name=f"{name}_conv{j}")(x)
        x = BatchNorm(name=f"{name}_conv{j}_bn")(x)
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
        shortcut = BatchNorm(name=f"{name}_shortcut_bn")(shortcut)
    else:
        shortcut = x
    x = conv_bn_relu(x, filters, 3, strides=strides, name=f"{name}_conv1", dims=2)
    x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(x)
    x = BatchNorm(name=f"{name}_conv2_bn")(x)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_relu")(x)
