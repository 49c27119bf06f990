"""hvd_magtag.finetune: matching layers, freezing, the loaded layers' own learning rate, resume records, and
the config options (train.init_from / freeze / init_lr_scale). Tiny Keras models and a tiny registry run
directory; the fine-tuning run from the real MTT_musicnn is tests/test_finetune_musicnn.py."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from hvd_magtag import checkpoint, finetune
from hvd_magtag.config import ConfigError, Experiment, TrainConfig
from hvd_magtag.models.layers import FusedBatchNorm
from hvd_magtag.models.names import OUTPUT_LAYER


def tiny(n_tags: int = 3, hidden: int = 4, extra: bool = False, seed: int = 0):
    """Dense(hidden) -> FusedBatchNorm -> [Dense 'extra'] -> Dense 'tags' (sigmoid), on 5 inputs."""
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((5,))
    x = keras.layers.Dense(hidden, activation="relu", name="dense1")(x)
    x = FusedBatchNorm(name="bn1")(x)
    if extra:
        x = keras.layers.Dense(hidden, name="extra")(x)
    outputs = keras.layers.Dense(n_tags, activation="sigmoid", name=OUTPUT_LAYER)(x)
    return keras.Model(inputs, outputs, name="tiny")


def arrays(layer) -> list[np.ndarray]:
    return [np.array(w.numpy()) for w in layer.weights]


def step(model, optimizer, seed: int = 1, batch: int = 8):
    """One training step on random data (binary cross-entropy)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, 5)).astype("float32")
    y = (rng.random((batch, model.output_shape[-1])) > 0.5).astype("float32")
    with tf.GradientTape() as tape:
        loss = keras.losses.binary_crossentropy(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))


# -- matching -----------------------------------------------------------------------------------------------


def test_match_loads_same_names_and_shapes_and_reinitialises_the_rest():
    source, target = tiny(3, seed=1), tiny(2, extra=True, seed=2)
    plan = finetune.match_layers(target, source, ["a", "b", "c"], ["x", "y"])
    assert plan.loaded == ["dense1", "bn1"]
    assert plan.new == ["extra"]
    assert plan.reinitialised == {"tags": "another tag vocabulary (3 tags there, 2 here)"}
    wider = tiny(2, hidden=6, seed=3)
    plan = finetune.match_layers(wider, source, ["a", "b", "c"], ["a", "b", "c"])
    assert plan.loaded == [] and set(plan.reinitialised) == {"dense1", "bn1", "tags"}
    assert plan.reinitialised["dense1"] == "weights 5x4 4 there, 5x6 6 here"


def test_same_vocabulary_loads_the_output_layer_too_and_copy_is_exact():
    source, target = tiny(3, seed=1), tiny(3, seed=2)
    source.get_layer("bn1").moving_mean.assign(np.arange(4, dtype="float32"))
    plan = finetune.match_layers(target, source, ["a", "b", "c"], ["a", "b", "c"])
    assert plan.loaded == ["dense1", "bn1", "tags"] and not plan.reinitialised
    reordered = finetune.match_layers(target, source, ["a", "b", "c"], ["c", "b", "a"])
    assert "tags" in reordered.reinitialised  # the same tags in another order are other outputs
    finetune.copy_layers(target, source, plan.loaded)
    for name in plan.loaded:
        for mine, theirs in zip(arrays(target.get_layer(name)), arrays(source.get_layer(name))):
            np.testing.assert_array_equal(mine, theirs)


def test_sub_model_layers_are_named_by_path():
    inner_in = keras.Input((5,))
    inner = keras.Model(inner_in, keras.layers.Dense(4, name="conv1")(inner_in), name="window_encoder")
    x = keras.Input((5,))
    model = keras.Model(x, keras.layers.Dense(2, name="tags")(inner(x)))
    assert list(finetune.weight_layers(model)) == ["window_encoder/conv1", "tags"]
    assert finetune.freeze_layers(model, ["window_encoder"]) == ["window_encoder/conv1"]
    assert [v.path for v in model.trainable_variables] == ["tags/kernel", "tags/bias"]


# -- freezing -----------------------------------------------------------------------------------------------


def test_freeze_takes_names_and_globs_and_keeps_batchnorm_in_inference_mode():
    model = tiny(extra=True)
    assert finetune.freeze_layers(model, ["bn*", "dense1"]) == ["dense1", "bn1"]
    assert [v.path for v in model.trainable_variables] == [
        "extra/kernel",
        "extra/bias",
        "tags/kernel",
        "tags/bias",
    ]
    frozen_before = [arrays(model.get_layer(n)) for n in ("dense1", "bn1")]
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 5)).astype("float32")
    np.testing.assert_allclose(model(x, training=True), model(x, training=False), rtol=0, atol=0)
    step(model, keras.optimizers.SGD(0.5))
    for name, before in zip(("dense1", "bn1"), frozen_before):
        for a, b in zip(arrays(model.get_layer(name)), before):
            np.testing.assert_array_equal(a, b)  # weights and moving statistics alike
    assert {v.path for v in finetune.frozen_variables(model)} == {
        "dense1/kernel", "dense1/bias", "bn1/gamma", "bn1/beta", "bn1/moving_mean", "bn1/moving_variance",
    }  # fmt: skip


