"""FusedBatchNorm: ``keras.layers.BatchNormalization`` on TensorFlow's fused kernel."""

from __future__ import annotations

import keras
from keras import ops

from hvd_magtag.models.kernels import batch_norm


@keras.saving.register_keras_serializable(package="hvd_magtag")
class FusedBatchNorm(keras.layers.BatchNormalization):
    """Batch normalisation with the variables, arguments and semantics of
    ``keras.layers.BatchNormalization``, computed by TensorFlow's fused kernel where it can be
    (:func:`hvd_magtag.models.kernels.batch_norm.fused_batch_norm`: one kernel each way, bfloat16 read
    directly, statistics accumulated in float32).

    As in Keras, the batch variance is the biased one in the normalisation *and* in the moving-variance
    update, with Keras's ``momentum`` and ``epsilon``; weights files and checkpoints hold the same
    variables (``gamma``, ``beta``, ``moving_mean``, ``moving_variance``). Falls back to the Keras
    computation when the fused kernel cannot express the call: another backend, a mask, renorm,
    synchronized BN, a normalised axis that is not the last one, rank > 4, or an unsupported dtype.

    Args:
        **kwargs: every ``keras.layers.BatchNormalization`` argument (``axis``, ``momentum``, ``epsilon``,
            ``center``, ``scale``, initializers, ``name``, ``dtype``...).

    Call arguments:
        inputs: tensor of rank 2-4 (channels last for the fused path).
        training: bool, normalise with the batch statistics and update the moving ones (True) or with
            the moving statistics (False / None).
        mask: optional; forces the Keras computation.

    Example:

    >>> layer = FusedBatchNorm()
    >>> keras.ops.shape(layer(keras.ops.ones((4, 10, 3)), training=True))
    (4, 10, 3)
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
            and keras.backend.standardize_dtype(inputs.dtype) in batch_norm.FUSED_DTYPES
        )

    def call(self, inputs, training=None, mask=None):
        if not self._fusable(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        x = inputs
        if x.dtype != self.compute_dtype and self.compute_dtype in batch_norm.FUSED_DTYPES:
            x = ops.cast(x, self.compute_dtype)
        gamma = ops.cast(self.gamma, "float32") if self.scale else ops.ones([channels], "float32")
        beta = ops.cast(self.beta, "float32") if self.center else ops.zeros([channels], "float32")
        train = bool(training) and self.trainable
        y, mean, variance = batch_norm.fused_batch_norm(
            x,
            gamma,
            beta,
            mean=None if train else ops.cast(self.moving_mean, "float32"),
            variance=None if train else ops.cast(self.moving_variance, "float32"),
            epsilon=self.epsilon,
            training=train,
        )
        if train:
            momentum = self.momentum
            self.moving_mean.assign(
                ops.cast(self.moving_mean, "float32") * momentum + mean * (1.0 - momentum)
            )
            self.moving_variance.assign(
                ops.cast(self.moving_variance, "float32") * momentum + variance * (1.0 - momentum)
            )
        return ops.cast(y, self.compute_dtype)
