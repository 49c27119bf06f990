"""``python -m hvd_magtag.pretrained {list,import}``: the released models and their import into run directories.

    python -m hvd_magtag.pretrained list
    python -m hvd_magtag.pretrained import musicnn:MTT_musicnn [--out DIR] [--force] [--no-export]

``import`` prints the run directory it wrote (default: the cache folder that ``--model MTT_musicnn`` uses).
Exit codes: 0 done; 2 unknown name, musicnn not installed, or a checkpoint that does not fit the model
(the message names the variable); 4 the output folder is not usable.
"""

from __future__ import annotations

import argparse
import sys

from hvd_magtag import cli
from hvd_magtag.pretrained import PRETRAINED, cache_root, import_model


def build_parser() -> argparse.ArgumentParser:
    parser = cli.OneLineParser(prog="python -m hvd_magtag.pretrained", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the released models, what they were trained on, their reported ROC-AUC")
    imp = sub.add_parser("import", help="import a released model into a run directory (with export/)")
    imp.add_argument("name", help="e.g. musicnn:MTT_musicnn (or MTT_musicnn, MTT_vgg, MSD_musicnn, MSD_vgg)")
    imp.add_argument("--out", default=None, help="run directory to write (default: the pretrained cache)")
    imp.add_argument("--force", action="store_true", help="replace an existing import")
    imp.add_argument("--no-export", action="store_true", help="skip the tagging SavedModel (export/)")
    imp.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser


def _list() -> None:

    for entry in PRETRAINED.values():
        print(f"{entry.key:22s} {entry.architecture:12s} {entry.licence:4s} {entry.trained_on}")
    print(f"(imported on first use into {cache_root()})")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        _list()
        return 0

    return cli.run_cli(
        lambda: print(import_model(args.name, args.out, force=args.force, export=not args.no_export)),
        debug=args.debug,
    )


if __name__ == "__main__":
    sys.exit(main())