def test_freeze_unknown_name_is_one_line_naming_the_option_and_the_layers():
    with pytest.raises(ConfigError) as e:
        finetune.freeze_layers(tiny(), ["dense1", "block9_*"])
    message = str(e.value)
    assert "\n" not in message and message.startswith(
        "train.freeze 'block9_*' matches no layer of model 'tiny'"
    )
    assert message.endswith("its layers with weights: dense1, bn1, tags")
    with pytest.raises(ConfigError, match="freezes every layer"):
        finetune.freeze_layers(tiny(), ["*"])


# -- the loaded layers' learning rate ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["SGD", "Adam"])
@pytest.mark.parametrize("scale", [0.0, 0.25])
def test_loaded_layers_step_at_the_scaled_rate(kind, scale):
    """Each group takes the step a single optimizer at its rate takes: the loaded layer's first step is
    ``scale`` times the unscaled one (SGD: lr x gradient; Adam: lr x m/sqrt(v), which gradient scaling
    would not change), the other layers' step is the unscaled one; scale 0 leaves the loaded layer fixed."""
    make = lambda: getattr(keras.optimizers, kind)(0.1)  # noqa: E731
    reference, model = tiny(seed=4), tiny(seed=4)
    single = make()
    single.build(reference.trainable_variables)
    step(reference, single)
    before = arrays(tiny(seed=4).get_layer("dense1"))
    grouped = finetune.optimizer_for(model, make, ["dense1"], scale)
    assert isinstance(grouped, finetune.GroupedOptimizer) and grouped.built
    grouped.learning_rate.assign(0.1)
    assert float(grouped.scaled.learning_rate.numpy()) == pytest.approx(0.1 * scale)
    step(model, grouped)
    for mine, ref, start in zip(
        arrays(model.get_layer("dense1")), arrays(reference.get_layer("dense1")), before
    ):
        np.testing.assert_allclose(mine - start, scale * (ref - start), rtol=1e-4, atol=1e-7)
        if scale == 0.0:
            np.testing.assert_array_equal(mine, start)
    for mine, ref in zip(arrays(model.get_layer("tags")), arrays(reference.get_layer("tags"))):
        np.testing.assert_allclose(mine, ref, rtol=1e-6, atol=1e-7)


def test_one_optimizer_unless_a_scale_applies():
    make = lambda: keras.optimizers.Adam(0.1)  # noqa: E731
    model = tiny()
    assert isinstance(finetune.optimizer_for(model, make, ["dense1"], 1.0), keras.optimizers.Adam)
    assert isinstance(
        finetune.optimizer_for(model, make, [], 0.5, loss_scale=True), keras.optimizers.LossScaleOptimizer
    )
    finetune.freeze_layers(model, ["dense1"])  # the only loaded layer is frozen: nothing to scale
    assert isinstance(finetune.optimizer_for(model, make, ["dense1"], 0.5), keras.optimizers.Adam)
    with pytest.raises(ConfigError, match="train.init_lr_scale=0.5 needs two optimizers"):
        finetune.optimizer_for(tiny(), make, ["dense1"], 0.5, loss_scale=True)


