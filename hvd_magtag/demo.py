"""The main job (``make demo``): synthetic dataset -> ``horovodrun -np N`` training -> test-split evaluation.

    python -m hvd_magtag.demo [--data DIR] [--runs DIR] [--np 2]

1. builds the synthetic MTAT-layout dataset under ``--data`` if it is not there (``hvd_magtag.data.synth``;
   default: the synthetic dataset's location, :func:`hvd_magtag.locations.dataset_dir`);
2. trains the model of the packaged ``demo`` config (``hvd_magtag/resources/configs/demo.yaml``) with
   ``horovodrun -np N python -m hvd_magtag.train`` into ``RUNS/demo-<UTC time>`` (default RUNS:
   :func:`hvd_magtag.locations.runs_dir`, ``./runs``);
3. evaluates the best weights on the test split (``hvd_magtag.evaluate``, same ranks) and prints the per-tag
   table with macro ROC-AUC and PR-AUC;
4. says where the run directory and the TensorBoard logs are.

Every step is a subprocess of the package's own command-line tools, so the demo is the same thing a user
types by hand (the commands are printed). This module never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from hvd_magtag import cli, jobs, locations, resources
from hvd_magtag.errors import ConfigError, HvdMagtagError

#: The demo's experiment (model, optimizer, steps...): one home, reused by notebooks and docs; the packaged
#: config named "demo" (``--config demo`` wherever a config file is accepted).
DEMO_CONFIG_NAME = "demo"
#: Synthetic dataset size for the demo: clips and seconds per clip (a couple of minutes to synthesise).
DEMO_CLIPS = 3000
DEMO_CLIP_SECONDS = 3.0


class DemoError(HvdMagtagError):
    """A demo step failed; the message names the step, its exit code and the command to rerun by hand."""


def _log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


def _run(cmd: list[str], what: str, stdout_path: Path | None = None) -> float:
    """Run ``cmd`` with the terminal as its stderr and stdout (or ``stdout_path``); returns seconds; DemoError
    if it fails."""
    _log(f"{what}: {shlex.join(cmd)}")
    t0 = time.perf_counter()
    out = open(stdout_path, "w") if stdout_path else None  # closed in finally
    # own session and job id (hvd_magtag.jobs); the user's OMPI_MCA_* settings are kept
    job = jobs.start(cmd, scrub=False, stdout=out)
    try:
        code = job.proc.wait()
    finally:  # after a normal exit: stragglers; on Ctrl-C: horovodrun and every rank, then re-raise
        job.kill()
        if out:
            out.close()
    if code != 0:
        raise DemoError(f"{what} failed (exit {code}); rerun by hand: {shlex.join(cmd)}")
    return time.perf_counter() - t0


def launcher(np: int) -> list[str]:
    """``horovodrun -np N`` from this interpreter's venv ([] for one process: a plain run is a world of 1)."""
    if np <= 1:
        return []
    try:
        return jobs.horovodrun(np)
    except FileNotFoundError as e:
        raise DemoError(str(e)) from None


def dataset_ready(data: Path) -> bool:
    return (data / "annotations_final.csv").is_file()


def _synth_note(data: Path, clips: int, seconds: float) -> str:
    """``"; made with ..."`` when an existing synthetic dataset differs from the requested size."""
    try:
        params = json.loads((data / "synth.json").read_text())["params"]
    except (OSError, ValueError, KeyError):
        return ""
    if (params.get("clips"), params.get("seconds")) == (clips, seconds):
        return ""
    return (
        f"; made with {params.get('clips')} clips of {params.get('seconds')} s, not {clips} of {seconds} s: "
        "delete it to rebuild"
    )


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(
        prog="python -m hvd_magtag.demo",
        description="End-to-end demo: synthesise a small MTAT-layout dataset (if absent), train with "
        "horovodrun, evaluate on the test split, print per-tag ROC-AUC / PR-AUC.",
        debug_flag=True,
    )
    p.add_argument(
        "--data",
        help="synthetic dataset folder, built there if absent (default: $HVD_MAGTAG_DATA/synthetic, else "
        "~/.local/share/hvd_magtag/synthetic; see hvd_magtag.locations)",
    )
    p.add_argument("--runs", help="folder for run directories (default: $HVD_MAGTAG_RUNS, else ./runs)")
    p.add_argument("--np", type=int, default=2, help="ranks (horovodrun -np); 1 = a single process")
    p.add_argument(
        "--config",
        default=DEMO_CONFIG_NAME,
        help="experiment YAML, or the name of a packaged config (default: %(default)s)",
    )
    p.add_argument("--clips", type=int, default=DEMO_CLIPS, help="clips to synthesise (default: %(default)s)")
    p.add_argument(
        "--clip-seconds",
        type=float,
        default=DEMO_CLIP_SECONDS,
        help="seconds per clip (default: %(default)s)",
    )
    p.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="extra config overrides passed to training (repeatable)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_cli(lambda: _demo(args), debug=args.debug)


def _demo(args) -> None:
    data = Path(args.data).expanduser().resolve() if args.data else locations.dataset_dir("synthetic")
    runs = Path(args.runs).expanduser().resolve() if args.runs else locations.runs_dir()
    py = sys.executable
    t0 = time.perf_counter()
    if args.np < 1:
        raise ConfigError(f"--np {args.np}: give at least 1 rank")
    try:
        config = resources.config(args.config)
    except resources.ResourceError as e:
        raise ConfigError(f"--config {e}") from None
    times = {}
    if dataset_ready(data):
        _log(f"dataset: {data} (already there{_synth_note(data, args.clips, args.clip_seconds)})")
    else:
        times["synthesis"] = _run(
            [
                py,
                "-m",
                "hvd_magtag.data.synth",
                "--out",
                str(data),
                "--clips",
                str(args.clips),
                "--seconds",
                str(args.clip_seconds),
            ],
            "synthesising the dataset",
        )
    run_dir = runs / f"demo-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    train_cmd = [
        *launcher(args.np),
        py,
        "-m",
        "hvd_magtag.train",
        "--config",
        str(config),
        "--set",
        f"data.root={data}",
        "--run-dir",
        str(run_dir),
    ]
    for a in args.assignments:
        train_cmd += ["--set", a]
    times["training"] = _run(train_cmd, f"training on {args.np} rank(s)")
    times["evaluation"] = _run(
        [*launcher(args.np), py, "-m", "hvd_magtag.evaluate", str(run_dir), "--split", "test"],
        "evaluating on the test split",
        stdout_path=run_dir / "evaluate_test.log",  # its table is printed once, cleanly, below
    )
    total = time.perf_counter() - t0
    from hvd_magtag.metrics import format_number, format_table

    result = json.loads((run_dir / "results.json").read_text())["test"]
    print(
        "\n"
        + format_table(result, title=f"test split of {data} (clip-level, {result['windows']} windows/clip)")
    )
    _log(
        f"test macro ROC-AUC {format_number(result['roc_auc'])}, PR-AUC {format_number(result['pr_auc'])} "
        f"({result['n_tags_scored']} tags, {result['n_clips']} clips)"
    )
    _log("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f"; total {total:.0f} s")
    _log(f"run directory: {run_dir}")
    _log(f"TensorBoard:   {Path(py).parent / 'tensorboard'} --logdir {run_dir / 'tensorboard'}")
    _log(f"tag a song:    {py} -m hvd_magtag.tag song.mp3 --model {run_dir} --top-k 5")


if __name__ == "__main__":
    sys.exit(main())
