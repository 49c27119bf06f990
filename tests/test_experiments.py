"""Experiment batches: grid expansion, parameter validation, a failing point, the results table."""

import json
from pathlib import Path

import pandas as pd
import pytest

from hvd_magtag import experiments, resources
from hvd_magtag.experiments import ExperimentError

FAKE = Path(__file__).parent / "fixtures" / "notebooks" / "fake_experiment.ipynb"


def write_grid(tmp_path, text):
    p = tmp_path / "grid.yaml"
    p.write_text(text.replace("NOTEBOOK", str(FAKE)))
    return p


def test_grid_is_the_cartesian_product_plus_points(tmp_path):
    grid = write_grid(
        tmp_path,
        "notebook: NOTEBOOK\nbase: {model: a, steps: 3}\ngrid:\n  lr: [0.1, 0.01]\n  overrides: [{m: 2}, {m: 3}]\n"
        "points:\n  - {model: b}\n",
    )
    notebook, points = experiments.load_grid(grid)
    assert notebook == FAKE
    assert len(points) == 5
    assert {(p["lr"], p["overrides"]["m"]) for p in points[:4]} == {(0.1, 2), (0.1, 3), (0.01, 2), (0.01, 3)}
    assert points[4] == {"model": "b", "steps": 3}
    assert experiments.point_name(points[0], ["lr", "overrides"]) == "lr=0.1__overrides=m2"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("grid: {lr: 0.1}\n", "non-empty list"),
        ("grd: {}\n", "unknown key"),
        ("- 1\n", "expected a mapping"),
        ("points: [3]\n", "mapping of parameters"),
    ],
)
def test_bad_grid_files_are_named(tmp_path, text, needle):
    with pytest.raises(ExperimentError, match=needle):
        experiments.load_grid(write_grid(tmp_path, text))


def test_unknown_parameter_is_refused_before_running(tmp_path):
    grid = write_grid(tmp_path, "notebook: NOTEBOOK\ngrid: {valu: [1, 2]}\n")
    with pytest.raises(ExperimentError, match=r"unknown notebook parameter\(s\) \['valu'\]"):
        experiments.run_grid(grid, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.mark.notebook
def test_batch_with_a_failing_point_completes_the_others(tmp_path):
    grid = write_grid(
        tmp_path,
        "notebook: NOTEBOOK\ngrid: {value: [1, 2, 3]}\npoints:\n  - {value: 4, fail: true}\n",
    )
    out = tmp_path / "out"
    rc = experiments.main(["run", str(grid), "--out", str(out)])
    assert rc == 1  # something failed
    batch = json.loads((out / "batch.json").read_text())
    assert [s["status"] for s in batch] == ["ok", "ok", "ok", "failed"]
    assert "fails on purpose" in batch[3]["error"]
    assert (out / "value=2" / "fake_experiment.ipynb").is_file()
    assert (out / "value=4__fail=True" / "status.json").is_file()

    assert experiments.main(["table", str(out), "--out", str(out / "results")]) == 0
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 4
    by_value = table.set_index("param.value")
    assert by_value.loc[4, "status"] == "failed"
    assert by_value.loc[2, "parameters"] == 20
    assert by_value.loc[3, "test_roc_auc"] == pytest.approx(0.63)
    assert by_value.loc[1, "valid_roc_auc"] == pytest.approx(0.6)
    assert (out / "results.xlsx").stat().st_size > 0
    assert "| run |" in (out / "results.md").read_text()


GRIDS = sorted((resources.notebooks_dir() / "grids").glob("*.yaml"))


@pytest.mark.parametrize("grid", GRIDS, ids=[g.stem for g in GRIDS])
def test_shipped_grids_validate_and_name_registered_models(grid, tmp_path):
    from hvd_magtag.models import get_spec, list_models

    statuses = experiments.run_grid(grid, tmp_path / "out", dry_run=True)
    assert len(statuses) >= 2 and len({s["name"] for s in statuses}) == len(statuses)
    for s in statuses:
        params = s["parameters"]
        assert params["model"] in list_models()
        get_spec(params["model"], **params.get("overrides", {}))  # overrides are accepted by the spec


@pytest.mark.parametrize(
    "grid_text, message",
    [
        ("base: {model: samplecnn_dilated}\ngrid: {overrides: [{dilation: 2}, {dilaton: 4}]}",
         "grid point 1 (experiment.ipynb): model.overrides.dilaton: model 'samplecnn_dilated' has no option "
         "'dilaton' (did you mean 'dilation'?)"),
        ("grid: {overrides: [{width: 0.5}, {pool: 3}]}",  # the notebook's default model
         "grid point 1 (experiment.ipynb): model.overrides.pool=3: model 'shortchunk_cnn' expects str"),
        ("grid: {model: [samplecnn, samplcnn]}", "grid point 1 (experiment.ipynb): model.name 'samplcnn'"),
    ],
)  # fmt: skip
def test_grid_with_a_bad_model_or_override_fails_before_any_point_runs(tmp_path, grid_text, message):
    grid = tmp_path / "typo.yaml"
    grid.write_text(f"notebook: {resources.notebook('experiment')}\n{grid_text}\n")
    with pytest.raises(experiments.ExperimentError) as info:
        experiments.run_grid(grid, tmp_path / "out", dry_run=True)
    assert str(info.value).startswith(message), str(info.value)
    assert not (tmp_path / "out").exists()


def test_study_questions_all_have_a_grid():
    names = {g.stem for g in GRIDS}
    assert {
        "kernel_size",
        "dilation",
        "multikernel",
        "residual_se",
        "stochastic_pooling",
        "windowing",
        "raw_vs_fbank",
    } <= names


@pytest.mark.parametrize("name", ["experiment", "report", "explore"])
def test_every_parameter_line_is_seen_by_papermill(name):
    """papermill silently drops a parameter whose line it cannot parse; count them against the cell."""
    import nbformat
    import papermill

    path = resources.notebook(name)
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    assigned = [line.split("=")[0].strip() for line in cells[0].source.splitlines() if "=" in line]
    assert list(papermill.inspect_notebook(str(path))) == assigned


def test_table_over_folders_without_runs_is_an_error_naming_the_folder(tmp_path, capsys):
    stray = tmp_path / "not_runs"
    (stray / "sub").mkdir(parents=True)
    (stray / "sub" / "notes.txt").write_text("no run here\n")
    out = tmp_path / "table"
    assert experiments.main(["table", str(stray), "--out", str(out)]) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {stray}: no run directory in it") and "\n" not in err
    assert not list(tmp_path.glob("table*")), "no empty table written"

    run = (
        tmp_path / "runs" / "a"
    )  # a folder with runs next to one without: still an error, naming the empty one
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"status": "failed", "error": "x", "parameters": {}}))
    assert experiments.main(["table", str(tmp_path / "runs"), str(stray), "--out", str(out)]) == 4
    assert str(stray) in capsys.readouterr().err
    assert experiments.main(["table", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert experiments.main(["table", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
