"""Blocks of the model zoo: stochastic pooling (both behaviours), attention pooling, window folding, blocks."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from hvd_magtag.models import blocks, layers

WINDOW = np.array([1.0, 2.0, 3.0, 0.0, 4.0], dtype=np.float32)  # one pooling window, p = a / 10


def _repeated_windows_1d(n_windows: int, channels: int = 2) -> np.ndarray:
    """[1, n_windows * k, C]: the same window repeated, channel c scaled by (c + 1)."""
    x = np.tile(WINDOW, n_windows)[None, :, None]
    return (x * np.arange(1, channels + 1, dtype=np.float32)).astype(np.float32)


def test_stochastic_pooling_1d_training_samples_window_values_with_p_proportional_to_activation():
    k, n = len(WINDOW), 4000
    layer = layers.StochasticPooling1D(k, seed=3)
    x = _repeated_windows_1d(n)
    out = layer(x, training=True).numpy()
    assert out.shape == (1, n, 2)
    for c in range(2):
        values = out[0, :, c] / (c + 1)
        # every output is one of the window's values (and never the zero-probability element)
        assert np.all(np.isin(values, WINDOW[WINDOW > 0]))
        p = WINDOW / WINDOW.sum()
        freq = np.array([np.mean(values == v) for v in WINDOW])
        # binomial std <= sqrt(0.25 / 4000) = 0.008; 0.03 is ~4 sigma
        np.testing.assert_allclose(freq, p, atol=0.03)


def test_stochastic_pooling_1d_inference_is_probability_weighted_average():
    k = len(WINDOW)
    layer = layers.StochasticPooling1D(k)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(3, 4 * k + 2, 5)).astype(np.float32)  # trailing 2 steps dropped ("valid")
    x[0, :k, 0] = 0.0  # an all-zero window pools to 0
    out = layer(x, training=False).numpy()
    assert out.shape == (3, 4, 5)
    win = x[:, : 4 * k].reshape(3, 4, k, 5)
    total = win.sum(axis=2)
    expected = np.where(total > 0, (win * win).sum(axis=2) / np.where(total > 0, total, 1), 0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert out[0, 0, 0] == 0.0
    # default (training=None) is inference
    np.testing.assert_allclose(layer(x).numpy(), out)


def test_stochastic_pooling_negative_values_get_zero_probability():
    layer = layers.StochasticPooling1D(3, seed=0)
    x = np.tile(np.array([-5.0, 2.0, -1.0], np.float32), 200)[None, :, None]
    out = layer(x, training=True).numpy()
    assert np.all(out == 2.0)
    np.testing.assert_allclose(layer(x, training=False).numpy(), 2.0)


def test_stochastic_pooling_2d_both_behaviours():
    ph, pw = 2, 3
    window = np.array([[1.0, 0.0, 2.0], [3.0, 0.5, 0.5]], np.float32)  # sum 7
    n_h, n_w = 40, 50
    x = np.tile(window, (n_h, n_w))[None, :, :, None]  # [1, 80, 150, 1]
    layer = layers.StochasticPooling2D((ph, pw), seed=1)
    out = layer(x, training=True).numpy()
    assert out.shape == (1, n_h, n_w, 1)
    flat = window.ravel()
    assert np.all(np.isin(out, flat[flat > 0]))
    freq = np.array([np.mean(out == v) for v in (1.0, 2.0, 3.0, 0.5)])
    # 0.5 occurs twice in the window: its probability is 2 * 0.5 / 7
    np.testing.assert_allclose(freq, [1 / 7, 2 / 7, 3 / 7, 1 / 7], atol=0.03)
    inf = layer(x, training=False).numpy()
    np.testing.assert_allclose(inf, (flat**2).sum() / flat.sum(), rtol=1e-6)


def test_stochastic_pooling_seeded_in_tf_function_and_gradient_reaches_picked_element():
    x = tf.constant(_repeated_windows_1d(64))
    a, b = layers.StochasticPooling1D(5, seed=7), layers.StochasticPooling1D(5, seed=7)

    @tf.function
    def fa(t):
        return a(t, training=True)

    @tf.function
    def fb(t):
        return b(t, training=True)

    first_a, first_b = fa(x).numpy(), fb(x).numpy()
    np.testing.assert_array_equal(first_a, first_b)  # same seed, same draws
    assert not np.array_equal(first_a, fa(x).numpy())  # the seed generator advances between calls
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = tf.reduce_sum(a(x, training=True))
    grad = tape.gradient(total, x).numpy()
    # exactly one element per window gets gradient 1, the rest 0 (as in max pooling)
    per_window = grad.reshape(1, 64, 5, 2).sum(axis=2)
    np.testing.assert_array_equal(per_window, np.ones((1, 64, 2)))


def test_stochastic_pooling_in_graph_mode():
    graph = tf.Graph()
    with graph.as_default():
        layer = layers.StochasticPooling1D(5, seed=2)
        x = tf.compat.v1.placeholder(tf.float32, shape=(None, None, 2))
        y = layer(x, training=True)
        init = tf.compat.v1.global_variables_initializer()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(init)
            out = sess.run(y, {x: _repeated_windows_1d(100)})
    assert out.shape == (1, 100, 2)
    assert np.all(np.isin(out[0, :, 0], WINDOW[WINDOW > 0]))


@pytest.mark.parametrize(
    "layer",
    [
        layers.StochasticPooling1D(4, seed=5, name="sp1"),
        layers.StochasticPooling2D((2, 3), seed=None, name="sp2"),
        layers.AttentionPooling(16, name="att"),
        layers.UnfoldWindows(3, name="unfold"),
        layers.FoldWindows(name="fold"),
    ],
)
def test_layers_round_trip_through_config(layer):
    config = keras.saving.serialize_keras_object(layer)
    clone = keras.saving.deserialize_keras_object(config)
    assert type(clone) is type(layer)
    assert clone.get_config() == layer.get_config()


def test_model_with_stochastic_pooling_saves_and_reloads_as_keras_file(tmp_path):
    inputs = keras.Input((12, 2))
    x = keras.layers.Conv1D(3, 3, padding="same", activation="relu")(inputs)
    x = layers.StochasticPooling1D(3, seed=1, name="sp")(x)
    model = keras.Model(inputs, keras.layers.GlobalMaxPooling1D()(x))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.get_layer("sp"), layers.StochasticPooling1D)
    x = np.random.default_rng(0).normal(size=(2, 12, 2)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)


def test_attention_pooling_is_softmax_weighted_sum_and_learns():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 8)).astype(np.float32)
    layer = layers.AttentionPooling(5)
    out = layer(x).numpy()
    alpha = layer.attention_weights(x).numpy()
    assert alpha.shape == (4, 6)
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out, np.einsum("bw,bwd->bd", alpha, x), rtol=1e-5, atol=1e-6)
    assert len(layer.trainable_weights) == 3


def test_fold_unfold_windows_round_trip():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    folded = layers.FoldWindows()(x)
    assert tuple(folded.shape) == (6, 4)
    np.testing.assert_array_equal(folded.numpy()[3], x[1, 0])
    np.testing.assert_array_equal(layers.UnfoldWindows(3)(folded).numpy(), x)


@pytest.mark.parametrize("merge,expected_channels", [("concat", 8), ("sum", 8)])
def test_multikernel_block_shapes_and_branches(merge, expected_channels):
    inputs = keras.Input((27, 4))
    out = blocks.multikernel_block(inputs, 8, (3, 5, 9), 3, name="block1", merge=merge)
    model = keras.Model(inputs, out)
    assert tuple(out.shape) == (None, 9, expected_channels)
    branches = [model.get_layer(f"block1_conv{j}") for j in range(3)]
    assert [b.kernel_size[0] for b in branches] == [3, 5, 9]
    widths = [b.filters for b in branches]
    assert widths == ([3, 3, 2] if merge == "concat" else [8, 8, 8])


def test_residual_and_se_blocks_shapes():
    inputs = keras.Input((27, 4))
    res = blocks.residual_block(inputs, 6, 3, 3, name="r", amplifying_ratio=0.5)
    same = blocks.residual_block(res, 6, 3, 3, name="s")
    se = blocks.se_block(inputs, 6, 3, 3, name="e", amplifying_ratio=2)
    model = keras.Model(inputs, [res, same, se])
    assert (
        tuple(res.shape) == (None, 9, 6)
        and tuple(same.shape) == (None, 3, 6)
        and tuple(se.shape) == (None, 9, 6)
    )
    model.get_layer("r_shortcut")  # channel change -> projection shortcut
    with pytest.raises(ValueError):
        model.get_layer("s_shortcut")  # same channels -> identity shortcut
    assert model.get_layer("e_se_excite0").units == 12  # 6 channels x amplifying ratio 2


def test_bad_pool_kind_names_the_option():
    inputs = keras.Input((9, 1))
    with pytest.raises(ValueError, match="pool"):
        blocks.pool1d(inputs, 3, "average", name="p")
    with pytest.raises(ValueError, match="window_pool"):
        blocks.window_pool(keras.Input((3, 4)), "median", name="wp")
