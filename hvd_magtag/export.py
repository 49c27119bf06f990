"""Export a run as a self-contained tagging SavedModel: ``python -m hvd_magtag.export RUN_DIR [--weights best|last]``.

The SavedModel (``RUN_DIR/export/`` by default) holds the weights, the tag names and the
:class:`~hvd_magtag.models.spec.ModelSpec` (as JSON) and the graph functions of
:class:`hvd_magtag.serving.TaggingModule` (decode, resample, windows, features, model); its serving
signatures, shapes and the formats ``from_bytes`` takes are listed in :mod:`hvd_magtag.serving`.
TensorFlow is imported only when a run is exported, so ``--help`` and a wrong run directory answer at once.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hvd_magtag import cli, fsutil
from hvd_magtag.errors import ExportError
from hvd_magtag.pretrained import resolve_model
from hvd_magtag.rundir import RunDir

__all__ = ["SAVED_MODEL_FILE", "ExportError", "export_run", "is_export_dir", "main"]

#: File name marking a SavedModel folder.
SAVED_MODEL_FILE = "saved_model.pb"

log = logging.getLogger("hvd_magtag.export")


def export_run(run_dir: str | Path, weights: str = "best", out: str | Path | None = None) -> Path:
    """Save ``run_dir``'s model with ``weights`` (best | last | a .weights.h5 path) as a tagging SavedModel.

    Writes ``out`` (default ``RUN_DIR/export``; replaced if present) and returns its path.
    """

    run = RunDir(resolve_model(run_dir))
    if not run.path.is_dir():
        raise ExportError(f"{run.path}: run directory not found; pass the folder hvd_magtag.train wrote")
    spec, tags = run.spec, run.tags  # RunDirError (no run.json) before TensorFlow is imported
    run.weights_path(weights)  # RunDirError if those weights are missing

    import tensorflow as tf  # here, not at the top: option and run-directory errors come before it

    from hvd_magtag.serving import tagging_module

    model = run.load_model(weights)
    module = tagging_module(model, spec, tags)
    out = Path(out).expanduser().resolve() if out else run.export_dir
    with fsutil.atomic_dir(out) as tmp:  # an existing export is replaced only by a complete one
        tf.saved_model.save(module, str(tmp), signatures=module.signatures())
    log.info("exported %s (%s weights, %d tags) to %s", run.path.name, weights, len(tags), out)
    return out


def is_export_dir(path: str | Path) -> bool:
    return (Path(path) / SAVED_MODEL_FILE).is_file()


def main(argv: list[str] | None = None) -> int:
    parser = cli.OneLineParser(
        prog="python -m hvd_magtag.export", description=__doc__.split("\n\n")[0], debug_flag=True
    )
    parser.add_argument(
        "run_dir", help="run directory written by hvd_magtag.train, or a pretrained name (MTT_musicnn)"
    )
    parser.add_argument(
        "--weights", default="best", help="best | last | path to a .weights.h5 (default: best)"
    )
    parser.add_argument("--out", type=Path, default=None, help="SavedModel folder (default: RUN_DIR/export)")
    args = parser.parse_args(argv)
    return cli.run_cli(lambda: print(export_run(args.run_dir, args.weights, args.out)), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
