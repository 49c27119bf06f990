"""``python -m hvd_magtag.tag FILES_OR_FOLDERS --model M [--out FILE.json|DIR]``: the tagging command line.

One document (``--format table|json|csv`` to stdout or ``--out FILE``) for a few files, or, with
``--out DIR``, a resumable results folder for a whole library, on one process or under ``horovodrun``
(:mod:`hvd_magtag.tag.library`). ``--out`` names a folder when it is an existing folder, ends with ``/`` or
has no suffix; a file otherwise (e.g. ``tags.json``).

Exit status (the codes of every tool, :data:`hvd_magtag.cli.EXIT_CODES_HELP`): 0 every file
tagged; 1 at least one file failed (named in the output, the others are still tagged); 2 usage error (bad
option; a results folder holding another model's or other options' results); 3 no audio files found in the
inputs; 4 the model is not a run directory or an export folder (or another job holds the results folder).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from hvd_magtag import cli, distributed, fsutil
from hvd_magtag.errors import ConfigError, DataError, RunDirError
from hvd_magtag.pretrained import lookup, resolve_model
from hvd_magtag.tag.inputs import audio_files, extensions
from hvd_magtag.tag.library import COMMIT_FILES
from hvd_magtag.tag.model import MODEL_NOT_FOUND, PRECISIONS
from hvd_magtag.tag.output import OUTPUT_FORMATS, render
from hvd_magtag.tag.results import FileFailure


def build_parser() -> argparse.ArgumentParser:
    parser = cli.OneLineParser(
        prog="python -m hvd_magtag.tag",
        description="Tag audio files with a trained model (mp3, wav, flac, ogg, opus, aiff, m4a, aac; folders are "
        "searched recursively).",
        epilog="Exit status: 0 all files tagged, 1 some file failed (named in the output), 2 usage error, "
        "3 no audio files found, 4 the model is not a run directory or export folder.",
        debug_flag=True,
    )
    parser.add_argument("inputs", nargs="+", help="audio files and/or folders")
    parser.add_argument("--model", required=True, help="run directory or exported SavedModel folder")
    parser.add_argument("--weights", default="best", help="best | last | .weights.h5 path (run directories)")
    parser.add_argument("--top-k", type=int, default=10, help="tags per file (default: 10)")
    parser.add_argument(
        "--format", choices=OUTPUT_FORMATS, default="table", help="output format (default: table)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="write the output to this file (default: stdout)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="decoding threads (default: the cores this process may use)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="TensorFlow threads per process (default: the cores this process may use / ranks on the host)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="model arithmetic (bfloat16: run directories only; see README's tagging section)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    folder = parser.add_argument_group("results folder (--out DIR)")
    folder.add_argument("--taggrams", action="store_true", help="also store per-window probabilities (.npz)")
    folder.add_argument("--embeddings", action="store_true", help="also store per-window embeddings (.npz)")
    folder.add_argument("--retry-failed", action="store_true", help="tag files that failed before again")
    folder.add_argument(
        "--commit-files",
        type=int,
        default=COMMIT_FILES,
        help=f"files per committed part, at most (default: {COMMIT_FILES}); what a crash can lose",
    )
    return parser


def is_folder_arg(out: Path | None) -> bool:
    """Whether ``--out`` names a results folder: an existing folder, a trailing ``/``, or no suffix."""
    if out is None:
        return False
    text = str(out)
    return out.expanduser().is_dir() or text.endswith(os.sep) or not out.suffix


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # a usage error: one line, exit status 2
    counts = (args.top_k, args.workers or 1, args.threads or 1, args.commit_files)
    if min(counts) < 1:
        parser.error("--top-k, --workers, --threads and --commit-files must be >= 1")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices would drown the table
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return cli.run_cli(lambda: _command(args), debug=args.debug, log_level=logging.WARNING)


def _command(args: argparse.Namespace) -> int:

    model = Path(args.model).expanduser().resolve()
    if not model.exists():
        if lookup(args.model) is None:  # before TensorFlow is imported: the answer is instant
            raise RunDirError(f"{model}: {MODEL_NOT_FOUND}")
        model = resolve_model(args.model)  # a pretrained name (MTT_musicnn): imported on first use
    if is_folder_arg(args.out):
        return _library(args, model)
    files, any_folder = audio_files(args.inputs)
    if not files:
        raise DataError(f"no audio files ({', '.join(extensions())}) found in {' '.join(args.inputs)}")
    from hvd_magtag.tag.tagger import Tagger

    ctx = distributed.init(threads=args.threads)
    if ctx.size > 1:
        raise ConfigError(
            f"{ctx.size} ranks tag a library into a results folder: add --out DIR (a folder, not a file)"
        )
    tagger = Tagger(model, weights=args.weights, precision=args.precision)  # TaggerError: exit 4
    results = tagger.tag_many(
        files, workers=args.workers or ctx.threads, progress=any_folder and not args.quiet
    )
    text = render(args.format, str(tagger.path), tagger.tags, args.top_k, results)
    if args.out:
        fsutil.atomic_write(args.out.expanduser().resolve(), text)
    else:
        sys.stdout.write(text)
    failed = [r for r in results if isinstance(r, FileFailure)]
    if failed:
        print(
            f"{len(failed)} of {len(results)} file(s) failed: {', '.join(f.path for f in failed)}",
            file=sys.stderr,
        )
    return cli.EXIT_RUNTIME if failed else cli.EXIT_OK


def _library(args: argparse.Namespace, model: Path) -> int:
    """``--out DIR``: the (multi-rank) library job of :mod:`hvd_magtag.tag.library`."""
    from hvd_magtag.tag import library
    from hvd_magtag.tag.tagger import Tagger

    os.environ.setdefault("HOROVOD_CYCLE_TIME", str(library.HOROVOD_CYCLE_MS))  # Horovod: read by hvd.init()
    ctx = distributed.init(threads=args.threads)
    tagger = Tagger(model, weights=args.weights, precision=args.precision)  # TaggerError: exit 4
    arrays = tuple(
        name for name, wanted in (("taggram", args.taggrams), ("embedding", args.embeddings)) if wanted
    )
    options = library.Options(
        top_k=args.top_k,
        arrays=arrays,
        workers=args.workers,
        retry_failed=args.retry_failed,
        commit_files=args.commit_files,
        progress=not args.quiet,
    )
    summary = library.tag_library(tagger, args.inputs, args.out, options)
    if ctx.is_root:
        print(library.format_summary(summary), file=sys.stderr)
    return cli.EXIT_RUNTIME if summary["failed"] else cli.EXIT_OK
