"""Model zoo: every registered model builds from its spec, tags, trains, and round-trips its weights.

Models are built tiny (``width`` 1/16, short windows) because the CPU is shared; the only full-size build is
SampleCNN 3^9 for its parameter count (no training).
"""

from __future__ import annotations

import inspect
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from hvd_magtag.models import blocks, create_model, get_entry, get_spec, layers, list_models
from hvd_magtag.models.raw import SAMPLECNN_3_9_PARAMS_50_TAGS

N_TAGS = 5
BATCH = 4
WIDTH = 0.0625
#: tiny overrides per registered model; a model missing here fails test_every_model_has_a_tiny_config
TINY: dict[str, dict] = {
    "samplecnn": dict(m=3, n=4),  # 243 samples
    "samplecnn_deep": dict(m=2, n=5),  # 64 samples
    "samplecnn_dilated": dict(m=3, n=4),
    "samplecnn_multikernel": dict(m=3, n=4, kernels=(3, 5)),
    "samplecnn_res": dict(m=3, n=4),
    "samplecnn_se": dict(m=3, n=4, amplifying_ratio=0.5),
    "samplecnn_rese": dict(m=3, n=4, amplifying_ratio=0.5),
    "samplecnn_crnn": dict(window=243, conv_blocks=2),
    "samplecnn_superpool": dict(m=3, n=4, n_windows=3),
    "fcn4": {},
    "crnn": dict(window=51200),  # 199 frames (GRU over 2 steps)
    "shortchunk_cnn": {},
    "shortchunk_resnet": {},
    "musicnn": {},  # 187 frames x 96 mels
    "vgg_musicnn": {},
}
RAW_MODELS = [name for name in TINY if name.startswith("samplecnn")]


def _tiny(name: str, **extra):
    return create_model(name, n_tags=N_TAGS, width=WIDTH, **TINY[name], **extra)


def _batch(model, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = (0.1 * rng.standard_normal((BATCH, *model.spec.input_shape()))).astype(np.float32)
    y = (rng.uniform(size=(BATCH, N_TAGS)) < 0.4).astype(np.float32)
    return x, y


def test_every_model_has_a_tiny_config():
    assert set(list_models()) == set(TINY)


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_builds_from_spec_and_follows_conventions(name):
    keras.utils.set_random_seed(0)
    model = _tiny(name)
    spec = get_spec(name, **TINY[name])
    assert model.spec == spec and model.registry_name == name
    assert tuple(model.input_shape[1:]) == spec.input_shape()
    x, _ = _batch(model)
    out = model(x, training=False).numpy()
    assert out.shape == (BATCH, N_TAGS)
    assert np.all((out > 0) & (out < 1))  # sigmoid
    assert model.layers[-1].name == "tags"
    owner = model.get_layer("window_encoder") if spec.windowing == "superpool" else model
    emb = owner.get_layer("embedding").output
    assert len(emb.shape) == 2  # one feature vector per window
    convs = [layer for layer in owner.layers if isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D)]
    assert convs, "no conv layers found"
    order = [int(re.match(r"(?:conv|block)(\d+)", c.name).group(1)) for c in convs]
    assert order == sorted(order), f"conv layers not in input-to-output order: {[c.name for c in convs]}"
    if spec.input == "raw":
        m = TINY[name].get("m", 3)
        assert convs[0].name == "conv0" and convs[0].strides == (m,) and convs[0].kernel_size == (m,)


@pytest.mark.parametrize("name", sorted(TINY))
def test_model_trains_and_weights_round_trip(name, tmp_path):
    keras.utils.set_random_seed(1)
    model = _tiny(name)
    x, y = _batch(model, seed=1)
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    bce = keras.losses.BinaryCrossentropy()
    losses = []
    for _ in range(20):
        with tf.GradientTape() as tape:
            loss = bce(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        assert all(g is not None for g in grads), "a trainable variable gets no gradient"
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        losses.append(float(loss))
    # dropout makes single steps noisy: compare the mean of the first and last steps
    assert np.mean(losses[-5:]) < np.mean(losses[:3]), f"loss did not decrease: {losses}"

    path = tmp_path / "x.weights.h5"
    model.save_weights(path)
    fresh = _tiny(name)
    before = fresh(x, training=False).numpy()
    trained = model(x, training=False).numpy()
    assert not np.allclose(before, trained), "a fresh model already matches: the round trip proves nothing"
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh(x, training=False).numpy(), trained)


POOLED_MODELS = [n for n in sorted(TINY) if "pool" in inspect.signature(get_entry(n).builder).parameters]


def test_every_raw_model_has_the_pool_option():
    assert set(RAW_MODELS) <= set(POOLED_MODELS)


