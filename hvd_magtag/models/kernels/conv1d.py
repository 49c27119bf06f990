"""1-D convolution with matmul-shaped gradients (TensorFlow), used by
:class:`~hvd_magtag.models.layers.FastConv1D`.

oneDNN's backward-weights kernel (``Conv2DBackpropFilter``) is slow on SampleCNN's long, one-row activations
(``[B, 19683, 128]``, k = 3): a kernel gradient computed as one matmul per tap runs at matmul speed instead
(``python -m hvd_magtag.bench train`` compares both). The forward pass and the input gradient stay oneDNN's.
"""

from __future__ import annotations

import tensorflow as tf


def shifted_products(x, dy, offset: int):
    """``sum_{b,t} x[b, t + offset]^T dy[b, t]`` over the pairs inside one example: ``[Cin, Cout]``.

    ``x`` [B, T, Cin], ``dy`` [B, T, Cout]. One matmul on the flattened ``[B*T, C]`` views (a leading-axis
    slice, no copy) pairs every row with the row ``offset`` later, which includes ``|offset|`` pairs per
    example boundary that straddle two examples; those are subtracted (a small ``[B-1, |offset|, C]``
    product), in float32.
    """
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
    """``tf.nn.conv1d(x, kernel, 1, "SAME", dilations=dilation)``: ``x`` [B, T, Cin], ``kernel`` [k, Cin, Cout]
    -> [B, T, Cout], with the kernel gradient computed as one matmul per tap (:func:`shifted_products`)."""
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
            dk = tf.stack([shifted_products(x, dy, j * dilation - pad_left) for j in range(k)])
            return dx, dk

        return y, grad

    return conv(x, kernel)


def conv1d_frames(x, kernel):
    """Non-overlapping frames (stride = kernel size, "valid", no dilation): ``x`` [B, T, Cin], ``kernel``
    [k, Cin, Cout] -> [B, T // k, Cout] as one reshape and one matmul (forward and backward); trailing
    ``T % k`` samples are dropped, as the convolution drops them."""
    k, cin, cout = kernel.shape
    frames = x.shape[1] // k
    x = x[:, : frames * k] if frames * k != x.shape[1] else x
    return tf.matmul(tf.reshape(x, [-1, frames, k * cin]), tf.reshape(kernel, [k * cin, cout]))
