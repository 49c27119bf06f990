"""StochasticPooling2D (Zeiler & Fergus 2013)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from hvd_magtag.models.layers.stochastic_pooling1d import stochastic_pick


@keras.saving.register_keras_serializable(package="hvd_magtag")
class StochasticPooling2D(keras.layers.Layer):
    """Stochastic pooling over two axes: non-overlapping ``(ph, pw)`` windows, "valid"; the rule of
    :class:`~hvd_magtag.models.layers.StochasticPooling1D` (sampled in training, probability-weighted
    average at inference).

    Args:
        pool_size: int or (ph, pw), window size over (time, frequency) (each >= 1).
        seed: int or None, seed of the training draws.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: ``[batch, height, width, channels]`` -> ``[batch, height // ph, width // pw, channels]``.
        training: bool, sample (True) or take the probability-weighted average (False / None).

    Example:

    >>> pool = StochasticPooling2D((2, 3), seed=0)
    >>> keras.ops.shape(pool(keras.ops.ones((1, 8, 9, 2))))
    (1, 4, 3, 2)
    """

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
        return stochastic_pick(windows, bool(training), self.seed_generator)

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        ph, pw = self.pool_size
        return (b, None if h is None else h // ph, None if w is None else w // pw, c)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "seed": self.seed}
