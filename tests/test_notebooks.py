"""Every notebook executed under papermill with smoke parameters (tiny data, a few steps, 1 and 2 ranks),
and what it produces checked."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hvd_magtag import experiments, resources

pytestmark = [pytest.mark.notebook, pytest.mark.timeout(900)]

NB = resources.notebooks_dir()
TINY = {"width": 0.0625, "window": 33000}  # shortchunk_cnn at 1/16 width on its smallest window (128 frames)


def execute(name: str, out: Path, **parameters) -> dict:
    import nbformat
    import papermill

    path = out / f"{name}.out.ipynb"
    papermill.execute_notebook(
        str(NB / f"{name}.ipynb"),
        str(path),
        parameters=parameters,
        kernel_name=experiments.KERNEL_NAME,
        progress_bar=False,
        cwd=str(out),
    )
    return nbformat.read(path, as_version=4)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb") / "synthetic"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "hvd_magtag.data.synth",
            "--out",
            str(root),
            "--clips",
            "96",
            "--seconds",
            "2",
            "--seed",
            "3",
        ],
        check=True,
        timeout=300,
    )
    return root


@pytest.fixture(scope="module")
def runs(tiny_dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("nb_runs")
    made = []
    for ranks in (1, 2):
        run_dir = out / f"run_np{ranks}"
        execute(
            "experiment",
            out,
            run_dir=str(run_dir),
            data_root=str(tiny_dataset),
            model="shortchunk_cnn",
            overrides=TINY,
            optimizer="adam",
            lr=0.003,
            batch_size=4,
            ranks=ranks,
            steps=6,
            validate_every=3,
            eval_windows="2",
            settings={"train.valid_windows": "1", "train.log_every": 2},
        )
        made.append(run_dir)
    return made


def test_experiment_notebook_trains_evaluates_and_plots(runs):
    for run_dir, ranks in zip(runs, (1, 2)):
        info = json.loads((run_dir / "run.json").read_text())
        assert info["world_size"] == ranks
        results = json.loads((run_dir / "results.json").read_text())
        assert 0.0 <= results["test"]["roc_auc"] <= 1.0
        assert (run_dir / "learning_curves.png").stat().st_size > 1000
        assert (run_dir / "predictions_test.npz").is_file()
        assert (run_dir / "train.log").read_text().count("\n") > 3


def test_report_notebook_compares_runs_and_analyses(runs, tmp_path):
    out = tmp_path / "report"
    nb = execute(
        "report", tmp_path, run_dirs=[str(r) for r in runs], analysis=True, analysis_clips=2, out_dir=str(out)
    )
    for figure in ("per_tag_auc.png", "roc_pr.png", "cooccurrence_vs_confusion.png", "taggram.png"):
        assert (out / figure).stat().st_size > 1000, figure
    for run in runs:
        assert any((out / f"analysis_{run.name}" / "featuremaps").rglob("*.wav"))
        assert any((out / f"analysis_{run.name}" / "filters").rglob("*.png"))
    outputs = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "audio" in outputs  # players for the taggram clip and the feature maps


def test_explore_notebook(tiny_dataset, tmp_path):
    nb = execute(
        "explore", tmp_path, data_root=str(tiny_dataset), listen_tags=["guitar", "techno"], per_tag=1
    )
    text = json.dumps([c.get("outputs", []) for c in nb.cells])
    assert "synthetic" in text and "decode" in text
