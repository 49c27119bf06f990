"""FastConv1D: ``keras.layers.Conv1D`` with matmul-shaped training arithmetic on TensorFlow."""

from __future__ import annotations

import keras
from keras import ops

from hvd_magtag.models.kernels import conv1d


@keras.saving.register_keras_serializable(package="hvd_magtag")
class FastConv1D(keras.layers.Conv1D):
    """1-D convolution: the same variables, arguments and outputs as ``keras.layers.Conv1D``, computed faster
    where the layer's geometry allows it on the TensorFlow backend.

    - stride 1, ``"same"`` padding (SampleCNN's blocks, dilated or not): the kernel gradient is one matmul
      per tap (:func:`hvd_magtag.models.kernels.conv1d.conv1d_same`) instead of ``Conv2DBackpropFilter``;
    - non-overlapping frames (``strides == kernel_size``, ``"valid"``, no dilation: SampleCNN's frame conv
      ``conv0``): one reshape and one matmul, forward and backward.

    Anything else (other strides or paddings, groups, ``channels_first``, other backends) runs Keras's own
    op. Weights files and checkpoints hold the same variables (``kernel`` [k, Cin, filters], ``bias``).

    Args:
        filters: int, output channels.
        kernel_size: int, taps of the filter (in input steps).
        **kwargs: every other ``keras.layers.Conv1D`` argument (``strides``, ``padding``,
            ``dilation_rate``, ``use_bias``, ``activation``, initializers, ``name``, ``dtype``...).

    Call arguments:
        inputs: ``[batch, steps, channels]`` tensor (channels last).

    Example:

    >>> layer = FastConv1D(8, 3, padding="same")
    >>> keras.ops.shape(layer(keras.ops.zeros((2, 100, 1))))
    (2, 100, 8)
    """

    def _fast_conv(self, inputs):
        """The convolution (no bias) by one of the fast paths, or None when none applies."""
        if keras.backend.backend() != "tensorflow" or self.groups != 1 or self.data_format != "channels_last":
            return None
        (k,), (stride,), (dilation,) = self.kernel_size, self.strides, self.dilation_rate
        kernel = ops.cast(self.kernel, inputs.dtype)
        if stride == 1 and self.padding == "same":
            return conv1d.conv1d_same(inputs, kernel, dilation)
        if stride == k and dilation == 1 and self.padding == "valid" and inputs.shape[1] is not None:
            return conv1d.conv1d_frames(inputs, kernel)
        return None

    def call(self, inputs):
        outputs = self._fast_conv(inputs)
        if outputs is None:
            return super().call(inputs)
        if self.use_bias:
            outputs = ops.add(outputs, ops.reshape(ops.cast(self.bias, outputs.dtype), (1, 1, self.filters)))
        return outputs if self.activation is None else self.activation(outputs)
