"""The packaged notebooks and experiment grids: list them, or copy them into a folder of your own to edit.

    python -m hvd_magtag.notebooks list                 # names and where they are installed
    python -m hvd_magtag.notebooks copy my_notebooks    # experiment.ipynb, explore.ipynb, report.ipynb, grids/

``copy`` never overwrites a file that is already there (it says which it kept; ``--force`` replaces them).
The copies run as they are under Jupyter (``jupyter lab my_notebooks``) or papermill, with the kernel that
``make install`` registers (``hvd_magtag``); a grid in ``my_notebooks/grids`` finds ``my_notebooks/experiment.ipynb``.

Exit codes: 0 done, 2 usage error or a target that is not a folder.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from hvd_magtag import cli, resources
from hvd_magtag.errors import ConfigError


def packaged_files() -> list[Path]:
    """Every packaged notebook and grid, relative to the packaged notebooks folder (sorted)."""
    root = resources.notebooks_dir()
    return sorted(
        p.relative_to(root)
        for p in root.rglob("*")
        if p.is_file() and p.suffix in (".ipynb", ".yaml") and ".ipynb_checkpoints" not in p.parts
    )


def copy(dest: str | Path, *, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Copy the packaged notebooks and grids into ``dest`` (created); returns (written, kept as they were)."""
    dest = Path(dest).expanduser().absolute()
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"{dest}: exists and is not a folder; choose another destination")
    root = resources.notebooks_dir()
    written: list[Path] = []
    kept: list[Path] = []
    for rel in packaged_files():
        target = dest / rel
        if target.exists() and not force:
            kept.append(target)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, target)
        written.append(target)
    return written, kept


def main(argv: list[str] | None = None) -> int:
    p = cli.OneLineParser(
        prog="python -m hvd_magtag.notebooks", description=__doc__.split("\n\n")[0], debug_flag=True
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="packaged notebooks and grids")
    p_copy = sub.add_parser("copy", help="copy the notebooks and grids into a folder")
    p_copy.add_argument("dest", help="destination folder (created if absent)")
    p_copy.add_argument("--force", action="store_true", help="overwrite files that are already there")
    args = p.parse_args(argv)
    return cli.run_cli(lambda: _command(args), debug=args.debug)


def _command(args) -> None:
    if args.cmd == "list":
        print(f"# {resources.notebooks_dir()}")
        for rel in packaged_files():
            print(rel.as_posix())
        return
    written, kept = copy(args.dest, force=args.force)
    for path in written:
        print(f"copied {path}")
    for path in kept:
        print(f"kept   {path} (already there; --force replaces it)")


if __name__ == "__main__":
    sys.exit(main())
