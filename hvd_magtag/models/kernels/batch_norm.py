"""Batch normalisation on TensorFlow's fused kernel, used by
:class:`~hvd_magtag.models.layers.FusedBatchNorm`.

``FusedBatchNormV3`` / ``FusedBatchNormGradV3`` (oneDNN on CPU, cuDNN on GPU) compute the statistics and
the normalisation in one kernel each way, read bfloat16 directly and accumulate in float32, where Keras 3
makes a pass over the activation per op (mean, squared difference, mean, subtract, multiply, add) and as
many again backwards (``python -m hvd_magtag.bench train`` compares both).
"""

from __future__ import annotations

import tensorflow as tf

#: input dtypes the fused kernel takes (scale, offset and statistics stay float32)
FUSED_DTYPES = ("float32", "bfloat16", "float16")


def fused_batch_norm(x, gamma, beta, mean=None, variance=None, *, epsilon: float, training: bool):
    """Normalise ``x`` [..., C] (rank 2-4, channels last) with scale ``gamma`` and offset ``beta`` [C].

    training: batch statistics; returns (y, batch mean [C], *biased* batch variance [C]) - the kernel
    returns the Bessel-corrected variance, scaled back here by (n - 1) / n, as Keras's moving-variance
    update expects. Otherwise ``mean`` / ``variance`` [C] are used and returned unchanged. ``y`` has
    ``x``'s shape and dtype.
    """
    shape = tf.shape(x)
    channels = x.shape[-1]
    flat = tf.reshape(x, [1, -1, 1, channels]) if len(x.shape) != 4 else x
    if training:
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            flat, gamma, beta, epsilon=epsilon, data_format="NHWC", is_training=True
        )
        count = tf.cast(tf.size(flat) // channels, tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)  # the biased batch variance
    else:
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            flat, gamma, beta, mean=mean, variance=variance, epsilon=epsilon, data_format="NHWC",
            is_training=False,
        )  # fmt: skip
    return (tf.reshape(y, shape) if len(x.shape) != 4 else y), mean, variance
