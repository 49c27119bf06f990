"""The fast layers (``layers.FusedBatchNorm`` on the fused kernel, ``layers.FastConv1D`` with matmul-shaped
gradients) against the stock Keras layers holding the same weights: outputs, every gradient, moving
statistics, fallbacks, and mixed precision; weights files written before their rename still load; the
layers' docstring examples hold."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from hvd_magtag.models import create_model, layers
from hvd_magtag.models import weights as weights_io

LEGACY = Path(__file__).parent / "fixtures" / "legacy_weights"


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
    fast, stock = _pair(layers.FusedBatchNorm, keras.layers.BatchNormalization, shape, momentum=0.9)
    x = (3.0 * np.random.default_rng(0).normal(size=shape) + 1.5).astype(np.float32)
    _assert_same(fast, stock, x, training=True)
    # the update used the biased batch variance, like Keras (the kernel returns the unbiased one)
    np.testing.assert_allclose(fast.moving_mean.numpy(), stock.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.moving_variance.numpy(), stock.moving_variance.numpy(), rtol=1e-5)
    assert not np.allclose(fast.moving_mean.numpy(), _pair(layers.FusedBatchNorm, keras.layers.BatchNormalization,
                                                            shape)[0].moving_mean.numpy())  # fmt: skip


def test_batchnorm_inference_matches_keras():
    shape = (4, 30, 6)
    fast, stock = _pair(layers.FusedBatchNorm, keras.layers.BatchNormalization, shape)
    x = np.random.default_rng(2).normal(size=shape).astype(np.float32)
    _assert_same(fast, stock, x, training=False)


def test_batchnorm_falls_back_for_a_non_last_axis_and_masks():
    shape = (2, 9, 4, 1)
    fast, stock = _pair(layers.FusedBatchNorm, keras.layers.BatchNormalization, shape, axis=2)
    x = np.random.default_rng(3).normal(size=shape).astype(np.float32)
    assert not fast._fusable(tf.constant(x), None)
    _assert_same(fast, stock, x, training=True)
    layer = layers.FusedBatchNorm()
    assert not layer._fusable(tf.zeros((2, 5, 3)), tf.ones((2, 5), bool))


def test_batchnorm_under_mixed_bfloat16_stays_close_to_keras():
    shape = (4, 300, 8)
    policy = keras.DTypePolicy("mixed_bfloat16")
    fast, stock = _pair(layers.FusedBatchNorm, keras.layers.BatchNormalization, shape, dtype=policy)
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
    fast, stock = _pair(layers.FastConv1D, keras.layers.Conv1D, shape, **case)
    x = np.random.default_rng(5).normal(size=shape).astype(np.float32)
    _assert_same(fast, stock, x, rtol=1e-5, atol=1e-5)


def test_conv1d_fast_paths_are_taken_where_documented():
    x = tf.zeros((2, 12, 3))

    def fast(**kwargs):
        layer = layers.FastConv1D(4, 3, **kwargs)
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
    for cls in (layers.FastConv1D, keras.layers.Conv1D):
        layer = cls(**kwargs, dtype=policy)
        layer.build(shape)
        layer.set_weights(stock.get_weights())
        _, g16 = _forward_backward(layer, x, True)
        errors[cls] = [float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(g16, g32)]
    fast, keras_own = errors[layers.FastConv1D], errors[keras.layers.Conv1D]
    assert fast[0] < 0.02 and fast[1] < 0.02, fast  # input and kernel gradients
    for f, k in zip(fast, keras_own):
        assert f <= 1.5 * k + 0.01, (fast, keras_own)


def test_fast_layers_round_trip_through_keras_files(tmp_path):
    inputs = keras.Input((27, 1))
    x = layers.FastConv1D(4, 3, strides=3, name="frames")(inputs)
    x = layers.FusedBatchNorm(name="bn")(layers.FastConv1D(4, 3, padding="same", name="conv")(x))
    model = keras.Model(inputs, keras.layers.GlobalMaxPooling1D()(x))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("conv"), layers.FastConv1D)
    assert isinstance(loaded.get_layer("bn"), layers.FusedBatchNorm)
    data = np.random.default_rng(7).normal(size=(2, 27, 1)).astype(np.float32)
    np.testing.assert_allclose(model(data), loaded(data), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(p.stem for p in LEGACY.glob("*.json")))
def test_weights_files_written_before_the_rename_load_exactly(name):
    """Files made by make_legacy_weights.py with the fast layers still named Conv1D / BatchNorm."""
    info = json.loads((LEGACY / f"{name}.json").read_text())
    path = LEGACY / f"{name}.weights.h5"
    model = create_model(info["model"], n_tags=3, **info["overrides"])
    assert weights_io.is_legacy(path, model)
    with pytest.raises(ValueError, match="could not be loaded"):
        model.load_weights(str(path))  # Keras alone cannot: the layout really is the old one
    model = create_model(info["model"], n_tags=3, **info["overrides"])
    weights_io.load_weights(model, path)
    with np.load(LEGACY / f"{name}.npz") as ref:
        np.testing.assert_array_equal(model(ref["x"], training=False).numpy(), ref["y"])


def test_current_weights_files_load_unchanged_and_layouts_map_with_shared_counters(tmp_path):
    model = create_model("samplecnn", n_tags=3, m=3, n=2, width=0.05)
    path = tmp_path / "now.weights.h5"
    model.save_weights(str(path))
    assert not weights_io.is_legacy(path, model)
    fresh = create_model("samplecnn", n_tags=3, m=3, n=2, width=0.05)
    weights_io.load_weights(fresh, path)
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # a stock Conv1D after a FastConv1D: in 0.1.0 both counted as "conv1d", now they have their own counters
    inputs = keras.Input((27, 1))
    x = layers.FastConv1D(2, 3, strides=3)(inputs)
    x = keras.layers.Conv1D(2, 3, padding="same")(layers.FusedBatchNorm()(x))
    mapping = weights_io.legacy_groups(keras.Model(inputs, x))
    assert mapping == {
        "layers/fast_conv1d": "layers/conv1d",
        "layers/fused_batch_norm": "layers/batch_norm",
        "layers/conv1d": "layers/conv1d_1",
    }


def test_no_layer_of_ours_shadows_a_keras_layer_name():
    ours = [getattr(layers, name) for name in layers.__all__]
    assert not [cls.__name__ for cls in ours if hasattr(keras.layers, cls.__name__)]


@pytest.mark.parametrize("name", layers.__all__)
def test_layer_docstrings_have_args_call_arguments_example_and_the_example_holds(name):
    cls = getattr(layers, name)
    doc = cls.__doc__ or ""
    assert all(section in doc for section in ("Args:", "Call arguments:", "Example:")), name
    finder = doctest.DocTestFinder(recurse=False)
    (test,) = finder.find(cls, name, globs={"keras": keras, name: cls})
    result = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE).run(test)
    assert test.examples and result.failed == 0, name
