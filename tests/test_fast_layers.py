"""The fast layers (``blocks.BatchNorm`` on the fused kernel, ``blocks.Conv1D`` with matmul-shaped
gradients) against the stock Keras layers holding the same weights: outputs, every gradient, moving
statistics, fallbacks, and mixed precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from hvd_magtag.models import blocks


def _pair(fast_cls, stock_cls, shape, **kwargs):
    """(fast, stock) layers built for ``shape`` with identical (random, non-trivial) weights."""
    fast, stock = fast_cls(**kwargs), stock_cls(**kwargs)
    fast.build(shape)
    stock.build(shape)
    rng = np.random.default_rng(1)
    for fv, sv in zip(fast.weights, stock.weights):
        assert fv.path.split("/")[-1] == sv.path.split("/")[-1]
        value = rng.uniform(0.5, 1.5, fv.shape) if "variance" in fv.path else rng.normal(size=fv.shape)
        fv.assign(value.astype(np.float32))
        sv.assign(value.astype(np.float32))
    return fast, stock


def _forward_backward(layer, x, training):
    """(output, d loss / d input, d loss / d trainable weights) for a loss that weights every output."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training) if isinstance(layer, keras.layers.BatchNormalization) else layer(x)
        weights = tf.reshape(tf.cos(tf.range(tf.size(y), dtype=tf.float32)), tf.shape(y))
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return y.numpy().astype(np.float64), [g.numpy().astype(np.float64) for g in grads]


def _assert_same(fast, stock, x, training=True, rtol=1e-4, atol=1e-4):
    y_fast, g_fast = _forward_backward(fast, x, training)
    y_stock, g_stock = _forward_backward(stock, x, training)
    np.testing.assert_allclose(y_fast, y_stock, rtol=rtol, atol=atol)
    assert len(g_fast) == len(g_stock)
    for a, b in zip(g_fast, g_stock):
        scale = max(1.0, float(np.abs(b).max()))
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol * scale)


@pytest.mark.parametrize("shape", [(6, 5), (3, 40, 4), (2, 7, 5, 3)])
def test_batchnorm_training_matches_keras_outputs_gradients_and_moving_statistics(shape):
    fast, stock = _pair(blocks.BatchNorm, keras.layers.BatchNormalization, shape, momentum=0.9)
    x = (3.0 * np.random.default_rng(0).normal(size=shape) + 1.5).astype(np.float32)
    _assert_same(fast, stock, x, training=True)
    # the update used the biased batch variance, like Keras (the kernel returns the unbiased one)
    np.testing.assert_allclose(fast.moving_mean.numpy(), stock.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.moving_variance.numpy(), stock.moving_variance.numpy(), rtol=1e-5)
    assert not np.allclose(fast.moving_mean.numpy(), _pair(blocks.BatchNorm, keras.layers.BatchNormalization,
                                                            shape)[0].moving_mean.numpy())  # fmt: skip


def test_batchnorm_inference_matches_keras():
    shape = (4, 30, 6)
    fast, stock = _pair(blocks.BatchNorm, keras.layers.BatchNormalization, shape)
    x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    _assert_same(fast, stock, x, training=False)


def test_batchnorm_falls_back_for_a_non_last_axis_and_masks():
    shape = (2, 9, 4, 1)
    fast, stock = _pair(blocks.BatchNorm, keras.layers.BatchNormalization, shape, axis=2)
    x = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    assert not fast._fusable(tf.constant(x), None)
    _assert_same(fast, stock, x, training=True)
    layer = blocks.BatchNorm()
    assert not layer._fusable(tf.zeros((2, 5, 3)), tf.ones((2, 5), bool))


