"""hvd_magtag.demo: its YAML is a valid experiment, bad options fail in one line, and a tiny demo runs end to end."""

import sys

import pytest
from test_quiet import mpi_lines, tf_lines, user_env
from train_fixtures import TINY_SETTINGS

from hvd_magtag import demo
from hvd_magtag.config import Experiment


def test_demo_config_is_a_valid_experiment():
    from hvd_magtag.models.registry import get_spec

    exp = Experiment.load(demo.DEMO_CONFIG_NAME).validate()  # every option, choice and rule
    spec = get_spec(exp.model.name, **exp.model.overrides)
    assert spec.window / spec.sample_rate <= demo.DEMO_CLIP_SECONDS  # a window fits in a synthetic clip


def test_bad_demo_options(tmp_path, capsys):
    assert demo.main(["--data", str(tmp_path), "--runs", str(tmp_path), "--np", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --np 0: give at least 1 rank"
    missing = tmp_path / "nope.yaml"
    assert demo.main(["--data", str(tmp_path), "--runs", str(tmp_path), "--config", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: --config {missing}: no such config file, nor a packaged config (packaged: demo)"
    )


def test_launcher_is_horovodrun_for_several_ranks():
    assert demo.launcher(1) == []
    cmd = demo.launcher(3)
    assert cmd[0].endswith("horovodrun") and cmd[1:] == ["-np", "3"]


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_tiny_demo_end_to_end(tmp_path):
    """Synthesis (absent dataset), training and test evaluation through the demo's own subprocesses."""
    import subprocess

    config = tmp_path / "tiny.yaml"
    config.write_text("train: {steps: 4, validate_every: 2, checkpoint_every: 2}\n")
    cmd = [
        sys.executable,
        "-m",
        "hvd_magtag.demo",
        "--data",
        str(tmp_path / "data"),
        "--runs",
        str(tmp_path / "runs"),
        "--np",
        "1",
        "--config",
        str(config),
        "--clips",
        "40",
        "--clip-seconds",
        "1",
    ]
    for s in TINY_SETTINGS:
        cmd += ["--set", s]
    # the user's environment (no TF_CPP_MIN_LOG_LEVEL): the demo is quiet by itself (issue 17; 2 ranks: test_quiet)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=user_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tf_lines(proc.stdout + proc.stderr) == [] and mpi_lines(proc.stdout + proc.stderr) == []
    (run_dir,) = (tmp_path / "runs").iterdir()
    out = proc.stdout
    assert "[demo] test macro ROC-AUC" in out and f"[demo] run directory: {run_dir}" in out
    assert (
        "--logdir" in out
        and (run_dir / "results.json").is_file()
        and (run_dir / "per_tag_test.csv").is_file()
    )
    assert "macro" in proc.stdout + proc.stderr  # the evaluation table
    assert out.count("ROC-AUC   PR-AUC") == 1  # printed once, by the demo; evaluate's copy goes to its log
    assert "ROC-AUC   PR-AUC" in (run_dir / "evaluate_test.log").read_text()
    # a second demo reuses the dataset instead of synthesising it again
    # ... and with --verbose TensorFlow's start-up lines are back (in training's and evaluation's processes)
    again = subprocess.run(cmd + ["--verbose"], capture_output=True, text=True, env=user_env(), timeout=600)
    assert again.returncode == 0 and "(already there)" in again.stdout
    assert len([ln for ln in tf_lines(again.stderr) if "oneDNN custom operations" in ln]) >= 2, again.stderr
