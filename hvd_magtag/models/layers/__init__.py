"""The zoo's own Keras layers, one per file (keras-hub's layout): serializable, weights built in ``build``.

- :class:`FastConv1D`, :class:`FusedBatchNorm` - Keras's Conv1D / BatchNormalization (same variables and
  results) on faster TensorFlow arithmetic (:mod:`hvd_magtag.models.kernels`).
- :class:`StochasticPooling1D`, :class:`StochasticPooling2D` - Zeiler & Fergus 2013.
- :class:`AttentionPooling` - attention pooling over windows (Ilse et al. 2018).
- :class:`FoldWindows`, :class:`UnfoldWindows` - ``[B, W, ...] <-> [B * W, ...]`` around a window encoder.
"""

from hvd_magtag.models.layers.attention_pooling import AttentionPooling
from hvd_magtag.models.layers.fast_conv1d import FastConv1D
from hvd_magtag.models.layers.fold_windows import FoldWindows
from hvd_magtag.models.layers.fused_batch_norm import FusedBatchNorm
from hvd_magtag.models.layers.stochastic_pooling1d import StochasticPooling1D
from hvd_magtag.models.layers.stochastic_pooling2d import StochasticPooling2D
from hvd_magtag.models.layers.unfold_windows import UnfoldWindows

__all__ = [
    "AttentionPooling",
    "FastConv1D",
    "FoldWindows",
    "FusedBatchNorm",
    "StochasticPooling1D",
    "StochasticPooling2D",
    "UnfoldWindows",
]
