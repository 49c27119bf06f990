"""The Experiment tree: YAML files, --set overrides, type checks and error messages."""

import json

import pytest

from hvd_magtag.config import ConfigError, Experiment


def test_defaults_roundtrip_json(tmp_path):
    exp = Experiment()
    exp.model.overrides["width"] = 0.25
    exp.save(tmp_path / "config.json")
    back = Experiment.load(tmp_path / "config.json")
    assert back == exp
    assert json.loads((tmp_path / "config.json").read_text())["model"]["overrides"] == {"width": 0.25}


def test_yaml_and_set_overrides(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("model:\n  name: fcn4\n  overrides: {width: 0.5}\ntrain:\n  lr: 1\n  steps: 30\n")
    exp = Experiment.load(p).apply_overrides(
        ["train.lr=0.001", "train.deterministic=true", "model.overrides.m=4"]
    )
    assert exp.model.name == "fcn4"
    assert exp.train.lr == pytest.approx(0.001) and isinstance(exp.train.lr, float)
    assert exp.train.steps == 30 and exp.train.deterministic is True
    assert exp.model.overrides == {"width": 0.5, "m": 4}


def test_yaml_int_promoted_to_float(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("train:\n  lr: 1\n")
    assert isinstance(Experiment.load(p).train.lr, float)


@pytest.mark.parametrize(
    "assignment, needle",
    [
        ("train.lrr=0.1", "unknown option 'train.lrr'"),
        ("train.steps=many", "'train.steps' expects int"),
        ("train.steps=1.5", "'train.steps' expects int"),
        ("train=3", "'train' is a section"),
        ("nonsense", "expected section.key=value"),
        ("train.deterministic=maybe", "expects bool"),
    ],
)
def test_bad_overrides_name_the_option(assignment, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        Experiment().apply_overrides([assignment])


def test_bad_yaml_names_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train:\n  lr: [1, 2\n  steps: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        Experiment.load(p)


def test_missing_and_non_mapping_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        Experiment.load(tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        Experiment.load(p)


# -- Experiment.validate(): the one home of choices, ranges and the rules between options ---------------------

# every closed set of the tree: (option, a wrong value, the choices the message must list)
CLOSED_SETS = [
    ("data.dataset", "nosuchdata", ["synthetic", "mtat", "jamendo", "fma", "folder"]),
    ("eval.split", "dev", ["train", "valid", "test"]),
    ("train.optimizer", "adagrad", ["sgd", "adam", "adamw"]),
    ("train.schedule", "sometimes", ["constant", "cosine", "plateau", "staged"]),
    ("train.precision", "fp8", ["float32", "mixed_bfloat16"]),
    ("model.name", "nosuchnet", ["samplecnn", "fcn4", "musicnn"]),
]


@pytest.mark.parametrize("option, wrong, choices", CLOSED_SETS, ids=[c[0] for c in CLOSED_SETS])
def test_a_wrong_choice_names_the_option_and_the_choices(option, wrong, choices):
    exp = Experiment().apply_overrides([f"{option}={wrong}"])  # any string is a str: merged fine
    with pytest.raises(ConfigError) as e:
        exp.validate()
    message = str(e.value)
    assert message.startswith(f"{option} {wrong!r}: "), message
    for choice in choices:
        assert choice in message, message


def test_declared_choices_are_the_tables_names():
    """The Literal choices come from the tables that build them: one list of names each."""
    import typing

    from hvd_magtag import config, data, schedules

    assert set(data.LOADERS) == set(config.DATASETS)
    assert typing.get_args(config.OptimizerName) == tuple(schedules.OPTIMIZERS)
    assert typing.get_args(config.ScheduleName) == tuple(schedules.SCHEDULES)
    assert data.SPLITS == config.SPLITS


@pytest.mark.parametrize("option", ["eval.windows", "train.valid_windows"])
@pytest.mark.parametrize("wrong", ["0", "-2", "ten", "1.5", "al"])
def test_windows_options(option, wrong):
    with pytest.raises(
        ConfigError, match=rf"^{option} '{wrong}': give a positive number of windows per clip or 'all'"
    ):
        Experiment().apply_overrides([f"{option}={wrong}"]).validate()
    Experiment().apply_overrides([f"{option}=ALL"]).validate()
    Experiment().apply_overrides([f"{option}=7"]).validate()


def test_parse_windows_is_one_rule_for_every_caller():
    from hvd_magtag.config import parse_windows

    assert parse_windows("all") == parse_windows(" ALL ") == parse_windows("All") == "all"
    assert parse_windows("10") == 10 and parse_windows(3) == 3
    for bad in ("0", "-2", "ten", "1.5", 1.5, True, None, ""):
        with pytest.raises(ConfigError, match=r"^--windows .*positive number of windows per clip or 'all'"):
            parse_windows(bad, "--windows")


@pytest.mark.parametrize(
    "assignment, needle",
    [
        ("train.batch_size=0", "train.batch_size=0: give a positive number of clips per rank"),
        ("train.steps=0", "train.steps=0: give a positive number of steps"),
        ("train.validate_every=0", "train.validate_every=0: give a positive number of steps"),
        ("train.checkpoint_every=-1", "train.checkpoint_every=-1: give a positive number of steps"),
        ("train.log_every=0", "train.log_every=0: give a positive number of steps"),
        ("train.commit_every=0", "train.commit_every=0: give a positive number of steps"),
        ("train.keep_checkpoints=0", "train.keep_checkpoints=0: give a positive number of checkpoints"),
        ("train.plateau_patience=0", "train.plateau_patience=0: give a positive number of validations"),
        ("train.plateau_factor=0", "train.plateau_factor=0.0: give a factor in (0, 1]"),
        ("train.plateau_factor=1.5", "train.plateau_factor=1.5: give a factor in (0, 1]"),
        ("train.momentum=1.2", "train.momentum=1.2: give a momentum in [0, 1]"),
        ("train.lr=-0.1", "train.lr=-0.1: give a learning rate >= 0"),
        ("train.warmup_steps=-5", "train.warmup_steps=-5: give steps >= 0"),
        ("train.clip_norm=-1", "train.clip_norm=-1.0: give a norm (0 = no clipping) >= 0"),
        ("eval.batch_size=0", "eval.batch_size=0: give a positive number of windows per batch"),
        ("data.min_duration=-1", "data.min_duration=-1.0: give seconds >= 0"),
    ],
)
def test_ranges_name_the_option(assignment, needle):
    with pytest.raises(ConfigError) as e:
        Experiment().apply_overrides([assignment]).validate()
    assert str(e.value) == needle


@pytest.mark.parametrize(
    "assignments, needle",
    [
        (
            ["train.precision=mixed_bfloat16", "train.mixed_precision=true"],
            "both pick a mixed policy; keep one",
        ),
        (["train.elastic=true", "train.schedule=plateau"], "train.schedule 'plateau' cannot run elastic"),
        (["train.elastic=true", "train.schedule=staged"], "choose one of constant, cosine"),
        (["train.schedule=staged", "train.stages=adam:1e-4@0,sgd@0.5"], "expected optimizer:lr@start"),
        (["train.schedule=staged", "train.stages=sgd:1e-3@10"], "first stage must start at 0"),
        (["train.schedule=staged", "train.stages=rmsprop:1e-3@0"], "optimizer 'rmsprop': choose one of sgd"),
        (["train.stages=adam:1e-4@0"], "train.stages 'adam:1e-4@0' is only read by train.schedule=staged"),
        (["model.overrides.dilaton=2"], "model.overrides.dilaton: model 'samplecnn' has no option 'dilaton'"),
        (["model.overrides.width=wide"], "model.overrides.width='wide': model 'samplecnn' expects float"),
    ],
)
def test_rules_between_options(assignments, needle):
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace("[", r"\[")):
        Experiment().apply_overrides(assignments).validate()


def test_valid_trees_pass_and_validate_returns_the_tree():
    exp = Experiment()
    assert exp.validate() is exp
    Experiment().apply_overrides(["train.elastic=true", "train.schedule=cosine"]).validate()
    Experiment().apply_overrides(["train.schedule=staged"]).validate()  # the default stages
    Experiment().apply_overrides(["model.name=fcn4", "data.dataset=folder", "eval.windows=all"]).validate()


def test_trees_built_in_python_are_type_checked():
    from hvd_magtag.config import TrainConfig

    with pytest.raises(ConfigError, match=r"option 'train.steps' expects int, got '5'"):
        Experiment(train=TrainConfig(steps="5")).validate()
    with pytest.raises(ConfigError, match=r"option 'train.deterministic' expects bool, got 1"):
        Experiment(train=TrainConfig(deterministic=1)).validate()


def test_load_leaves_validation_to_the_complete_tree(tmp_path):
    """A file may be completed by later --set values: load and apply_overrides only convert types."""
    p = tmp_path / "exp.yaml"
    p.write_text("train:\n  elastic: true\n  schedule: plateau\n")
    exp = Experiment.load(p)
    with pytest.raises(ConfigError, match="cannot run elastic"):
        exp.validate()
    exp.apply_overrides(["train.schedule=cosine"]).validate()


def test_packaged_configs_are_valid():
    from hvd_magtag import resources

    for name in resources.configs():
        Experiment.load(resources.config(name)).validate()
