"""UnfoldWindows: batch rows back into the windows of their clips."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="hvd_magtag")
class UnfoldWindows(keras.layers.Layer):
    """``[B * n_windows, *feature_shape] -> [B, n_windows, *feature_shape]`` (inverse of
    :class:`~hvd_magtag.models.layers.FoldWindows`).

    Args:
        n_windows: int, windows per clip.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: ``[batch * n_windows, *feature_shape]`` tensor.

    Example:

    >>> keras.ops.shape(UnfoldWindows(3)(keras.ops.ones((6, 16))))
    (2, 3, 16)
    """

    def __init__(self, n_windows: int, **kwargs):
        super().__init__(**kwargs)
        self.n_windows = int(n_windows)

    def call(self, inputs):
        return ops.reshape(inputs, (-1, self.n_windows, *inputs.shape[1:]))

    def compute_output_shape(self, input_shape):
        return (None, self.n_windows, *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "n_windows": self.n_windows}
