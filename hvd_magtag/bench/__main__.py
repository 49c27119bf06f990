"""Entry point: ``python -m hvd_magtag.bench SECTION [options]`` (see :mod:`hvd_magtag.bench`)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
from pathlib import Path

from hvd_magtag import cli
from hvd_magtag.bench import SECTIONS, format_table
from hvd_magtag.errors import ConfigError


def machine() -> dict:
    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}


def main(argv: list[str] | None = None) -> int:
    parser = cli.OneLineParser(prog="python -m hvd_magtag.bench", description=__doc__, debug_flag=True)
    sub = parser.add_subparsers(
        dest="section", required=True, metavar="{" + ",".join([*SECTIONS, "all"]) + "}"
    )
    modules = {}
    for name, modname in SECTIONS.items():
        p = sub.add_parser(name, help=f"{name} benchmarks")
        p.add_argument("--out", type=Path, default=None, help="folder for <section>.json (default: none)")
        try:
            modules[name] = importlib.import_module(modname)
        except ModuleNotFoundError:
            continue
        modules[name].add_arguments(p)
    p_all = sub.add_parser("all", help="every section with its defaults")
    p_all.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    return cli.run_cli(
        lambda: _run(args, modules, sub),
        debug=args.debug,
        log_format="%(asctime)s %(name)s: %(message)s",
    )


def _run(args: argparse.Namespace, modules: dict, sub) -> None:
    names = list(modules) if args.section == "all" else [args.section]
    for name in names:
        if name not in modules:
            raise ConfigError(f"bench section {name!r} is not available in this build")
        sec_args = args if args.section != "all" else sub.choices[name].parse_args([])
        rows = modules[name].run(sec_args)
        print(f"== {name} ==")
        print(format_table(rows))
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / f"{name}.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
