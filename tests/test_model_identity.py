"""Model identity: each registered model's defining structure, so that a variant that silently became
another (a dilated, ReSE, CRNN or FCN model turned plain SampleCNN) fails here.

Structure is read from the built Keras graph: layer classes, kernel sizes, strides, dilation rates, pool
sizes, which layer feeds which (branches, residual sums, squeeze-excitation gates), recurrent layers and the
pooling across windows of superpool models. Models are built at their default options with ``width`` 1/16
(the structure does not depend on width; no forward pass), except the parameter counts, which are of the
full-size models against the published figures (sources cited at each test).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hvd_magtag.models import blocks, create_model, get_entry, layers, list_models, names

WIDTH = 0.0625
N_TAGS = 50
MAX_POOLS = (keras.layers.MaxPooling1D, keras.layers.MaxPooling2D)
STOCHASTIC_POOLS = (layers.StochasticPooling1D, layers.StochasticPooling2D)
CONVS = (keras.layers.Conv1D, keras.layers.Conv2D)


def build(name: str, **overrides):
    return create_model(name, n_tags=N_TAGS, width=WIDTH, **overrides)


def of_type(model, cls) -> list:
    return [layer for layer in model.layers if isinstance(layer, cls)]


def named(model, pattern: str) -> list:
    import re

    return [layer for layer in model.layers if re.fullmatch(pattern, layer.name)]


def feeds(layer) -> list[str]:
    """Names of the layers whose outputs ``layer`` reads (in the graph it was last called in: a sub-model's
    call inside its parent, not its own input layer)."""
    return [t._keras_history.operation.name for t in layer._inbound_nodes[-1].input_tensors]


def trainable_params(model) -> int:
    return sum(int(np.prod(v.shape)) for v in model.trainable_weights)


def c(channels: int) -> int:
    return blocks.scaled(channels, WIDTH)


LEE_CHANNELS = [128, 128, 256, 256, 256, 256, 256, 256, 512]  # Lee et al. 2017 Table 1, blocks 1-9


def assert_lee2017_trunk(model, m: int, n: int, block_convs: str = r"block\d+_conv"):
    """Frame conv (m taps, stride m, valid), n blocks whose convs have m taps / stride 1 / "same", each
    block ending in a pool of m; channel plan 128, 128, 256 ..., 512 (scaled)."""
    conv0 = model.get_layer(names.FRAME_CONV)
    assert (conv0.kernel_size, conv0.strides, conv0.padding) == ((m,), (m,), "valid")
    assert conv0.filters == c(128) and conv0.dilation_rate == (1,)
    convs = named(model, block_convs)
    assert len(convs) == n, [cv.name for cv in convs]
    channels = [128 if i < 2 else 256 for i in range(n - 1)] + [512]
    assert [cv.filters for cv in convs] == [c(ch) for ch in channels]
    assert all(cv.kernel_size == (m,) and cv.strides == (1,) and cv.padding == "same" for cv in convs)
    pools = named(model, r"block\d+_pool")
    assert [p.name for p in pools] == [f"block{i}_pool" for i in range(1, n + 1)]
    assert all(p.pool_size == (m,) for p in pools)
    assert model.get_layer(f"block{n}_pool").output.shape[1] == 1  # m^(n+1) samples -> 1 step


# -- the SampleCNN family ---------------------------------------------------------------------------------
def test_samplecnn_is_lee2017_3_9_and_nothing_else():
    model = build("samplecnn")
    assert model.spec.window == 3**10 and model.input_shape == (None, 59049)
    assert_lee2017_trunk(model, 3, 9)
    top = model.get_layer("conv10")
    assert top.kernel_size == (1,) and top.filters == c(512)
    assert all(cv.dilation_rate == (1,) for cv in of_type(model, CONVS))
    for cls in (keras.layers.Add, keras.layers.Multiply, keras.layers.Concatenate, keras.layers.GRU):
        assert not of_type(model, cls), cls
    assert len(of_type(model, CONVS)) == 11  # conv0 + 9 blocks + conv10
    assert isinstance(model.get_layer(names.EMBEDDING_LAYER), keras.layers.GlobalMaxPooling1D)
    assert model.get_layer("dropout").rate == 0.5
    assert feeds(model.get_layer(names.OUTPUT_LAYER)) == ["dropout"]


def test_samplecnn_deep_is_the_2_15_model():
    model = build("samplecnn_deep")
    assert model.spec.window == 2**16
    assert_lee2017_trunk(model, 2, 15)


def test_samplecnn_dilated_dilates_every_block_conv():
    model = build("samplecnn_dilated")
    assert_lee2017_trunk(model, 3, 9)
    assert [cv.dilation_rate for cv in named(model, r"block\d+_conv")] == [(2,)] * 9
    assert model.get_layer("conv0").dilation_rate == (1,) and model.get_layer("conv10").dilation_rate == (1,)
    assert build("samplecnn_dilated", dilation=3).get_layer("block5_conv").dilation_rate == (3,)


def test_samplecnn_multikernel_runs_parallel_branches_of_each_kernel_size():
    model = build("samplecnn_multikernel")
    for i in range(1, 10):
        branches = named(model, rf"block{i}_conv\d")
        assert [b.kernel_size for b in branches] == [(3,), (5,), (9,)]
        assert len({tuple(feeds(b)) for b in branches}) == 1  # all read the same tensor
        merge = model.get_layer(f"block{i}_merge")
        assert isinstance(merge, keras.layers.Concatenate)
        assert sorted(feeds(merge)) == sorted(b.name for b in branches)
        assert sum(b.filters for b in branches) == c(LEE_CHANNELS[i - 1])
        assert model.get_layer(f"block{i}_pool").pool_size == (3,)
    summed = build("samplecnn_multikernel", merge="sum", kernels=(3, 7))
    assert isinstance(summed.get_layer("block4_merge"), keras.layers.Add)
    assert [b.kernel_size for b in named(summed, r"block4_conv\d")] == [(3,), (7,)]


def assert_multilevel_head(model, n: int = 9):
    """Kim et al. 2018: global max of the last 3 blocks, concatenated, Dense(D) + BN + ReLU embedding."""
    gmps = named(model, r"block\d+_gmp")
    assert [g.name for g in gmps] == [f"block{i}_gmp" for i in (n - 2, n - 1, n)]
    assert all(isinstance(g, keras.layers.GlobalMaxPooling1D) for g in gmps)
    assert sorted(feeds(model.get_layer("multilevel"))) == sorted(g.name for g in gmps)
    width = c(256) + c(256) + c(512)
    assert model.get_layer("fc").units == width  # 1024 at full width
    assert feeds(model.get_layer(names.EMBEDDING_LAYER)) == ["fc_bn"]


def test_samplecnn_se_gates_every_block_and_aggregates_three_levels():
    model = build("samplecnn_se")
    assert_lee2017_trunk(model, 3, 9)
    assert not of_type(model, keras.layers.Add)
    for i, channels in enumerate(LEE_CHANNELS, start=1):
        squeeze = model.get_layer(f"block{i}_se_squeeze")
        assert isinstance(squeeze, keras.layers.GlobalAveragePooling1D)
        excite0, excite1 = model.get_layer(f"block{i}_se_excite0"), model.get_layer(f"block{i}_se_excite1")
        assert excite0.units == max(1, int(c(channels) * 0.125)) and excite1.units == c(channels)
        assert excite1.activation.__name__ == "sigmoid"
        scale = model.get_layer(f"block{i}_se_scale")
        assert isinstance(scale, keras.layers.Multiply)
        assert f"block{i}_conv_relu" in feeds(scale)  # gates multiply the block's activation
        assert feeds(model.get_layer(f"block{i}_pool")) == [scale.name]  # and the pool reads the gated map
    assert_multilevel_head(model)


@pytest.mark.parametrize("name, excited", [("samplecnn_res", False), ("samplecnn_rese", True)])
def test_samplecnn_res_and_rese_sum_a_shortcut_with_two_convs(name, excited):
    model = build(name)
    channels_in = [128] + LEE_CHANNELS[:-1]
    for i, (cin, cout) in enumerate(zip(channels_in, LEE_CHANNELS), start=1):
        convs = named(model, rf"block{i}_conv\d")
        assert [cv.name for cv in convs] == [f"block{i}_conv1", f"block{i}_conv2"]
        assert all(cv.kernel_size == (3,) and cv.filters == c(cout) for cv in convs)
        assert model.get_layer(f"block{i}_conv1_dropout").rate == 0.2
        add = model.get_layer(f"block{i}_add")
        sources = feeds(add)
        residual = f"block{i}_se_scale" if excited else f"block{i}_conv2_bn"
        assert residual in sources, sources
        if cin != cout:  # projection shortcut: 1x1 conv + BN
            assert f"block{i}_shortcut_bn" in sources
            assert model.get_layer(f"block{i}_shortcut").kernel_size == (1,)
        else:  # identity: the previous block's output
            assert (f"block{i - 1}_pool" if i > 1 else "conv0_relu") in sources
        assert feeds(model.get_layer(f"block{i}_relu")) == [add.name]
        assert feeds(model.get_layer(f"block{i}_pool")) == [f"block{i}_relu"]
        if excited:
            assert f"block{i}_conv2_bn" in feeds(model.get_layer(f"block{i}_se_scale"))
    assert bool(of_type(model, keras.layers.Multiply)) == excited
    assert len(of_type(model, keras.layers.Add)) == 9
    assert_multilevel_head(model)


def test_samplecnn_crnn_feeds_five_conv_blocks_into_two_grus():
    model = build("samplecnn_crnn")
    convs = named(model, r"block\d+_conv")
    assert [cv.filters for cv in convs] == [c(ch) for ch in (128, 128, 256, 256, 256)]
    assert model.get_layer("conv0").strides == (3,)
    grus = of_type(model, keras.layers.GRU)
    assert [g.name for g in grus] == ["gru1", names.EMBEDDING_LAYER]
    assert grus[0].return_sequences and not grus[1].return_sequences
    assert feeds(grus[0]) == ["block5_pool"] and grus[0].input.shape[1] == 81  # 59049 / 3^6 steps
    assert feeds(grus[1]) == ["gru1"]
    assert not named(model, "conv6")


@pytest.mark.parametrize("window_pool, cls", [
    ("attention", layers.AttentionPooling),
    ("max", keras.layers.GlobalMaxPooling1D),
    ("mean", keras.layers.GlobalAveragePooling1D),
])  # fmt: skip
def test_samplecnn_superpool_encodes_each_window_then_pools_across_windows(window_pool, cls):
    model = build("samplecnn_superpool", window_pool=window_pool)
    assert model.input_shape == (None, 7, 59049)
    encoder = model.get_layer(names.WINDOW_ENCODER)
    assert isinstance(encoder, keras.Model) and encoder.input_shape == (None, 59049)
    assert_lee2017_trunk(encoder, 3, 9)
    assert feeds(encoder) == [names.FOLD_WINDOWS]
    unfold = model.get_layer(names.UNFOLD_WINDOWS)
    assert isinstance(unfold, layers.UnfoldWindows) and unfold.n_windows == 7
    assert feeds(unfold) == [names.WINDOW_ENCODER]
    pool = model.get_layer(names.WINDOW_POOL)
    assert isinstance(pool, cls) and feeds(pool) == [names.UNFOLD_WINDOWS]
    assert tuple(pool.input.shape[1:]) == (7, c(512))  # pooled over the window axis
    assert not of_type(model, CONVS)  # every conv is inside the shared encoder


# -- filterbank models ------------------------------------------------------------------------------------
def assert_conv2d_plan(model, channels, pools, kernel=(3, 3)):
    convs = named(model, r"conv\d+")
    assert [cv.filters for cv in convs] == [c(ch) for ch in channels]
    assert all(cv.kernel_size == kernel and cv.strides == (1, 1) for cv in convs)
    assert [p.pool_size for p in named(model, r"conv\d+_pool")] == [tuple(p) for p in pools]


def test_fcn4_is_four_conv_pool_layers_on_a_per_band_normalised_logmel():
    model = build("fcn4")
    assert model.input_shape == (None, 1818, 96)
    assert model.get_layer("input_bn").axis in (2, [2])  # per mel band
    assert_conv2d_plan(model, (128, 384, 768, 2048), ((4, 2), (5, 4), (8, 3), (8, 4)))
    assert all(isinstance(layer, keras.layers.ReLU) for layer in named(model, r"conv\d_relu"))
    assert model.get_layer("conv4_pool").output.shape[1:3] == (1, 1)
    assert isinstance(model.get_layer(names.EMBEDDING_LAYER), keras.layers.GlobalMaxPooling2D)
    assert [d.name for d in of_type(model, keras.layers.Dense)] == [names.OUTPUT_LAYER]
    assert not of_type(model, keras.layers.GRU) and not of_type(model, keras.layers.Conv1D)


def test_crnn_is_four_elu_conv_layers_then_two_grus():
    model = build("crnn")
    assert model.get_layer("input_bn").axis in (2, [2])
    assert_conv2d_plan(model, (64, 128, 128, 128), ((2, 2), (3, 3), (4, 4), (4, 4)))
    assert all(isinstance(model.get_layer(f"conv{i}_elu"), keras.layers.ELU) for i in range(1, 5))
    assert [model.get_layer(f"conv{i}_dropout").rate for i in range(1, 5)] == [0.1] * 4
    grus = of_type(model, keras.layers.GRU)
    assert [g.name for g in grus] == ["gru1", names.EMBEDDING_LAYER] and grus[0].units == c(32)
    assert grus[0].input.shape[1] == 18 and feeds(grus[0]) == ["to_sequence"]  # time steps left after pools
    assert model.get_layer("dropout").rate == 0.3


def test_shortchunk_cnn_is_seven_conv_pool_layers_and_a_dense_embedding():
    model = build("shortchunk_cnn")
    assert model.input_shape == (None, 230, 128)
    assert model.get_layer("input_bn").axis in (-1, [-1], 3, [3])  # one channel, Won's spec_bn
    assert_conv2d_plan(model, (128, 128, 256, 256, 256, 256, 512), [(2, 2)] * 7)
    assert not of_type(model, keras.layers.Add)
    assert model.get_layer("fc").units == c(512) and feeds(model.get_layer(names.EMBEDDING_LAYER)) == [
        "fc_bn"
    ]
    assert model.get_layer("dropout").rate == 0.5


def test_shortchunk_resnet_is_seven_strided_residual_blocks_without_pooling():
    model = build("shortchunk_resnet")
    assert not of_type(model, MAX_POOLS + STOCHASTIC_POOLS)
    for i, channels in enumerate((128, 128, 256, 256, 256, 256, 512), start=1):
        conv1, conv2 = model.get_layer(f"block{i}_conv1"), model.get_layer(f"block{i}_conv2")
        shortcut = model.get_layer(f"block{i}_shortcut")
        assert conv1.strides == (2, 2) and conv2.strides == (1, 1) and shortcut.strides == (2, 2)
        assert conv1.kernel_size == conv2.kernel_size == shortcut.kernel_size == (3, 3)
        assert conv1.filters == conv2.filters == c(channels)
        assert sorted(feeds(model.get_layer(f"block{i}_add"))) == [
            f"block{i}_conv2_bn",
            f"block{i}_shortcut_bn",
        ]
    assert model.get_layer("block7_relu").output.shape[1:3] == (2, 1)


# -- musicnn's two architectures (the pretrained room's family: defined once it is registered, and then
# required by test_every_registered_model_has_an_identity_test) -------------------------------------------
def _musicnn_identity(name: str) -> None:
    model = build(name)
    branches = of_type(model, keras.layers.Conv2D)
    assert [cv.kernel_size for cv in branches] == [(7, 38), (7, 67), (128, 1), (64, 1), (32, 1)]
    assert [cv.padding for cv in branches] == ["valid", "valid", "same", "same", "same"]
    for cv in branches:  # each branch max-pooled over all its remaining frequency bins
        pools = [lyr for lyr in model.layers if isinstance(lyr, keras.layers.MaxPooling2D)
                 and cv.name.rsplit("_", 1)[0] in lyr.name]  # fmt: skip
        assert len(pools) == 1 and pools[0].pool_size == (1, cv.output.shape[2])
    frontend = model.get_layer("frontend")
    assert isinstance(frontend, keras.layers.Concatenate) and len(feeds(frontend)) == 5
    assert [cv.kernel_size for cv in of_type(model, keras.layers.Conv1D)] == [(7,)] * 3  # the mid-end
    assert len(of_type(model, keras.layers.Add)) == 2  # its 2nd and 3rd layers add their input
    pooled = sorted(feeds(model.get_layer("temporal_pool")))
    assert [type(model.get_layer(p)).__name__ for p in pooled] == [
        "GlobalMaxPooling1D",
        "GlobalAveragePooling1D",
    ]
    # musicnn 0.1.0's MTT_musicnn checkpoint: 792,079 parameters in its model variables (BN moving
    # statistics included), 787,159 trainable, 50 tags
    full = create_model(name, n_tags=50)
    assert full.count_params() == 792_079 and trainable_params(full) == 787_159


def _vgg_musicnn_identity(name: str) -> None:
    model = build(name)
    convs = of_type(model, keras.layers.Conv2D)
    assert len(convs) == 5 and all(cv.kernel_size == (3, 3) and cv.filters == c(128) for cv in convs)
    assert not of_type(model, keras.layers.Conv1D) and not of_type(model, keras.layers.Add)
    assert of_type(model, keras.layers.MaxPooling2D)[0].pool_size == (4, 1)
    assert create_model(name, n_tags=50).count_params() == 607_030  # musicnn 0.1.0's MTT_vgg checkpoint


if "musicnn" in list_models():

    def test_musicnn_has_timbral_and_temporal_branches_a_residual_midend_and_max_mean_pooling():
        _musicnn_identity("musicnn")


if "vgg_musicnn" in list_models():

    def test_vgg_musicnn_is_five_3x3_conv_blocks_of_128():
        _vgg_musicnn_identity("vgg_musicnn")


# -- options that change every model's pooling ------------------------------------------------------------
POOLED = [n for n in list_models() if "pool" in get_entry(n).options]


@pytest.mark.parametrize("name", POOLED)
def test_stochastic_pooling_replaces_every_max_pool_with_the_same_geometry(name):
    plain, stochastic = build(name), build(name, pool="stochastic")
    owners = [(m.get_layer(names.WINDOW_ENCODER) if m.spec.windowing == "superpool" else m)
              for m in (plain, stochastic)]  # fmt: skip
    max_pools = of_type(owners[0], MAX_POOLS)
    sto_pools = of_type(owners[1], STOCHASTIC_POOLS)
    assert max_pools and not of_type(owners[1], MAX_POOLS)
    assert [p.name for p in sto_pools] == [p.name for p in max_pools]
    assert [tuple(np.atleast_1d(s.pool_size)) for s in sto_pools] == [tuple(p.pool_size) for p in max_pools]


def test_musicnn_is_timbral_and_temporal_branches_a_dense_residual_midend_and_max_mean_pooling():
    """Pons & Serra 2019 (musicnn.models.build_musicnn): conv -> ReLU -> BN everywhere, each front-end branch
    max-pooled over all its frequency bins; mid-end 7-frame convs with residual sums, all concatenated."""
    model = build("musicnn")
    assert model.input_shape == (None, 187, 96)
    timbral = [model.get_layer(f"block{i}_timbral_{k}_conv") for i, k in ((1, "7x38"), (2, "7x67"))]
    assert [t.kernel_size for t in timbral] == [(7, 38), (7, 67)] and {t.padding for t in timbral} == {
        "valid"
    }
    assert [feeds(t) for t in timbral] == [["timbral_pad"]] * 2
    temporal = [model.get_layer(f"block{i}_temporal_{k}_conv") for i, k in ((3, 128), (4, 64), (5, 32))]
    assert [t.kernel_size for t in temporal] == [(128, 1), (64, 1), (32, 1)] and temporal[0].padding == "same"
    assert all(c.activation.__name__ == "relu" for c in timbral + temporal)
    assert [t.filters for t in timbral + temporal] == [c(204)] * 2 + [c(51)] * 3
    assert feeds(model.get_layer("frontend")) == [f"{b}_squeeze" for b in (
        "block1_timbral_7x38", "block2_timbral_7x67", "block3_temporal_128", "block4_temporal_64",
        "block5_temporal_32")]  # fmt: skip
    mid = [model.get_layer(f"block{i}_midend_conv") for i in (6, 7, 8)]
    assert [m.kernel_size for m in mid] == [(7,)] * 3 and [m.filters for m in mid] == [c(64)] * 3
    assert feeds(mid[0]) == ["frontend"] and feeds(mid[1]) == ["block6_midend_bn"]
    assert sorted(feeds(model.get_layer("block8_midend_res"))) == ["block7_midend_res", "block8_midend_bn"]
    assert feeds(model.get_layer("midend")) == ["frontend", "block6_midend_bn", "block7_midend_res",
                                                "block8_midend_res"]  # fmt: skip
    assert feeds(model.get_layer("temporal_pool")) == ["max_pool", "mean_pool"]
    assert feeds(model.get_layer(names.EMBEDDING_LAYER)) == ["penultimate"]
    assert model.get_layer("penultimate").units == c(200) and model.get_layer("dropout").rate == 0.5


def test_vgg_musicnn_is_five_conv_relu_bn_pool_blocks():
    model = build("vgg_musicnn")
    pools = [model.get_layer(f"conv{i}_pool") for i in range(1, 6)]
    assert [(p.pool_size, p.strides) for p in pools] == [((4, 1), (2, 2))] + [((2, 2), (2, 2))] * 3 + [
        ((4, 4), (4, 4))
    ]
    convs = [model.get_layer(f"conv{i}") for i in range(1, 6)]
    assert all(
        v.kernel_size == (3, 3) and v.filters == c(128) and v.activation.__name__ == "relu" for v in convs
    )
    assert [feeds(model.get_layer(f"conv{i}_bn")) for i in range(1, 6)] == [[f"conv{i}"] for i in range(1, 6)]
    assert model.get_layer(names.EMBEDDING_LAYER).output.shape[1:] == (2 * c(128),)  # [2, 1] x 128 flattened


def test_musicnn_parameter_counts_are_the_released_checkpoints():
    """MTT_musicnn's checkpoint: 64 variables, 792,079 numbers (without Adam slots); MTT_vgg: 36, 607,030
    (tests/fixtures/musicnn/checkpoint_variables.json, read by NewCheckpointReader)."""
    for name, n_vars, n_params in (("musicnn", 64, 792_079), ("vgg_musicnn", 36, 607_030)):
        model = create_model(name, n_tags=N_TAGS)
        assert (len(model.weights), model.count_params()) == (n_vars, n_params)


def test_every_registered_model_has_an_identity_test():
    tested = {
        "samplecnn", "samplecnn_deep", "samplecnn_dilated", "samplecnn_multikernel", "samplecnn_se",
        "samplecnn_res", "samplecnn_rese", "samplecnn_crnn", "samplecnn_superpool", "fcn4", "crnn",
        "shortchunk_cnn", "shortchunk_resnet", "musicnn", "vgg_musicnn",
    }  # fmt: skip
    assert set(list_models()) <= tested | {n for n in list_models() if n.startswith("test_")}


# -- parameter counts against the published figures -------------------------------------------------------
# SampleCNN 3^9 (Lee et al. 2017, Table 1): tests/test_models.py::test_samplecnn_3_9_full_size_parameter_count
def test_crnn_parameters_are_the_authors_release_with_its_documented_differences():
    """Choi et al.'s released MusicTaggerCRNN (README of keunwoochoi/music-auto_tagging-keras: "4-layer 2D
    Convolutions + 2 GRU, num_parameter: 396,786") is this plan: 3x3 convs 64/128/128/128, BN, 2 GRUs of 32,
    Dense(50). Their count, trainable weights of Keras 1, decomposes exactly as below, including their
    input BN over the 1,440 zero-padded *time* steps (``BatchNormalization(axis=3)`` on [1, 96, 1440]).
    Ours normalises per mel band (96) and uses Keras 3's GRU with ``reset_after`` (a second bias per gate)."""
    convs = (9 * 1 * 64 + 64) + (9 * 64 * 128 + 128) + 2 * (9 * 128 * 128 + 128)
    conv_bn = 2 * (64 + 128 * 3)
    gru_keras1 = 3 * (128 * 32 + 32 * 32 + 32) + 3 * (32 * 32 + 32 * 32 + 32)
    dense = 32 * 50 + 50
    published = convs + conv_bn + 2 * 1440 + gru_keras1 + dense
    assert published == 396_786
    ours = published - 2 * 1440 + 2 * 96 + 2 * 3 * 32
    assert trainable_params(create_model("crnn", n_tags=50)) == ours == 394_290
