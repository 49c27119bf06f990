"""AttentionPooling: learned attention pooling over an axis (Ilse, Tomczak & Welling 2018)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="hvd_magtag")
class AttentionPooling(keras.layers.Layer):
    """Attention-based multiple-instance pooling over axis 1 (Ilse, Tomczak & Welling 2018):
    ``score_w = v . tanh(V h_w + b)``, ``alpha = softmax_w(score)``, output ``sum_w alpha_w h_w``.

    Used by superpool models to pool the window embeddings of a clip. The weights of a call are not
    stored; :meth:`attention_weights` recomputes them for inspection.

    Args:
        units: int, hidden size of ``V``.
        **kwargs: base layer arguments (``name``, ``dtype``...).

    Call arguments:
        inputs: ``[batch, windows, features]`` -> ``[batch, features]``.

    Example:

    >>> pool = AttentionPooling(16)
    >>> keras.ops.shape(pool(keras.ops.ones((2, 7, 32))))
    (2, 32)
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
