"""Training building blocks without a dataset: schedules, checkpoints, the config CLI, resume checks."""

import json
import math

import numpy as np
import pytest

from hvd_magtag import checkpoint
from hvd_magtag.config import ConfigError, Experiment, TrainConfig
from hvd_magtag.schedules import Schedule, parse_stages
from hvd_magtag.train import build_parser, experiment_from_args, resume_problem

# -- schedules --------------------------------------------------------------------------------------------


def test_constant_scaled_by_world_size_with_linear_warmup():
    cfg = TrainConfig(lr=0.01, warmup_steps=4, schedule="constant")
    s = Schedule(cfg, world_size=4)
    assert [s.lr(t) for t in range(5)] == pytest.approx([0.01, 0.02, 0.03, 0.04, 0.04])
    cfg.scale_lr = False
    assert Schedule(cfg, world_size=4).lr(10) == pytest.approx(0.01)


def test_cosine_goes_from_base_to_zero():
    s = Schedule(TrainConfig(lr=0.1, steps=100, schedule="cosine"))
    assert s.lr(0) == pytest.approx(0.1)
    assert s.lr(50) == pytest.approx(0.05)
    assert s.lr(100) == pytest.approx(0.0, abs=1e-12)


def test_plateau_decays_after_patience_and_round_trips_state():
    s = Schedule(TrainConfig(lr=0.1, schedule="plateau", plateau_patience=2, plateau_factor=0.2))
    assert s.on_validation(True) is False
    assert s.on_validation(False) is False
    assert s.on_validation(False) is True  # second miss in a row: restart from best
    assert s.lr(0) == pytest.approx(0.02)
    t = Schedule(TrainConfig(lr=0.1, schedule="plateau", plateau_patience=2, plateau_factor=0.2))
    t.load_state_dict(json.loads(json.dumps(s.state_dict())))
    assert t.lr(0) == pytest.approx(0.02) and t.decays == 1


def test_non_plateau_schedules_never_restart():
    s = Schedule(TrainConfig(schedule="constant", plateau_patience=1))
    assert not any(s.on_validation(False) for _ in range(5))


def test_staged_switches_optimizer_and_rate():
    s = Schedule(TrainConfig(steps=100, schedule="staged", stages="adam:1e-4@0,sgd:1e-3@0.5,sgd:1e-4@80"))
    assert [s.optimizer_name(t) for t in (0, 49, 50, 79, 80)] == ["adam", "adam", "sgd", "sgd", "sgd"]
    assert [s.lr(t) for t in (0, 50, 80)] == pytest.approx([1e-4, 1e-3, 1e-4])
    default = Schedule(TrainConfig(steps=1000, schedule="staged"))
    assert default.optimizer_name(0) == "adam" and default.optimizer_name(999) == "sgd"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("adam:1e-4@0,sgd@0.5", "expected optimizer:lr@start"),
        ("rmsprop:1e-3@0", "optimizer 'rmsprop': choose one of sgd, adam, adamw"),
        ("sgd:1e-3@10", "first stage must start at 0"),
    ],
)
def test_bad_stages_name_the_option(text, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_stages(text, 100)


def test_unknown_schedule_and_optimizer_are_config_errors():
    with pytest.raises(ConfigError, match="train.schedule"):
        Schedule(TrainConfig(schedule="exponential"))
    with pytest.raises(ConfigError, match="train.optimizer"):
        Schedule(TrainConfig(optimizer="rmsprop"))


# -- checkpoints ------------------------------------------------------------------------------------------


def _tiny_model(units=3, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((4,))
    x = keras.layers.Dense(units)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.Dropout(0.5)(x)
    return keras.Model(inp, keras.layers.Dense(2, activation="sigmoid")(x))


def _one_step(model, opt, seed):
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(8, 4)).astype("float32"), (rng.random((8, 2)) > 0.5).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((model(x, training=True) - y) ** 2)
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))


def _snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


def test_checkpoint_round_trip_restores_model_optimizer_and_state(tmp_path):
    import keras

    model, opt = _tiny_model(), keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    opt.build(model.trainable_variables)
    for s in range(3):
        _one_step(model, opt, s)
    state = {"step": 3, "epoch": 0, "schedule": {"decays": 1}, "best_roc_auc": 0.7}
    folder = checkpoint.save(tmp_path / "ckpt", model, opt, state)
    assert folder.name == "step-00000003"
    saved_model, saved_opt = _snapshot(model.variables), _snapshot(opt.variables)
    # continue one more step from the live objects ...
    _one_step(model, opt, 99)
    expected = _snapshot(model.variables)
    # ... and from fresh objects restored from the checkpoint: identical
    model2, opt2 = _tiny_model(seed=5), keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    opt2.build(model2.trainable_variables)
    assert checkpoint.load(folder, model2, opt2) == state
    for a, b in zip(_snapshot(model2.variables), saved_model):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(_snapshot(opt2.variables), saved_opt):
        np.testing.assert_array_equal(a, b)
    assert int(opt2.iterations.numpy()) == 3
    _one_step(model2, opt2, 99)
    for a, b in zip(_snapshot(model2.variables), expected):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-7)


