"""Experiment batches: a grid of runs → papermill executions of the experiment notebook → a results table.

    python -m hvd_magtag.experiments run GRID.yaml --out runs/kernel_size [--kernel hvd_magtag] [--dry-run]
    python -m hvd_magtag.experiments run kernel_size --out runs/kernel_size      # a packaged grid by name
    python -m hvd_magtag.experiments table runs/kernel_size [more run dirs or folders] --out runs/kernel_size/results

A grid file::

    notebook: experiment.ipynb        # optional; a relative name is looked up beside the grid file, in the
                                      # folder above it, then among the packaged notebooks
    base:                             # parameters shared by every point (the notebook's parameters cell)
      model: samplecnn
      steps: 2000
    grid:                             # cartesian product of these values
      overrides: [{m: 2, n: 13}, {m: 3, n: 9}, {m: 4, n: 7}]
      lr: [0.01, 0.001]
    points: []                        # or an explicit list of parameter dicts (added after the product)

Every point is validated against the notebook's parameters cell before anything runs; a failing point is
recorded (``status.json``) and the batch goes on. The notebook launches ``horovodrun`` itself (see
:func:`train_command`), so no Horovod process ever lives inside a Jupyter kernel.
"""

from __future__ import annotations

import ast
import itertools
import json
import logging
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from hvd_magtag import cli, jobs, resources
from hvd_magtag.errors import ConfigError
from hvd_magtag.models import get_entry
from hvd_magtag.rundir import RunDir, RunDirError

log = logging.getLogger("hvd_magtag.experiments")

KERNEL_NAME = (
    "hvd_magtag"  # registered by `make install` (python -m ipykernel install --sys-prefix --name ...)
)


class ExperimentError(ConfigError):
    """A grid file or parameter is wrong; the message names it (exit 2)."""


