"""The tagging module's inference rewrites (hvd_magtag.models.inference) give bit-identical outputs.

Every registry model (tiny sizes from test_models) with random batch-norm statistics — scales of both signs,
so the max/min folding is exercised — in float32 and bfloat16: the rewritten window model equals the model it
came from exactly, and the model itself is unchanged by the rewrite.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from test_models import N_TAGS, TINY, WIDTH

from hvd_magtag.models import create_model
from hvd_magtag.models.inference import _PooledBranch, inference_model, pooled_branches
from hvd_magtag.models.names import EMBEDDING_LAYER, OUTPUT_LAYER
from hvd_magtag.serving import window_heads

#: branches the rewrite must find per model (the others have no conv -> BN -> whole-axis max chain)
EXPECTED_BRANCHES = {"musicnn": 5}


def _randomise_batch_norms(model, rng) -> None:
    """Moving statistics and affine parameters far from their initial values; gamma of both signs."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, c).astype("float32"))
            layer.gamma.assign((rng.choice([-1.0, 1.0], c) * rng.uniform(0.3, 2.0, c)).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.5, c).astype("float32"))


def _model(name: str, policy: str):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = create_model(name, n_tags=N_TAGS, width=WIDTH, **TINY[name])
    finally:
        keras.config.set_dtype_policy(previous)
    _randomise_batch_norms(model, np.random.default_rng(3))
    return model


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_rewritten_window_model_is_bit_identical(name, policy):
    model = _model(name, policy)
    if model.spec.windowing != "split":  # superpool models keep their window encoder as it is
        assert window_heads(model, model.spec)[0].name.endswith("_heads")
        return
    x = (0.3 * np.random.default_rng(0).standard_normal((3, *model.spec.input_shape()))).astype("float32")
    plain = keras.Model(
        model.inputs, [model.get_layer(OUTPUT_LAYER).output, model.get_layer(EMBEDDING_LAYER).output]
    )
    expected = [np.asarray(v, "float32") for v in plain([x], training=False)]
    found = len(pooled_branches(plain))
    assert found == EXPECTED_BRANCHES.get(name, 0)
    fast, _ = window_heads(model, model.spec)
    assert sum(isinstance(layer, _PooledBranch) for layer in fast.layers) == found
    got = [np.asarray(v, "float32") for v in fast([x], training=False)]
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g, e)
    again = [np.asarray(v, "float32") for v in plain([x], training=False)]  # the model itself is untouched
    for e, a in zip(expected, again):
        np.testing.assert_array_equal(a, e)
    assert {id(v) for v in fast.weights} <= {id(v) for v in model.weights}  # shares the variables


def test_a_shared_layer_is_not_rewritten():
    """A conv whose output also feeds another layer keeps its full map: nothing to absorb."""
    inputs = keras.Input((20, 12, 1))
    conv = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    bn = keras.layers.BatchNormalization(name="bn")(conv)
    pooled = keras.layers.MaxPooling2D((1, 10), name="pool")(bn)
    side = keras.layers.GlobalAveragePooling2D(name="side")(conv)
    model = keras.Model(inputs, [pooled, side])
    assert pooled_branches(model) == {}
    assert inference_model(model) is model
