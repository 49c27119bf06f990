"""The command line of ``python -m hvd_magtag.train``: flags, how settings combine, the entry point."""

from __future__ import annotations

import argparse
from pathlib import Path

from hvd_magtag import cli
from hvd_magtag.config import Experiment

# flag -> dotted config key (each flag is sugar for one --set)
_FLAGS = {
    "model": (
        "model.name",
        str,
        "model name from the registry (python -c 'from hvd_magtag.models import "
        "list_models; print(list_models())')",
    ),
    "dataset": ("data.dataset", str, "synthetic | mtat | jamendo | fma | folder"),
    "data_root": ("data.root", str, "dataset folder (default: the built-in synthetic dataset location)"),
    "steps": ("train.steps", int, "total optimizer steps (global)"),
    "batch_size": ("train.batch_size", int, "clips per batch per rank"),
    "lr": ("train.lr", float, "one-rank learning rate (scaled by world size when train.scale_lr)"),
    "optimizer": ("train.optimizer", str, "sgd (Nesterov momentum) | adam | adamw"),
    "schedule": ("train.schedule", str, "constant | cosine | plateau | staged"),
    "seed": ("train.seed", int, "random seed (model init, data order, dropout)"),
    "validate_every": ("train.validate_every", int, "steps between validations"),
    "init_from": (
        "train.init_from",
        str,
        "pretrained name (e.g. MTT_musicnn) or run directory to start from: its layers whose names and weight "
        "shapes match are loaded, a new output layer for another vocabulary (see hvd_magtag.finetune)",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(
        prog="python -m hvd_magtag.train",
        description="Train a music auto-tagging CNN (run under horovodrun for several ranks). Rerunning on a "
        "run directory resumes from its last checkpoint.",
        epilog="Every config option can be set with --set section.key=value, e.g. --set train.clip_norm=5 "
        "--set model.overrides.width=0.5; see hvd_magtag/config.py for the full tree.\n\n"
        + cli.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        debug_flag=True,
    )
    p.add_argument("--config", help="YAML or JSON experiment file, or a packaged config by name (e.g. demo)")
    p.add_argument(
        "--run-dir", help="run directory (default: runs/<model>-<UTC time>); an existing one resumes"
    )
    for name, (key, kind, help_text) in _FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=f"{help_text} [{key}]")
    p.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="reproducible ops and data order: two runs with one seed give the same weights",
    )
    p.add_argument(
        "--elastic",
        action="store_true",
        default=None,
        help="elastic Horovod (launch/elastic.sh): ranks may leave or join; state committed every "
        "train.commit_every steps, learning rate and data shards follow the world size [train.elastic]",
    )
    p.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any config option (repeatable), e.g. train.lr=0.01",
    )
    return p


def experiment_from_args(args: argparse.Namespace) -> Experiment:
    """Defaults < run dir's config.json (resume without --config) < --config < flags < --set."""
    if args.config:
        exp = Experiment.load(args.config)
    elif args.run_dir and (Path(args.run_dir).expanduser() / "config.json").is_file():
        exp = Experiment.load(Path(args.run_dir).expanduser() / "config.json")
    else:
        exp = Experiment()
    sets = [
        f"{key}={getattr(args, name)}"
        for name, (key, _, _) in _FLAGS.items()
        if getattr(args, name) is not None
    ]
    if args.deterministic:
        sets.append("train.deterministic=true")
    if args.elastic:
        sets.append("train.elastic=true")
    exp.apply_overrides(sets + list(args.assignments))
    if args.run_dir:
        exp.run_dir = str(Path(args.run_dir).expanduser().resolve())
    return exp


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_cli(lambda: _train(experiment_from_args(args)), debug=args.debug)


def _train(exp: Experiment):
    """The loop, imported here: it loads TensorFlow, which ``--help`` and option errors do without."""
    from hvd_magtag.train.loop import train

    return train(exp)