@pytest.mark.parametrize("name", POOLED_MODELS)
def test_models_accept_stochastic_pooling(name):
    keras.utils.set_random_seed(2)
    model = _tiny(name, pool="stochastic")
    owner = model.get_layer("window_encoder") if model.spec.windowing == "superpool" else model
    stochastic = (layers.StochasticPooling1D, layers.StochasticPooling2D)
    maxpool = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D)
    assert any(isinstance(layer, stochastic) for layer in owner.layers)
    assert not any(isinstance(layer, maxpool) for layer in owner.layers)
    x, _ = _batch(model)
    assert model(x, training=True).shape == (BATCH, N_TAGS)
    assert model(x, training=False).shape == (BATCH, N_TAGS)


@pytest.mark.parametrize("window_pool", blocks.WINDOW_POOL_KINDS)
def test_superpool_pools_windows_with_a_shared_encoder(window_pool):
    keras.utils.set_random_seed(3)
    model = _tiny("samplecnn_superpool", window_pool=window_pool)
    encoder = model.get_layer("window_encoder")
    assert isinstance(encoder, keras.Model)
    assert tuple(encoder.input_shape[1:]) == (model.spec.window,)
    x, _ = _batch(model)
    out = model(x, training=False).numpy()
    assert out.shape == (BATCH, N_TAGS)
    # windows are pooled (max / mean / attention are symmetric): permuting the windows changes nothing
    np.testing.assert_allclose(model(x[:, ::-1], training=False).numpy(), out, rtol=1e-5, atol=1e-6)
    # ... but the clip's windows matter
    x2 = x.copy()
    x2[:, 0] *= 5.0
    assert not np.allclose(model(x2, training=False).numpy(), out)


def _samplecnn_3_9_reference_params(n_tags: int, with_bn: bool = True) -> int:
    """Lee et al. 2017 Table 1, layer by layer: conv weights + biases, BN scale + offset, dense."""
    plan = [(1, 128, 3)]  # (in, out, kernel): strided frame conv
    channels = [128, 128, 128, 256, 256, 256, 256, 256, 256, 512]
    plan += [(cin, cout, 3) for cin, cout in zip(channels[:-1], channels[1:])]
    plan += [(512, 512, 1)]
    conv = sum(k * cin * cout + cout for cin, cout, k in plan)
    bn = sum(2 * cout for _, cout, _ in plan)
    return conv + (bn if with_bn else 0) + 512 * n_tags + n_tags


def test_samplecnn_3_9_full_size_parameter_count():
    model = create_model("samplecnn", n_tags=50)
    assert model.spec.window == 59049 == 3**10
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    assert trainable == _samplecnn_3_9_reference_params(50) == SAMPLECNN_3_9_PARAMS_50_TAGS
    # the paper's table (BN not counted) says 1.9 M
    assert round(_samplecnn_3_9_reference_params(50, with_bn=False), -5) == 1_900_000
    assert model.get_layer("embedding").output.shape[-1] == 512
    assert model.get_layer("block9_pool").output.shape[1] == 1


def test_mn_overrides_derive_the_window():
    assert get_spec("samplecnn", m=3, n=4).window == 243
    assert get_spec("samplecnn_deep").window == 2**16
    assert get_spec("samplecnn_superpool", m=3, n=4, n_windows=2).input_shape() == (2, 243)
    with pytest.raises(ValueError, match="samplecnn: window 100 samples is too short"):
        create_model("samplecnn", n_tags=N_TAGS, width=WIDTH, m=3, n=4, window=100)


def test_bench_analytic_flops_count_conv_dense_gru_macs():
    from hvd_magtag.bench.models import layer_macs, model_flops

    inputs = keras.Input((10, 2))
    x = keras.layers.Conv1D(4, 3, padding="same", name="c")(inputs)  # 10 positions x 4 out x 3 x 2 in
    x = keras.layers.GRU(3, return_sequences=True, name="g")(x)  # 10 steps x 3 gates x (4*3 + 3*3)
    x = keras.layers.Dense(5, name="d")(x)  # 10 positions x 3 x 5
    model = keras.Model(inputs, x)
    assert layer_macs(model.get_layer("c")) == 10 * 4 * 3 * 2
    assert layer_macs(model.get_layer("g")) == 10 * 3 * (4 * 3 + 3 * 3)
    assert layer_macs(model.get_layer("d")) == 10 * 3 * 5
    assert layer_macs(model) == 240 + 630 + 150

    # a superpool model costs n_windows encoder passes plus its (small) head
    split = _tiny("samplecnn")
    pooled = _tiny("samplecnn_superpool", window_pool="mean")
    head = 2 * layer_macs(pooled.get_layer("tags"))
    assert (
        model_flops(pooled)
        == pooled.spec.n_windows * (model_flops(split) - 2 * layer_macs(split.get_layer("tags"))) + head
    )
