"""End-to-end training runs on a tiny synthetic dataset (one process): run directory contents, evaluation,
exact resume after SIGKILL, refusal to resume another architecture, one-line errors."""

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from train_fixtures import child_env, run, tiny_dataset, train_command, weights

from hvd_magtag.rundir import RunDir
from hvd_magtag.train import weights_digest


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    """A finished 6-step run (validation and checkpoint every 3 steps), then evaluated on the test split."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    proc = run(
        train_command(
            data,
            run_dir,
            "--steps",
            "6",
            "--set",
            "train.validate_every=3",
            "--set",
            "train.checkpoint_every=3",
        )
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ev = run([sys.executable, "-m", "hvd_magtag.evaluate", str(run_dir)])
    assert ev.returncode == 0, ev.stderr[-3000:]
    return run_dir, proc, ev


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_run_directory_holds_everything(trained, data):
    run_dir, proc, ev = trained
    run = RunDir(run_dir)
    info = run.info
    assert info["model"] == "samplecnn" and info["overrides"] == {"m": 3, "n": 5, "width": 0.0625}
    assert info["spec"]["window"] == 729 and len(info["tags"]) == 50 and info["world_size"] == 1
    assert {"keras", "numpy", "python"} <= set(info["versions"])
    assert run.config.train.steps == 6 and run.config.data.root == str(data)
    events = run.read_metrics()
    assert [e["step"] for e in events if e["event"] == "train"] == [2, 4, 6]
    assert [e["step"] for e in events if e["event"] == "valid"] == [3, 6]
    assert all(np.isfinite(e["loss"]) for e in events if e["event"] != "done")
    (done,) = [e for e in events if e["event"] == "done"]
    assert events[-1] is done and done["step"] == 6 and done["world_size"] == 1
    assert re.fullmatch(r"[0-9a-f]{64}", done["weights_sha256"])
    assert sorted(p.name for p in run.checkpoint_dir.iterdir()) == ["step-00000003", "step-00000006"]
    assert json.loads((run.checkpoint_dir / "step-00000006" / "state.json").read_text())["step"] == 6
    assert run.last_weights.is_file() and run.weights_path("best").is_file()
    assert list(run.tensorboard_dir.glob("events.out.tfevents.*"))
    # the model rebuilt from run.json loads the saved weights: same arrays as the file
    model = run.load_model("last")
    assert model.count_params() == info["n_params"]
    assert weights_digest(model) == done["weights_sha256"], "the recorded digest is the saved weights'"
    # evaluation: results.json (test split) and the per-tag CSV, table printed
    res = run.results["test"]
    assert res["n_clips"] == len([c for c in run_catalog(run).clips if c.split == "test"])
    assert res["windows"] == 2 and res["weights"] == "best"
    assert (run.path / "per_tag_test.csv").read_text().startswith("tag,positives,roc_auc,pr_auc,note")
    assert "macro" in ev.stdout + ev.stderr
    assert "Traceback" not in proc.stderr


def run_catalog(run):
    from hvd_magtag.data import load_catalog

    return load_catalog(run.config.data)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_evaluate_matches_sklearn_on_saved_weights(trained):
    """evaluate's numbers = tag_aucs on predictions recomputed here from the run's best weights."""
    from sklearn.metrics import roc_auc_score

    from hvd_magtag import distributed
    from hvd_magtag.data import pipeline

    run_dir, _, _ = trained
    run = RunDir(run_dir)
    catalog = run_catalog(run)
    clips = [c for c in catalog.clips if c.split == "test"]
    model = run.load_model("best")
    ds = pipeline.eval_dataset(clips, run.spec, windows=2, batch_size=16)
    preds, index = [], []
    for x, _, ci in ds:
        preds.append(model(x, training=False).numpy())
        index.append(ci.numpy())
    preds, index = np.concatenate(preds), np.concatenate(index)
    clip_scores = np.stack([preds[index == i].mean(0) for i in range(len(clips))])
    labels = np.stack([c.labels for c in clips])
    res = run.results["test"]
    for j, tag in enumerate(catalog.tags):
        if tag in res["per_tag"]:
            assert res["per_tag"][tag]["roc_auc"] == pytest.approx(
                roc_auc_score(labels[:, j], clip_scores[:, j]), abs=1e-5
            )
    assert distributed.init().size == 1


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_sigkill_then_resume_equals_uninterrupted(data, tmp_path):
    steps = ["--steps", "40", "--set", "train.checkpoint_every=4", "--set", "train.validate_every=20"]
    straight = tmp_path / "straight"
    proc = run(train_command(data, straight, *steps))
    assert proc.returncode == 0, proc.stderr[-3000:]

    killed = tmp_path / "killed"
    child = subprocess.Popen(
        train_command(data, killed, *steps),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=child_env(),
    )
    first = killed / "checkpoints" / "step-00000008" / "state.json"
    deadline = time.monotonic() + 240
    while not first.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert first.exists(), "the run never wrote its step-8 checkpoint"
    assert not RunDir(killed).last_weights.exists(), "the run finished before it could be killed"
    stopped_at = max(int(p.name.split("-")[1]) for p in (killed / "checkpoints").glob("step-*"))
    assert stopped_at < 40

    resumed = run(train_command(data, killed, *steps))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {killed}" in resumed.stderr
    for a, b in zip(
        weights(RunDir(straight).last_weights), weights(RunDir(killed).last_weights), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
    # metrics.jsonl: every step logged once, as in the uninterrupted run
    steps_logged = [(e["event"], e["step"]) for e in RunDir(killed).read_metrics()]
    assert steps_logged == [(e["event"], e["step"]) for e in RunDir(straight).read_metrics()]

    # same seed, same settings, fresh directory: the same weights (deterministic mode)
    again = tmp_path / "again"
    assert run(train_command(data, again, "--steps", "8")).returncode == 0
    twice = tmp_path / "twice"
    assert run(train_command(data, twice, "--steps", "8")).returncode == 0
    for a, b in zip(weights(RunDir(again).last_weights), weights(RunDir(twice).last_weights), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_resuming_another_architecture_is_refused(trained, data):
    run_dir, _, _ = trained
    before = (run_dir / "config.json").read_text()
    other = run(train_command(data, run_dir, "--steps", "8", "--set", "model.overrides.width=0.125"))
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert other.stderr.strip().splitlines()[-1] == (
        f"error: {run_dir}: was trained as model 'samplecnn' with overrides {{'m': 3, 'n': 5, 'width': 0.0625}}, "
        "this run asks for 'samplecnn' with {'m': 3, 'n': 5, 'width': 0.125}; use a new --run-dir or the run's "
        "own config.json"
    )
    assert (run_dir / "config.json").read_text() == before  # the run directory is left untouched


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--set", "model.name=nosuchnet"], "error: model.name 'nosuchnet': unknown model; choose one of"),
        (
            ["--set", "model.overrides.dilaton=2"],
            "error: model.overrides.dilaton: model 'samplecnn' has no option 'dilaton'",
        ),
        (["--set", "train.schedule=sometimes"], "error: train.schedule 'sometimes': choose one of"),
        (["--set", "train.valid_windows=0"], "error: train.valid_windows '0': give a positive number"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, extra, needle):
    """Checked before any data is read (the dataset folder here does not even exist)."""
    from hvd_magtag.train import main

    cmd = train_command(tmp_path / "no_data", tmp_path / "r", *extra)[3:]  # drop "python -m hvd_magtag.train"
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(cmd)
    assert code == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(needle), err.getvalue()


def test_missing_dataset_is_one_line_error(tmp_path):
    proc = run(train_command(tmp_path / "no_such_dataset", tmp_path / "r"))
    assert proc.returncode == 3  # EXIT_DATA
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "no_such_dataset" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
