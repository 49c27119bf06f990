"""``train.precision`` (hvd_magtag.train.build_model): mixed_bfloat16 computes in bfloat16 on float32 weights,
keeps the output layer float32, leaves the global policy as it was, and trains like float32."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from hvd_magtag.config import ConfigError, Experiment, TrainConfig
from hvd_magtag.train import build_model, make_optimizer, make_train_step

TINY = {"m": 3, "n": 4, "width": 0.0625}  # SampleCNN 3^4: 243-sample windows, a few thousand weights


def test_config_accepts_precision_and_rejects_unknown_or_conflicting():
    Experiment().apply_overrides(["train.precision=mixed_bfloat16"]).validate()
    with pytest.raises(ConfigError, match="train.precision 'fp8'"):
        Experiment(train=TrainConfig(precision="fp8")).validate()
    with pytest.raises(ConfigError, match="keep one"):
        Experiment(train=TrainConfig(precision="mixed_bfloat16", mixed_precision=True)).validate()


def test_bfloat16_model_computes_in_bfloat16_and_outputs_float32():
    before = keras.mixed_precision.global_policy().name
    model = build_model("samplecnn", 5, TINY, "mixed_bfloat16")
    assert keras.mixed_precision.global_policy().name == before  # only set while building
    assert model.get_layer("conv0").compute_dtype == "bfloat16"
    assert model.get_layer("tags").compute_dtype == "float32"
    assert {v.dtype for v in model.weights} == {"float32"}
    out = model(np.zeros((2, *model.spec.input_shape()), np.float32))
    assert out.dtype == "float32"


def test_bfloat16_weights_are_float32_weights_and_predictions_agree():
    """Same weights in both precisions: predictions agree to bfloat16 accuracy (8 significant bits), and a
    step from the same state gives nearly the same loss and updated weights."""
    keras.utils.set_random_seed(0)
    fp32 = build_model("samplecnn", 5, TINY, "float32")
    bf16 = build_model("samplecnn", 5, TINY, "mixed_bfloat16")
    bf16.set_weights(fp32.get_weights())
    for model in (fp32, bf16):  # dropout masks would differ between the two models: compare without
        model.get_layer("dropout").rate = 0.0
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((8, *fp32.spec.input_shape()))).astype(np.float32)
    y = (rng.uniform(size=(8, 5)) < 0.3).astype(np.float32)
    p32, p16 = fp32(x, training=False).numpy(), bf16(x, training=False).numpy()
    assert not np.array_equal(p32, p16)  # really computed differently
    np.testing.assert_allclose(p16, p32, atol=0.03)

    losses, weights = [], []
    for model, precision in ((fp32, "float32"), (bf16, "mixed_bfloat16")):
        cfg = TrainConfig(precision=precision)
        opt = make_optimizer("sgd", cfg, 0.01)
        opt.build(model.trainable_variables)
        losses.append(float(make_train_step(model, opt, cfg)(x, y)))
        weights.append(model.get_layer("tags").get_weights()[0])
    assert losses[1] == pytest.approx(losses[0], rel=0.02)
    np.testing.assert_allclose(weights[1], weights[0], atol=1e-3)