# -- launching one training run (used by notebooks/experiment.ipynb) -------------------------------------
def train_command(
    run_dir: str | Path,
    *,
    np: int = 1,
    config: str | Path | None = None,
    model: str | None = None,
    overrides: dict[str, Any] | None = None,
    data_root: str | None = None,
    dataset: str | None = None,
    settings: dict[str, Any] | None = None,
) -> list[str]:
    """The command that trains one run: ``horovodrun -np N python -m hvd_magtag.train ...``.

    ``settings`` maps dotted config keys to values (``{"train.lr": 0.01}``) and becomes ``--set`` flags;
    ``overrides`` are the model's create_model overrides (``model.overrides.<key>``).
    """
    py = Path(sys.executable)
    cmd: list[str] = []
    if np > 1:
        cmd += [str(jobs.horovodrun_path()), "-np", str(np)]
    cmd += [str(py), "-m", "hvd_magtag.train", "--run-dir", str(run_dir)]
    if config:
        cmd += ["--config", str(config)]
    sets: dict[str, Any] = {}
    if model:
        sets["model.name"] = model
    if dataset:
        sets["data.dataset"] = dataset
    if data_root:
        sets["data.root"] = data_root
    for key, value in (overrides or {}).items():
        sets[f"model.overrides.{key}"] = value
    sets.update(settings or {})
    for key, value in sets.items():
        cmd += ["--set", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return cmd


def evaluate_command(
    run_dir: str | Path, *, np: int = 1, split: str = "test", windows: str | int = "10", weights: str = "best"
) -> list[str]:
    """The command that evaluates a run: ``[horovodrun -np N] python -m hvd_magtag.evaluate RUN_DIR ...``."""
    py = Path(sys.executable)
    cmd = [str(jobs.horovodrun_path()), "-np", str(np)] if np > 1 else []
    return cmd + [
        str(py),
        "-m",
        "hvd_magtag.evaluate",
        str(run_dir),
        "--split",
        split,
        "--windows",
        str(windows),
        "--weights",
        weights,
    ]


def run_logged(cmd: list[str], log_path: str | Path, *, timeout: float | None = None) -> int:
    """Run ``cmd``, streaming its output to ``log_path`` and to this process's stdout; return the exit code."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as f:
        f.write("$ " + shlex.join(cmd) + "\n")
        f.flush()
        # own session and job id: a timeout or an interrupt stops horovodrun *and* its ranks (hvd_magtag.jobs)
        job = jobs.start(
            cmd, scrub=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )

        def pump() -> None:  # the output, line by line, while the main thread keeps time
            assert job.proc.stdout is not None
            for line in job.proc.stdout:
                f.write(line)
                sys.stdout.write(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        timed_out = False
        try:
            job.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            job.kill()
            reader.join(timeout=jobs.GRACE_SECONDS)
        if timed_out:
            f.write(f"[experiments] timed out after {timeout:g} s: the job was killed\n")
        return job.proc.returncode


# -- grids ---------------------------------------------------------------------------------------------
def load_grid(path: str | Path) -> tuple[Path, list[dict[str, Any]]]:
    """(notebook path, list of parameter dicts) from a grid YAML file or a packaged grid's name."""

    try:
        path = resources.grid(path)
    except resources.ResourceError as e:
        raise ExperimentError(str(e)) from None
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise ExperimentError(f"{path}: cannot read grid file ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise ExperimentError(f"{path}: invalid YAML ({e})") from None
    if not isinstance(spec, dict):
        raise ExperimentError(f"{path}: expected a mapping with base / grid / points")
    unknown = set(spec) - {"notebook", "base", "grid", "points", "description"}
    if unknown:
        raise ExperimentError(f"{path}: unknown key(s) {sorted(unknown)}; use base, grid, points, notebook")
    base = dict(spec.get("base") or {})
    grid = spec.get("grid") or {}
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise ExperimentError(f"{path}: 'grid' maps each parameter to a non-empty list of values")
    points = (
        [{**base, **dict(zip(grid, combo))} for combo in itertools.product(*grid.values())] if grid else []
    )
    for extra in spec.get("points") or []:
        if not isinstance(extra, dict):
            raise ExperimentError(f"{path}: every entry of 'points' is a mapping of parameters")
        points.append({**base, **extra})
    if not points:
        points = [base]
    return _grid_notebook(path, str(spec.get("notebook", "experiment.ipynb"))), points


def _grid_notebook(grid_path: Path, name: str) -> Path:
    """The notebook a grid names: absolute as given; a relative name beside the grid, in the folder above it
    (``notebooks/grids/x.yaml`` -> ``notebooks/``, as packaged and as copied out by
    ``python -m hvd_magtag.notebooks copy``), else a packaged notebook."""
    notebook = Path(name).expanduser()
    if notebook.is_absolute():
        return notebook
    for folder in (grid_path.parent, grid_path.parent.parent):
        if (folder / notebook).is_file():
            return folder / notebook
    try:
        return resources.notebook(name)
    except resources.ResourceError as e:
        raise ExperimentError(f"{grid_path}: notebook {name!r} is not beside the grid either; {e}") from None


def point_name(params: dict[str, Any], varying: list[str]) -> str:
    """A readable, filesystem-safe name from the parameters that vary across the grid."""
    parts = []
    for key in varying:
        if params.get(key) is None:
            continue
        value = params[key]
        if isinstance(value, dict):
            value = "-".join(f"{k}{v}" for k, v in sorted(value.items())) or "none"
        parts.append(f"{key}={value}")
    slug = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", "__".join(parts)) or "run"
    return slug[:150]


def validate_parameters(notebook: Path, points: list[dict[str, Any]]) -> None:
    """Fail (naming the parameter and the notebook) when a point sets a parameter the notebook does not have."""
    import papermill

    if not notebook.is_file():
        raise ExperimentError(f"notebook {notebook} not found")
    declared = papermill.inspect_notebook(str(notebook))
    if not declared:
        raise ExperimentError(f"{notebook}: no cell tagged 'parameters'")
    for i, params in enumerate(points):
        unknown = sorted(set(params) - set(declared))
        if unknown:
            raise ExperimentError(
                f"grid point {i}: unknown notebook parameter(s) {unknown} for {notebook.name}; "
                f"known: {', '.join(sorted(declared))}"
            )
    _check_models(notebook, declared, points)


def _check_models(notebook: Path, declared: dict[str, Any], points: list[dict[str, Any]]) -> None:
    """Every point's model name and overrides are the registry's (a typo fails the batch before it starts)."""

    default = declared.get("model", {}).get("default")
    default_model = ast.literal_eval(default) if default else None
    for i, params in enumerate(points):
        name, overrides = params.get("model", default_model), params.get("overrides") or {}
        if not name or not isinstance(overrides, dict):
            continue
        try:
            get_entry(name).check_overrides(overrides)
        except ConfigError as e:
            raise ExperimentError(f"grid point {i} ({notebook.name}): {e}") from None


def run_grid(
    grid_path: str | Path,
    out: str | Path,
    *,
    kernel_name: str = KERNEL_NAME,
    dry_run: bool = False,
    retries: int = 1,
) -> list[dict[str, Any]]:
    """Execute the experiment notebook once per grid point (sequentially); return one status per point.

    Each point gets ``OUT/<name>/`` holding the executed notebook, the run directory contents and
    ``status.json`` ({"name", "status": ok|failed, "error", "seconds", "parameters"}). Kernel start-up races
    are retried ``retries`` times; a point that fails inside the notebook is recorded and the batch goes on.
    """
    import papermill

    notebook, points = load_grid(grid_path)
    validate_parameters(notebook, points)
    varying = [
        k
        for k in dict.fromkeys(k for p in points for k in p)
        if len({json.dumps(p.get(k), sort_keys=True) for p in points}) > 1
    ]
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    statuses = []
    for i, params in enumerate(points):
        name = point_name(params, varying) if varying else f"point{i}"
        run_dir = out / name
        params = (
            {**params, "run_dir": str(run_dir)}
            if "run_dir" in papermill.inspect_notebook(str(notebook))
            else params
        )
        status: dict[str, Any] = {"name": name, "index": i, "parameters": params, "notebook": str(notebook)}
        log.info("[%d/%d] %s", i + 1, len(points), name)
        if dry_run:
            statuses.append({**status, "status": "planned"})
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        status["status"], status["error"] = "ok", None
        for attempt in range(retries + 1):
            try:
                papermill.execute_notebook(
                    str(notebook),
                    str(run_dir / f"{notebook.stem}.ipynb"),
                    parameters=params,
                    kernel_name=kernel_name,
                    progress_bar=False,
                    cwd=str(run_dir),
                )
                status["status"], status["error"] = "ok", None
                break
            except papermill.PapermillExecutionError as e:  # the notebook ran and a cell failed: record it
                status["status"], status["error"] = "failed", f"{e.ename}: {e.evalue}".strip()
                break
            except RuntimeError as e:  # kernel died or did not start: retry
                status["status"], status["error"] = "failed", f"kernel: {e}"
                if attempt < retries:
                    time.sleep(2)
        status["seconds"] = round(time.monotonic() - t0, 2)
        (run_dir / "status.json").write_text(json.dumps(status, indent=2, default=str) + "\n")
        statuses.append(status)
        log.info(
            "    %s in %.1f s%s",
            status["status"],
            status["seconds"],
            f": {status['error']}" if status["error"] else "",
        )
    (out / "batch.json").write_text(json.dumps(statuses, indent=2, default=str) + "\n")
    return statuses


# -- results table ---------------------------------------------------------------------------------------
def find_runs(paths: list[str | Path]) -> list[Path]:
    """Run directories (holding run.json or status.json) at or below ``paths``, sorted, each once.

    A path that does not exist is an :class:`ExperimentError`; one that holds no run directory a
    :class:`~hvd_magtag.rundir.RunDirError` naming it (exit code 4), never an empty table."""

    found: dict[Path, None] = {}
    for p in map(Path, paths):
        if not p.exists():
            raise ExperimentError(f"{p}: no such run directory or folder")
        here = [marker.parent.resolve() for marker in sorted([*p.rglob("run.json"), *p.rglob("status.json")])]
        if not here:
            raise RunDirError(
                f"{p}: no run directory in it (none holds run.json, nor a batch point's status.json); "
                "give run directories made by train or experiments run, or folders holding them"
            )
        found.update(dict.fromkeys(here))
    return sorted(found)


def _best_validation(metrics: list[dict[str, Any]]) -> dict[str, Any]:
    vals = [m for m in metrics if m.get("event") in ("valid", "validation") and m.get("roc_auc") is not None]
    if not vals:
        return {}
    best = max(vals, key=lambda m: m["roc_auc"])
    return {
        "valid_roc_auc": best["roc_auc"],
        "valid_pr_auc": best.get("pr_auc"),
        "best_step": best.get("step"),
    }


def run_row(path: Path) -> dict[str, Any]:
    """One results-table row for a run directory (missing pieces are left empty, never invented)."""

    run = RunDir(path)
    row: dict[str, Any] = {"run": path.name, "path": str(path)}
    status_path = path / "status.json"
    if status_path.is_file():
        status = json.loads(status_path.read_text())
        row["status"] = status.get("status")
        row["error"] = status.get("error")
        for key, value in (status.get("parameters") or {}).items():
            if key != "run_dir":
                row[f"param.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    if run.exists():
        info = run.info
        cfg = json.loads(run.config_path.read_text()) if run.config_path.is_file() else {}
        row.setdefault("status", "ok")
        row["model"] = info.get("model")
        row["overrides"] = json.dumps(info.get("overrides", {}), sort_keys=True)
        spec = info.get("spec", {})
        row["input"] = spec.get("input")
        row["windowing"] = spec.get("windowing")
        row["window_samples"] = spec.get("window")
        row["sample_rate"] = spec.get("sample_rate")
        row["world_size"] = info.get("world_size")
        train = cfg.get("train", {})
        for key in ("optimizer", "schedule", "lr", "batch_size"):
            row[key] = train.get(key)
        row["parameters"] = info.get("n_params")
        metrics = run.read_metrics()
        steps = [m.get("step") for m in metrics if m.get("step") is not None]
        row["steps"] = max(steps) if steps else None
        times = [m.get("elapsed") or m.get("wall_time") for m in metrics]
        times = [t for t in times if t is not None]
        row["wall_time_s"] = round(max(times), 1) if times else info.get("wall_time")
        row.update(_best_validation(metrics))
        if run.results_path.is_file():
            results = run.results
            for split_name, res in results.items() if isinstance(results, dict) else []:
                if isinstance(res, dict) and "roc_auc" in res:
                    row[f"{split_name}_roc_auc"] = res.get("roc_auc")
                    row[f"{split_name}_pr_auc"] = res.get("pr_auc")
            if "roc_auc" in results:
                row["test_roc_auc"], row["test_pr_auc"] = results.get("roc_auc"), results.get("pr_auc")
    else:
        row.setdefault("status", "incomplete")
    return row


def results_table(paths: list[str | Path]):
    """A pandas DataFrame with one row per run directory found under ``paths``."""
    import pandas as pd

    rows = [run_row(p) for p in find_runs(paths)]
    return pd.DataFrame(rows)


def write_table(df, out_prefix: str | Path) -> list[Path]:
    """Write ``out_prefix``.csv, .md and .xlsx; return the paths."""
    out_prefix = Path(out_prefix)
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_prefix.with_suffix(".csv"), out_prefix.with_suffix(".md"), out_prefix.with_suffix(".xlsx")]
    df.to_csv(paths[0], index=False)
    paths[1].write_text(_markdown(df) + "\n")
    df.to_excel(paths[2], index=False, sheet_name="results")
    return paths


def _markdown(df) -> str:
    cols = [c for c in df.columns if c != "path"]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for _, r in df.iterrows():
        cells = []
        for c in cols:
            v = r[c]
            cells.append(
                f"{v:.4f}" if isinstance(v, float) and v == v else ("" if v is None or v != v else str(v))
            )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- CLI ---------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = cli.OneLineParser(
        prog="python -m hvd_magtag.experiments", description=__doc__.split("\n\n")[0], debug_flag=True
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_run = sub.add_parser("run", help="execute the experiment notebook once per grid point")
    p_run.add_argument("grid", help="grid YAML file")
    p_run.add_argument("--out", required=True, help="folder for the runs (one subfolder per point)")
    p_run.add_argument("--kernel", default=KERNEL_NAME, help=f"Jupyter kernel (default {KERNEL_NAME})")
    p_run.add_argument("--dry-run", action="store_true", help="validate and list the points, run nothing")
    p_tab = sub.add_parser("table", help="results table (CSV, Markdown, XLSX) from run directories")
    p_tab.add_argument("runs", nargs="+", help="run directories or folders holding them")
    p_tab.add_argument("--out", required=True, help="output path prefix (.csv/.md/.xlsx are added)")
    args = parser.parse_args(argv)
    return cli.run_cli(lambda: _command(args), debug=args.debug)


def _command(args) -> int:
    if args.cmd == "run":
        statuses = run_grid(args.grid, args.out, kernel_name=args.kernel, dry_run=args.dry_run)
        failed = [s for s in statuses if s["status"] == "failed"]
        for s in statuses:
            print(f"{s['status']:>8}  {s['name']}" + (f"  ({s['error']})" if s.get("error") else ""))
        return 1 if failed else 0
    df = results_table(args.runs)
    for p in write_table(df, args.out):
        print(p)
    print(_markdown(df))
    return 0


if __name__ == "__main__":
    sys.exit(main())


# -- comparing runs (used by notebooks/report.ipynb) --------------------------------------------------------
def learning_curves(run_dir: str | Path) -> dict[str, Any]:
    """``{"train": DataFrame(step, loss, ...), "valid": DataFrame(step, roc_auc, pr_auc, ...)}`` from metrics.jsonl."""
    import pandas as pd

    frame = pd.DataFrame(RunDir(run_dir).read_metrics())
    out = {}
    for event in ("train", "valid"):
        part = frame[frame["event"] == event] if "event" in frame else frame.iloc[0:0]
        out[event] = part.dropna(axis=1, how="all").reset_index(drop=True)
    return out


def per_tag_frame(runs: list, split: str = "test"):
    """Per-tag ROC-AUC / PR-AUC of several runs: DataFrame indexed by tag, columns (run name, metric)."""
    import pandas as pd

    frames = {}
    for run in runs:
        run = run if isinstance(run, RunDir) else RunDir(run)
        per_tag = run.results[split]["per_tag"]
        frames[run.path.name] = pd.DataFrame(per_tag).T[["roc_auc", "pr_auc"]].astype(float)
    return pd.concat(frames, axis=1)


def load_predictions(run, split: str = "test") -> tuple[Any, Any, list[str]]:
    """(labels [n_clips, n_tags], clip scores [n_clips, n_tags], tags) saved by ``hvd_magtag.evaluate``."""
    import numpy as np

    run = run if isinstance(run, RunDir) else RunDir(run)
    path = run.path / f"predictions_{split}.npz"
    if not path.is_file():
        raise ExperimentError(f"{path} missing: run python -m hvd_magtag.evaluate {run.path} --split {split}")
    with np.load(path) as data:
        return data["labels"], data["scores"], [str(t) for t in data["tags"]]


def cooccurrence_vs_confusion(labels, scores) -> tuple[Any, Any]:
    """(label co-occurrence as Jaccard [T, T], absolute Pearson correlation of clip scores across tags [T, T]).

    Tags that co-occur in the labels (synonyms, genre/instrument pairs) and tags the model confuses both show
    as bright off-diagonal cells; comparing the two separates learned label structure from confusion.
    """
    import numpy as np

    labels = np.asarray(labels, np.float64)
    counts = labels.T @ labels
    diag = counts.diagonal()
    jaccard = counts / np.maximum(diag[:, None] + diag[None, :] - counts, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.abs(np.corrcoef(np.asarray(scores, np.float64), rowvar=False))
    return jaccard, np.nan_to_num(corr)
