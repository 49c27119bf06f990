"""Packaged data (hvd_magtag.resources), default locations (hvd_magtag.locations) and the notebooks command:
nothing in the package looks outside it for its own files, and every default path is the documented one."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hvd_magtag import locations, notebooks, resources
from hvd_magtag.config import ConfigError, Experiment
from hvd_magtag.data import mtat

PACKAGE = Path(resources.__file__).resolve().parents[1]
README = PACKAGE.parent / "README.md"


def test_no_module_reaches_outside_the_package_through_its_own_path():
    """``Path(__file__).parents[N]`` (or ``.parent.parent``) leads to the source checkout, absent in a wheel."""
    offenders = []
    for py in PACKAGE.rglob("*.py"):
        text = py.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
                if node.value.attr == "parents" and "__file__" in ast.unparse(node):
                    offenders.append(f"{py.relative_to(PACKAGE)}:{node.lineno}")
        if re.search(r"__file__\)?(\.resolve\(\))?\.parent\.parent", text):
            offenders.append(str(py.relative_to(PACKAGE)))
    assert not offenders


def test_packaged_names():
    assert resources.configs() == ["demo"]
    assert resources.notebooks() == ["experiment", "explore", "report"]
    assert {"kernel_size", "dilation", "windowing"} <= set(resources.grids())
    for name in ("demo", "demo.yaml"):
        assert resources.config(name) == resources.path("configs", "demo.yaml")
    assert resources.notebook("report.ipynb") == resources.notebooks_dir() / "report.ipynb"


def test_an_existing_file_wins_over_a_packaged_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").write_text("train: {steps: 7}\n")
    assert resources.config("demo") == Path("demo")
    assert Experiment.load("demo").train.steps == 7
    (tmp_path / "demo").unlink()
    assert Experiment.load("demo").train.steps == Experiment.load(resources.config("demo")).train.steps != 7


def test_unknown_names_say_what_is_packaged(tmp_path):
    with pytest.raises(
        resources.ResourceError,
        match=r"nosuch: no such config file, nor a packaged config \(packaged: demo\)",
    ):
        resources.config("nosuch")
    with pytest.raises(resources.ResourceError, match="packaged: .*kernel_size"):
        resources.grid("kernel")
    with pytest.raises(resources.ResourceError, match="packaged file missing"):
        resources.path("datasets", "mtat", "nope.txt")
    with pytest.raises(ConfigError, match=r"nosuch\.yaml: cannot read config file.*packaged configs: demo"):
        Experiment.load(tmp_path / "nosuch.yaml")


def test_loaders_read_the_packaged_lists():
    assert len(mtat.load_top50_tags()) == 50 and len(mtat.load_tag_columns_188()) == 188
    assert mtat._shipped("top50_tags.txt").is_relative_to(PACKAGE / "resources" / "datasets")


def test_default_locations(tmp_path, monkeypatch):
    for name in (
        locations.RUNS_ENV,
        locations.DATA_ENV,
        locations.CACHE_ENV,
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert locations.runs_dir() == tmp_path / "runs"
    assert locations.dataset_dir("synthetic") == tmp_path / "home/.local/share/hvd_magtag/synthetic"
    assert locations.cache_dir("manifests") == tmp_path / "home/.cache/hvd_magtag/manifests"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: relative values are ignored
    assert locations.data_dir() == tmp_path / "xdg-data/hvd_magtag"
    assert locations.cache_dir() == tmp_path / "home/.cache/hvd_magtag"
    monkeypatch.setenv(locations.RUNS_ENV, "my_runs")  # relative: to the folder the command starts in
    monkeypatch.setenv(locations.DATA_ENV, str(tmp_path / "d"))
    monkeypatch.setenv(locations.CACHE_ENV, "~/c")
    assert locations.runs_dir() == tmp_path / "my_runs"
    assert locations.dataset_dir("synthetic") == tmp_path / "d/synthetic"
    assert locations.cache_dir("pretrained") == tmp_path / "home/c/pretrained"
    monkeypatch.setenv(locations.RUNS_ENV, "")  # empty = unset
    assert locations.runs_dir() == tmp_path / "runs"
    with pytest.raises(ValueError, match="cache kind 'models' is not one of manifests, pretrained"):
        locations.cache_dir("models")
    assert not (tmp_path / "runs").exists() and not (tmp_path / "home").exists(), "nothing is created"


def test_readme_documents_the_locations():
    section = README.read_text().split("## Where files go", 1)[1].split("\n## ", 1)[0]
    for name in (
        locations.RUNS_ENV,
        locations.DATA_ENV,
        locations.CACHE_ENV,
        "XDG_DATA_HOME",
        "XDG_CACHE_HOME",
    ):
        assert name in section
    for kind in locations.CACHE_KINDS:
        assert f"{kind}/" in section


def test_synthetic_dataset_default_root_is_the_documented_location(tmp_path, monkeypatch):
    from hvd_magtag.config import DataConfig
    from hvd_magtag.data.catalog import MetadataError

    monkeypatch.setenv(locations.DATA_ENV, str(tmp_path))
    with pytest.raises(MetadataError, match=f"{tmp_path / 'synthetic' / 'annotations_final.csv'}: not found"):
        mtat.synthetic_from_config(DataConfig(dataset="synthetic"))


def test_notebooks_copy_keeps_edits_and_grids_find_the_copied_notebook(tmp_path):
    from hvd_magtag import experiments

    dest = tmp_path / "mine"
    proc = subprocess.run(
        [sys.executable, "-m", "hvd_magtag.notebooks", "copy", str(dest)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    copied = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert copied == [p.as_posix() for p in notebooks.packaged_files()]
    assert {"experiment.ipynb", "explore.ipynb", "report.ipynb", "grids/kernel_size.yaml"} <= set(copied)
    assert (dest / "report.ipynb").read_bytes() == resources.notebook("report").read_bytes()

    (dest / "report.ipynb").write_text("{}")  # the user's edit
    written, kept = notebooks.copy(dest)
    assert not written and dest / "report.ipynb" in kept and (dest / "report.ipynb").read_text() == "{}"
    notebooks.copy(dest, force=True)
    assert (dest / "report.ipynb").read_bytes() == resources.notebook("report").read_bytes()

    notebook, points = experiments.load_grid(dest / "grids" / "kernel_size.yaml")
    assert notebook == dest / "experiment.ipynb" and points
    packaged_nb, _ = experiments.load_grid("kernel_size")
    assert packaged_nb == resources.notebook("experiment")

    (tmp_path / "file").write_text("")
    assert notebooks.main(["copy", str(tmp_path / "file")]) == 2
