"""StochasticPooling1D (Zeiler & Fergus 2013) and the pooling rule shared with StochasticPooling2D."""

from __future__ import annotations

import keras
from keras import ops


def stochastic_pick(windows, training: bool, seed_generator):
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
    """Stochastic pooling over time (Zeiler & Fergus 2013, "Stochastic pooling for regularization of deep
    convolutional neural networks"): non-overlapping windows of ``pool_size`` steps, "valid" (trailing
    ``steps % pool_size`` steps are dropped, like ``MaxPooling1D``).

    In training each window outputs one of its activations, drawn with probability proportional to the
    activation; at inference the probability-weighted average. Inputs are expected to be non-negative
    (after ReLU); negative values get probability 0. The layer owns a ``keras.random.SeedGenerator``, so
    draws are reproducible with ``seed`` eagerly, in ``tf.function`` and in graph mode.

    Args:
        pool_size: int, steps per window (>= 1).
        seed: int or None, seed of the training draws.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: ``[batch, steps, channels]`` tensor -> ``[batch, steps // pool_size, channels]``.
        training: bool, sample (True) or take the probability-weighted average (False / None).

    Example:

    >>> pool = StochasticPooling1D(3, seed=0)
    >>> keras.ops.shape(pool(keras.ops.ones((2, 9, 4))))
    (2, 3, 4)
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
        return stochastic_pick(windows, bool(training), self.seed_generator)

    def compute_output_shape(self, input_shape):
        b, t, c = input_shape
        return (b, None if t is None else t // self.pool_size, c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "seed": self.seed}