def test_checkpoint_keeps_last_n_and_ignores_partial_writes(tmp_path):
    import keras

    model, opt = _tiny_model(), keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    d = tmp_path / "ckpt"
    for step in (10, 20, 30, 40):
        checkpoint.save(d, model, opt, {"step": step}, keep=2)
    assert [s for s, _ in checkpoint.list_checkpoints(d)] == [30, 40]
    (d / ".tmp-step-00000050-abc").mkdir()  # what a SIGKILL mid-write leaves behind
    (d / "step-00000060").mkdir()  # a folder without state.json is not a checkpoint
    assert checkpoint.latest_checkpoint(d).name == "step-00000040"
    checkpoint.save(d, model, opt, {"step": 40}, keep=2)  # re-saving a step replaces it
    assert checkpoint.read_state(checkpoint.latest_checkpoint(d)) == {"step": 40}
    assert not (d / ".tmp-step-00000050-abc").exists()


def test_checkpoint_refuses_other_architecture(tmp_path):
    import keras

    model, opt = _tiny_model(units=3), keras.optimizers.Adam(1e-3)
    opt.build(model.trainable_variables)
    folder = checkpoint.save(tmp_path, model, opt, {"step": 1})
    other = _tiny_model(units=5)
    with pytest.raises(checkpoint.CheckpointError, match="architecture differs"):
        checkpoint.load(folder, other)
    sgd = keras.optimizers.SGD(0.1, momentum=0.9)
    sgd.build(model.trainable_variables)
    with pytest.raises(checkpoint.CheckpointError, match="optimizer"):
        checkpoint.load(folder, model, sgd)
    assert not math.isnan(float(model.variables[0].numpy().sum()))


def test_unreadable_checkpoint_is_one_clear_error(tmp_path):
    model = _tiny_model()
    folder = tmp_path / "step-00000001"
    folder.mkdir()
    (folder / "model.npz").write_bytes(b"garbage")
    (folder / "state.json").write_text("{}")
    with pytest.raises(checkpoint.CheckpointError, match="unreadable checkpoint"):
        checkpoint.load(folder, model)


# -- command line and resume checks -----------------------------------------------------------------------


def test_cli_precedence_yaml_flags_then_set(tmp_path):
    y = tmp_path / "exp.yaml"
    y.write_text(
        "model: {name: samplecnn, overrides: {width: 0.5}}\ntrain: {lr: 0.5, steps: 7, batch_size: 4}\n"
    )
    args = build_parser().parse_args(
        [
            "--config",
            str(y),
            "--steps",
            "9",
            "--lr",
            "0.1",
            "--set",
            "train.lr=0.2",
            "--run-dir",
            str(tmp_path / "r"),
            "--deterministic",
        ]
    )
    exp = experiment_from_args(args)
    assert exp.train.steps == 9 and exp.train.lr == pytest.approx(0.2) and exp.train.batch_size == 4
    assert exp.train.deterministic is True and exp.model.overrides == {"width": 0.5}
    assert exp.run_dir == str((tmp_path / "r").resolve())


def test_cli_resume_reads_the_run_config(tmp_path):
    saved = Experiment()
    saved.model.name, saved.train.steps = "fcn", 123
    (tmp_path / "run").mkdir()
    saved.save(tmp_path / "run" / "config.json")
    exp = experiment_from_args(
        build_parser().parse_args(["--run-dir", str(tmp_path / "run"), "--steps", "200"])
    )
    assert exp.model.name == "fcn" and exp.train.steps == 200


def test_cli_bad_set_is_one_line_error(tmp_path, capsys):
    from hvd_magtag.train import main

    assert main(["--set", "train.stepz=3", "--run-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --set train.stepz=3: unknown option 'train.stepz'; known: " + ", ".join(
        sorted(TrainConfig.__dataclass_fields__)
    )
    assert main(["--config", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: cannot read config file" in capsys.readouterr().err


def test_help_lists_flags_with_their_config_keys(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--help"])
    out = capsys.readouterr().out
    for needle in ("--run-dir", "[train.steps]", "[model.name]", "--set SECTION.KEY=VALUE", "resumes"):
        assert needle in out


def test_resume_problem_names_the_difference():
    base = {"model": "samplecnn", "overrides": {"width": 0.5}, "spec": {"window": 100}, "tags": ["a", "b"]}
    assert resume_problem(base, dict(base)) is None
    assert "was trained as model 'samplecnn'" in resume_problem(base, {**base, "model": "fcn"})
    assert "overrides" in resume_problem(base, {**base, "overrides": {"width": 1.0}})
    assert "2-tag vocabulary" in resume_problem(base, {**base, "tags": ["a", "c"]})
    assert "was trained as" in resume_problem(base, {**base, "spec": {"window": 200}})


def test_resume_accepts_a_spec_written_before_new_fields():
    """A run.json from before FbankSpec grew its recipe fields resumes (missing fields = their defaults)."""
    from hvd_magtag.models.registry import FbankSpec, ModelSpec

    new_spec = ModelSpec(input="fbank", window=4096, fbank=FbankSpec()).to_dict()
    old_spec = {
        **new_spec,
        "fbank": {k: new_spec["fbank"][k] for k in ("n_mels", "win_length", "hop_length")},
    }
    base = {"model": "fcn4", "overrides": {}, "tags": ["a"]}
    assert resume_problem({**base, "spec": old_spec}, {**base, "spec": new_spec}) is None
