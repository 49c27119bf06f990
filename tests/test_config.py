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