def test_batchnorm_under_mixed_bfloat16_stays_close_to_keras():
    shape = (4, 300, 8)
    policy = keras.DTypePolicy("mixed_bfloat16")
    fast, stock = _pair(blocks.BatchNorm, keras.layers.BatchNormalization, shape, dtype=policy)
    x = (2.0 * np.random.default_rng(4).normal(size=shape) + 0.5).astype(np.float32)
    y_fast, g_fast = _forward_backward(fast, x, True)
    y_stock, g_stock = _forward_backward(stock, x, True)
    assert fast.compute_dtype == "bfloat16" and fast.moving_mean.dtype == "float32"
    np.testing.assert_allclose(y_fast, y_stock, atol=0.05)  # bfloat16 carries ~3 significant digits
    for a, b in zip(g_fast, g_stock):
        np.testing.assert_allclose(a, b, atol=0.03 * float(np.abs(b).max()))


CONV_CASES = [
    dict(filters=5, kernel_size=3, padding="same"),  # SampleCNN blocks
    dict(filters=4, kernel_size=3, padding="same", dilation_rate=2),  # dilated blocks
    dict(filters=3, kernel_size=4, padding="same"),  # even kernel: TF puts the extra pad on the right
    dict(filters=3, kernel_size=9, padding="same", dilation_rate=3),  # receptive field > T: all straddle
    dict(filters=6, kernel_size=1, padding="same"),  # 1x1 conv
    dict(filters=6, kernel_size=3, strides=3, padding="valid"),  # the frame conv
    dict(filters=2, kernel_size=3, strides=3, padding="valid", use_bias=False),  # trailing samples dropped
    dict(filters=2, kernel_size=3, strides=2, padding="valid"),  # no fast path: Keras's op
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_conv1d_matches_keras_outputs_and_gradients(case):
    steps = 20 if case.get("strides", 1) == 1 else 22
    shape = (3, steps, 4)  # several examples: the per-tap matmuls must not mix them at the boundaries
    fast, stock = _pair(blocks.Conv1D, keras.layers.Conv1D, shape, **case)
    x = np.random.default_rng(5).normal(size=shape).astype(np.float32)
    _assert_same(fast, stock, x, rtol=1e-5, atol=1e-5)


def test_conv1d_fast_paths_are_taken_where_documented():
    x = tf.zeros((2, 12, 3))

    def fast(**kwargs):
        layer = blocks.Conv1D(4, 3, **kwargs)
        layer.build(x.shape)
        return layer._fast_conv(x) is not None

    assert fast(padding="same") and fast(strides=3)
    assert not fast(strides=2) and not fast(padding="causal") and not fast(padding="valid")


def test_conv1d_under_bfloat16_is_as_close_to_float32_as_the_keras_layer():
    shape = (4, 729, 16)
    policy = keras.DTypePolicy("mixed_bfloat16")
    kwargs = dict(filters=8, kernel_size=3, padding="same")
    stock = keras.layers.Conv1D(**kwargs)
    stock.build(shape)
    x = np.random.default_rng(6).normal(size=shape).astype(np.float32)
    _, g32 = _forward_backward(stock, x, True)
    errors = {}
    for cls in (blocks.Conv1D, keras.layers.Conv1D):
        layer = cls(**kwargs, dtype=policy)
        layer.build(shape)
        layer.set_weights(stock.get_weights())
        _, g16 = _forward_backward(layer, x, True)
        errors[cls] = [float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(g16, g32)]
    fast, keras_own = errors[blocks.Conv1D], errors[keras.layers.Conv1D]
    assert fast[0] < 0.02 and fast[1] < 0.02, fast  # input and kernel gradients
    for f, k in zip(fast, keras_own):
        assert f <= 1.5 * k + 0.01, (fast, keras_own)


def test_fast_layers_round_trip_through_keras_files(tmp_path):
    inputs = keras.Input((27, 1))
    x = blocks.Conv1D(4, 3, strides=3, name="frames")(inputs)
    x = blocks.BatchNorm(name="bn")(blocks.Conv1D(4, 3, padding="same", name="conv")(x))
    model = keras.Model(inputs, keras.layers.GlobalMaxPooling1D()(x))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("conv"), blocks.Conv1D)
    assert isinstance(loaded.get_layer("bn"), blocks.BatchNorm)
    data = np.random.default_rng(7).normal(size=(2, 27, 1)).astype(np.float32)
    np.testing.assert_allclose(model(data), loaded(data), rtol=1e-6, atol=1e-6)
