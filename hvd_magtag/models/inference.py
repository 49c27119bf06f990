"""Inference-only rewrites of a model's graph that give the same numbers faster (used by the tagging module).

:func:`inference_model` clones a functional model with the *same layers and variables* and replaces each
**conv -> batch norm -> max over a whole axis** chain (musicnn's five front-end branches: Conv2D + ReLU, BN,
``MaxPooling2D((1, bins))``) by the max first and the batch norm on the pooled map:

- at inference a batch norm is a per-channel affine map ``y = a x + b`` (``a = gamma / sqrt(var + eps)``),
  monotone in ``x``, increasing where ``gamma >= 0`` and decreasing where ``gamma < 0``, and so is its float
  arithmetic (each rounding is monotone); ReLU is monotone too. So ``max_f BN(relu(z))`` is
  ``BN(relu(max_f z))`` on channels with ``gamma >= 0`` and ``BN(relu(-max_f(-z)))`` on the others;
- the sign is folded into the kernel and bias (``conv(x, -k) - b == -(conv(x, k) + b)`` exactly: negation is
  exact in floating point), so one max over the conv output serves every channel;
- the ReLU and the batch norm then run on ``[B, T, 1, C]`` instead of ``[B, T, F, C]``.

The result is bit-identical to the original model (tests/test_inference.py checks every registry model with
random batch-norm statistics, negative scales included, in float32 and bfloat16), and it saves the two
memory-bound passes over the largest activations: MTT_musicnn's window model on 11 windows (one 30 s clip)
took 780 -> 450 ms of CPU in float32 and 1030 -> 635 ms in bfloat16 on this machine's 2 cores (its
``model alone`` row in ``python -m hvd_magtag.bench tag --model MTT_musicnn``). Why not a Grappler/oneDNN fusion: TensorFlow fuses conv + bias + activation, not a following
batch norm and reduction.

Layers that appear more than once in the graph (shared layers) are left as they are.
"""

from __future__ import annotations

import keras
from keras import ops

#: Conv activations that commute with a max (monotone non-decreasing): Keras activation function names.
MONOTONE_ACTIVATIONS = ("relu", "linear")


def _single_use(layer) -> bool:
    return len(layer._inbound_nodes) == 1 and len(layer._outbound_nodes) == 1


def _parent(layer):
    parents = layer._inbound_nodes[0].parent_nodes
    return parents[0].operation if len(parents) == 1 else None


def _full_axis(pool) -> int | None:
    """The axis (1 or 2) a channels-last ``MaxPooling2D`` reduces whole (pool size = stride = that axis's size,
    1 on the other), or None."""
    if not isinstance(pool, keras.layers.MaxPooling2D) or pool.data_format != "channels_last":
        return None
    shape = pool.input.shape  # [B, H, W, C]
    if tuple(pool.pool_size) != tuple(pool.strides) or pool.padding != "valid":
        return None
    for axis, other in ((1, 2), (2, 1)):
        if pool.pool_size[axis - 1] == shape[axis] and pool.pool_size[other - 1] == 1:
            return axis
    return None


def pooled_branches(model) -> dict[str, tuple]:
    """``{conv name: (conv, batch norm, pool, axis)}`` of every chain :func:`inference_model` rewrites."""
    found = {}
    for pool in model.layers:
        axis = _full_axis(pool)
        if axis is None or not _single_use(pool):
            continue
        bn = _parent(pool)
        if not isinstance(bn, keras.layers.BatchNormalization) or not _single_use(bn):
            continue
        if bn.axis not in (-1, [-1], [3], 3) or not bn.scale:
            continue
        conv = _parent(bn)
        if not isinstance(conv, keras.layers.Conv2D) or not _single_use(conv):
            continue
        if conv.groups != 1 or conv.data_format != "channels_last":
            continue
        if keras.activations.serialize(conv.activation) not in MONOTONE_ACTIVATIONS:
            continue
        found[conv.name] = (conv, bn, pool, axis)
    return found


class _PooledBranch(keras.layers.Layer):
    """``pool(bn(conv(x)))`` computed as ``bn(act(sign * max(conv(x, sign * k) + sign * b)))``: see the module
    docstring. Built on an existing model's layers (their variables), for inference; never saved on its own
    (an exported SavedModel traces it)."""

    def __init__(self, conv, bn, axis: int, **kwargs):
        super().__init__(name=f"{conv.name}_pooled", dtype=conv.dtype_policy, **kwargs)
        self.conv, self.bn, self.axis = conv, bn, axis

    def call(self, inputs, mask=None, training=None):
        dtype = self.compute_dtype
        sign = ops.where(ops.greater_equal(self.bn.gamma, 0.0), 1.0, -1.0)  # [C], float32
        kernel = ops.cast(ops.convert_to_tensor(self.conv.kernel) * sign, dtype)
        z = self.conv.convolution_op(ops.cast(inputs, dtype), kernel)
        if self.conv.use_bias:
            z = ops.add(
                z, ops.reshape(ops.cast(ops.convert_to_tensor(self.conv.bias) * sign, dtype), (1, 1, 1, -1))
            )
        pooled = ops.multiply(ops.max(z, axis=self.axis, keepdims=True), ops.cast(sign, dtype))
        return self.bn(self.conv.activation(pooled), training=False)

    def compute_output_shape(self, input_shape):
        shape = list(self.conv.compute_output_shape(input_shape))
        shape[self.axis] = 1
        return tuple(shape)


class _PassThrough(keras.layers.Layer):
    """The batch norm and pool a :class:`_PooledBranch` absorbed."""

    def call(self, inputs, mask=None, training=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def inference_model(model):
    """``model`` (functional) with its conv -> BN -> whole-axis max chains rewritten (:func:`pooled_branches`),
    sharing its layers and variables; ``model`` itself when there is none. Call it with ``training=False``."""
    branches = pooled_branches(model)
    if not branches:
        return model
    absorbed = {}
    for conv, bn, pool, axis in branches.values():
        absorbed[conv.name] = _PooledBranch(conv, bn, axis)
        absorbed[bn.name] = _PassThrough(name=f"{bn.name}_absorbed")
        absorbed[pool.name] = _PassThrough(name=f"{pool.name}_absorbed")
    return keras.models.clone_model(model, clone_function=lambda layer: absorbed.get(layer.name, layer))
