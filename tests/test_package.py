"""The package as a user installs it: the wheel holds everything the code reads, and a fresh environment with
only that wheel (plus the project's already-built dependencies) runs synth, train, evaluate, tag and a
packaged notebook from an unrelated folder.

The fresh environment: ``python -m venv --without-pip`` (no copies, well under a second) whose site-packages
holds one ``.pth`` line naming this venv's site-packages, so TensorFlow, Horovod and the rest (built once by
``make install``) are importable without being rebuilt. A ``.pth`` line only appends a folder to
``sys.path``; the ``.pth`` files inside that folder are not run, so this venv's editable hvd_magtag (an
import hook installed by its own ``.pth``) is invisible there, and the wheel's copy, installed into the fresh
site-packages that comes first on ``sys.path``, is the one imported (checked below). ``--system-site-packages``
would not do: the dependencies live in this venv, not in the base interpreter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "hvd_magtag"
#: source-tree folders never copied into the build (venv, caches, outputs of earlier runs)
IGNORED = (".git", ".venv", "build", "dist", "runs", "lab", "bench-results", "__pycache__", "*.egg-info")


def _pip(*args: str, python: str = sys.executable, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    return subprocess.run([python, "-m", "pip", *args], capture_output=True, text=True, env=env, **kwargs)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``pip wheel --no-deps`` of a copy of the source tree (a build in the tree would leave build/ behind,
    whose stale files later builds would package)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(*IGNORED))
    proc = _pip(
        "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(base / "dist"), str(src), timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (base / "dist").glob("hvd_magtag-*.whl")
    return path


def test_wheel_holds_every_module_and_packaged_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {
        p.relative_to(REPO).as_posix()
        for p in PACKAGE.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts
    }
    assert source - names == set(), "in the source tree but not in the wheel"
    assert {n for n in names if n.startswith("hvd_magtag/")} == source, "in the wheel but not in the source"
    for must in (
        "hvd_magtag/resources/configs/demo.yaml",
        "hvd_magtag/resources/datasets/mtat/top50_tags.txt",
        "hvd_magtag/resources/notebooks/explore.ipynb",
        "hvd_magtag/resources/notebooks/grids/kernel_size.yaml",
        "hvd_magtag/resources/templates/featuremaps.html.j2",
    ):
        assert must in names


def _site_packages() -> list[str]:
    paths = sysconfig.get_paths()
    return list(dict.fromkeys(str(Path(paths[k]).resolve()) for k in ("purelib", "platlib")))


@pytest.fixture(scope="module")
def fresh(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel (see the module docstring); returns its python."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    (site / "project-dependencies.pth").write_text("".join(p + "\n" for p in _site_packages()))
    proc = _pip(
        "install",
        "--no-deps",
        "--ignore-installed",
        "--no-compile",
        "-q",
        str(wheel),
        python=str(python),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return python


def test_fresh_environment_imports_the_wheel(fresh, tmp_path):
    """From an unrelated folder (the source tree's own folder would put its hvd_magtag first on sys.path)."""
    where = subprocess.check_output(
        [
            fresh,
            "-c",
            "import hvd_magtag, hvd_magtag.resources as r; print(hvd_magtag.__file__); print(r.config('demo'))",
        ],
        text=True,
        cwd=tmp_path,
        env=_clean_env(tmp_path / "home"),
    ).split()
    venv = fresh.parent.parent
    assert all(Path(w).is_relative_to(venv) and not Path(w).is_relative_to(REPO) for w in where), where


def _clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without launcher, toolkit, XDG, Jupyter or Python path settings; HOME=home."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("HVD_MAGTAG_", "OMPI_", "PMIX_", "PMI_", "HOROVOD_", "XDG_", "JUPYTER_", "PYTHON")
        )
    }
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")
    return env


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.timeout(2400)
def test_installed_wheel_runs_synth_train_evaluate_tag_and_a_notebook(fresh, tmp_path):
    work = tmp_path / "elsewhere"  # an unrelated working folder; HOME too, so every default lands in tmp_path
    work.mkdir()
    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("HVD_MAGTAG_", "OMPI_", "PMIX_", "PMI_", "HOROVOD_", "XDG_", "JUPYTER_", "PYTHON")
        )
    }
    env.update(HOME=str(home), PYTHONUNBUFFERED="1")

    def run(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(fresh), *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
        return proc

    # the synthetic dataset at its default location (hvd_magtag.locations: ~/.local/share/hvd_magtag/synthetic)
    run("-m", "hvd_magtag.data.synth", "--clips", "40", "--seconds", "2", "--workers", "1", "--seed", "3")
    data = home / ".local/share/hvd_magtag/synthetic"
    assert (data / "annotations_final.csv").is_file()

    # the packaged demo config by name, shrunk; no --run-dir and no data.root: the documented defaults
    run(
        "-m", "hvd_magtag.train", "--config", "demo", "--steps", "2",
        "--set", "model.overrides={width: 0.0625, window: 33000}", "--set", "train.batch_size=4",
        "--set", "train.warmup_steps=0", "--set", "train.validate_every=2", "--set", "train.checkpoint_every=2",
        "--set", "train.valid_windows=1", "--set", "eval.windows=2", "--set", "eval.batch_size=8",
        timeout=1200,
    )  # fmt: skip
    (run_dir,) = (work / "runs").iterdir()
    assert json.loads((run_dir / "config.json").read_text())["model"]["name"] == "shortchunk_cnn"

    run("-m", "hvd_magtag.evaluate", str(run_dir), "--split", "test", timeout=1200)
    assert 0.0 <= json.loads((run_dir / "results.json").read_text())["test"]["roc_auc"] <= 1.0

    song = next(data.glob("d/*.mp3"))
    tagged = run(
        "-m", "hvd_magtag.tag", str(song), "--model", str(run_dir), "--top-k", "3", "--format", "json"
    )
    out = json.loads(tagged.stdout)
    assert song.name in tagged.stdout and len(out["tags"]) == 50 and '"prob"' in tagged.stdout

    # a packaged notebook, copied out by the documented command, under papermill with the fresh venv's kernel
    run("-m", "hvd_magtag.notebooks", "copy", "nb")
    run("-m", "ipykernel", "install", "--sys-prefix", "--name", "hvd_magtag")
    run(
        "-m", "papermill", "nb/explore.ipynb", "explore.out.ipynb", "-k", "hvd_magtag", "--no-progress-bar",
        "-y", "{data_root: '', listen_tags: [guitar], per_tag: 1}",
        timeout=1200,
    )  # fmt: skip
    executed = json.loads((work / "explore.out.ipynb").read_text())
    text = json.dumps([c.get("outputs", []) for c in executed["cells"]])
    assert "synthetic: " in text and " decode; splits " in text
    kernel = json.loads((fresh.parent.parent / "share/jupyter/kernels/hvd_magtag/kernel.json").read_text())
    assert kernel["argv"][0] == str(fresh)