def test_a_checkpoint_holds_both_optimizers_state(tmp_path):
    """Exact resume: save after a step, restore into a fresh model and optimizer pair, take the same next
    step: identical weights."""
    make = lambda: keras.optimizers.Adam(0.05)  # noqa: E731
    model = tiny(seed=5)
    optimizer = finetune.optimizer_for(model, make, ["dense1", "bn1"], 0.3)
    step(model, optimizer, seed=1)
    folder = checkpoint.save(tmp_path, model, optimizer, {"step": 1})
    assert len(optimizer.variables) == len(optimizer.main.variables) + len(optimizer.scaled.variables)
    step(model, optimizer, seed=2)

    resumed = tiny(seed=6)
    again = finetune.optimizer_for(resumed, make, ["dense1", "bn1"], 0.3)
    checkpoint.load(folder, resumed, again)
    step(resumed, again, seed=2)
    for a, b in zip(resumed.variables, model.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# -- init_from from a run directory -------------------------------------------------------------------------


def _run_dir(path, tags, **overrides):
    """A registry model's run directory (run.json + best weights), as hvd_magtag.train leaves one."""
    from hvd_magtag.models.registry import create_model

    model = create_model("samplecnn", n_tags=len(tags), **overrides)
    (path / "best").mkdir(parents=True)
    model.save_weights(str(path / "best" / "model.weights.h5"))
    info = {"model": "samplecnn", "overrides": overrides, "spec": model.spec.to_dict(), "tags": tags}
    (path / "run.json").write_text(json.dumps(info))
    return model


SMALL = {"m": 3, "n": 5, "width": 0.0625}


def test_init_from_a_run_directory_loads_all_but_the_new_output_layer(tmp_path):
    from hvd_magtag.models.registry import create_model

    source = _run_dir(tmp_path / "src", ["a", "b", "c"], **SMALL)
    model = create_model("samplecnn", n_tags=2, **SMALL)
    plan = finetune.init_from(model, ["x", "y"], str(tmp_path / "src"))
    layers = finetune.weight_layers(model)
    assert plan.loaded == [p for p in layers if p != "tags"] and list(plan.reinitialised) == ["tags"]
    assert plan.source == str((tmp_path / "src").resolve()) and plan.source_model == "samplecnn"
    for path in plan.loaded:
        for mine, theirs in zip(arrays(layers[path]), arrays(finetune.weight_layers(source)[path])):
            np.testing.assert_array_equal(mine, theirs)
    line = finetune.describe(plan, ["conv0"], 0.1)
    assert "\n" not in line and f"loaded {len(plan.loaded)} layers [conv0, " in line
    assert "re-initialised 1 [tags: another tag vocabulary (3 tags there, 2 here)]" in line
    assert "frozen 1 [conv0]" in line and line.endswith("learning rate x0.1")


def test_init_from_errors_name_the_option(tmp_path):
    from hvd_magtag.models.registry import create_model

    model = create_model("samplecnn", n_tags=2, **SMALL)
    with pytest.raises(ConfigError, match=r"train.init_from '\S+nowhere': \S+ does not exist; give a run "):
        finetune.init_from(model, ["x", "y"], str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="is not a run directory .* pretrained name .*MTT_musicnn"):
        finetune.init_from(model, ["x", "y"], str(tmp_path / "empty"))
    _run_dir(tmp_path / "other", ["a"], m=3, n=5, width=0.125)  # same names, every shape different
    with pytest.raises(ConfigError, match="has no layer whose name and weight shapes match"):
        finetune.init_from(model, ["x", "y"], str(tmp_path / "other"))
    (tmp_path / "other" / "best" / "model.weights.h5").unlink()
    with pytest.raises(ConfigError, match=r"train.init_from .*no best weights"):
        finetune.init_from(model, ["x", "y"], str(tmp_path / "other"))


# -- records and resume -------------------------------------------------------------------------------------


def test_plan_record_round_trips_and_resume_refuses_other_options():
    cfg = TrainConfig(init_from="MTT_musicnn", freeze=["block1_*"], init_lr_scale=0.1)
    plan = finetune.InitPlan("/cache/MTT_musicnn", "musicnn", ["a", "b"], {"tags": "why"}, ["c"])
    record = json.loads(json.dumps(finetune.plan_record(plan, cfg)))
    assert finetune.InitPlan.from_dict(record) == plan
    assert finetune.resume_problem(record, cfg) is None
    assert finetune.plan_record(None, TrainConfig()) is None
    assert finetune.resume_problem(None, TrainConfig()) is None
    problem = finetune.resume_problem(record, TrainConfig(init_from="MTT_musicnn", freeze=["block1_*"]))
    assert "train.init_lr_scale 0.1 -> 1.0" in problem and "new --run-dir" in problem
    assert "train.freeze [] -> ['x']" in finetune.resume_problem(None, TrainConfig(freeze=["x"]))


# -- config -------------------------------------------------------------------------------------------------


def test_config_freeze_takes_a_list_or_comma_separated_names(tmp_path):
    exp = Experiment().apply_overrides(["train.freeze=block1_*, block2_*", "train.init_from=MTT_musicnn"])
    assert exp.train.freeze == ["block1_*", "block2_*"]
    assert Experiment().apply_overrides(["train.freeze=[a, b]"]).train.freeze == ["a", "b"]
    assert Experiment().apply_overrides(["train.freeze="]).train.freeze == []
    p = tmp_path / "exp.yaml"
    p.write_text("train:\n  init_from: MTT_musicnn\n  freeze: [embedding]\n  init_lr_scale: 0\n")
    exp = Experiment.load(p).validate()
    assert exp.train.freeze == ["embedding"] and exp.train.init_lr_scale == 0.0
    exp.save(tmp_path / "config.json")
    assert Experiment.load(tmp_path / "config.json") == exp


@pytest.mark.parametrize(
    "assignments, needle",
    [
        (
            ["train.init_lr_scale=0.1"],
            "train.init_lr_scale=0.1 scales the rate of layers loaded by train.init_from",
        ),
        (["train.init_from=x", "train.init_lr_scale=-1"], "train.init_lr_scale=-1.0: give a factor"),
        (["train.freeze=[a, 3]"], "train.freeze entry 3: give layer names or glob patterns"),
        (["train.freeze={a: 1}"], "'train.freeze' expects a list"),
    ],
)
def test_config_errors_name_the_option(assignments, needle):
    with pytest.raises(ConfigError) as e:
        Experiment().apply_overrides(assignments).validate()
    assert needle in str(e.value)


def test_config_float_written_without_a_dot():
    """``--set train.lr=1e-3`` (YAML 1.1 reads it as a string) is the float 0.001; "nan" stays an error."""
    assert Experiment().apply_overrides(["train.lr=1e-3"]).train.lr == 0.001
    with pytest.raises(ConfigError, match="'train.lr' expects float"):
        Experiment().apply_overrides(["train.lr=nan"])
