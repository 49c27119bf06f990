"""FoldWindows: every window of a clip becomes a batch row."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="hvd_magtag")
class FoldWindows(keras.layers.Layer):
    """``[B, W, *window_shape] -> [B * W, *window_shape]``, so one window-encoder sub-model runs on every
    window of a clip (inverse: :class:`~hvd_magtag.models.layers.UnfoldWindows`).

    Args:
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: ``[batch, windows, *window_shape]`` tensor.

    Example:

    >>> keras.ops.shape(FoldWindows()(keras.ops.ones((2, 3, 100))))
    (6, 100)
    """

    def call(self, inputs):
        return ops.reshape(inputs, (-1, *inputs.shape[2:]))

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[2:])
