"""``python -m hvd_magtag.tag FILES_OR_FOLDERS --model M [--out FILE.json|DIR]``: the tagging command line.

One document (``--format table|json|csv`` to stdout or ``--out FILE``) for a few files, or, with
``--out DIR``, a resumable results folder for a whole library (:mod:`hvd_magtag.tag.library`).

Exit status (the codes of ``train`` / ``evaluate``, :data:`hvd_magtag.train.EXIT_CODES_HELP`): 0 every file
tagged; 1 at least one file failed (named in the output, the others are still tagged); 2 usage error (bad
option); 3 no audio files found in the inputs; 4 the model is not a run directory or an export folder.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from hvd_magtag.tag.inputs import audio_files, extensions
from hvd_magtag.tag.model import MODEL_NOT_FOUND, PRECISIONS
from hvd_magtag.tag.output import OUTPUT_FORMATS, render
from hvd_magtag.train import EXIT_DATA, EXIT_OK, EXIT_RUN_DIR, EXIT_RUNTIME


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m hvd_magtag.tag",
        description="Tag audio files with a trained model (mp3, wav, flac, ogg; folders are searched recursively).",
        epilog="Exit status: 0 all files tagged, 1 some file failed (named in the output), 2 usage error, "
        "3 no audio files found, 4 the model is not a run directory or export folder.",
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
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="model arithmetic (bfloat16: run directories only; see README's tagging section)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argparse exits with status 2 on a usage error
    if args.top_k < 1 or (args.workers is not None and args.workers < 1):
        parser.error("--top-k and --workers must be >= 1")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)  # retracing notices would drown the table
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    model = Path(args.model).expanduser().resolve()
    if not model.exists():  # before TensorFlow is imported: the answer is instant
        print(f"error: {model}: {MODEL_NOT_FOUND}", file=sys.stderr)
        return EXIT_RUN_DIR
    files, any_folder = audio_files(args.inputs)
    if not files:
        print(
            f"error: no audio files ({', '.join(extensions())}) found in {' '.join(args.inputs)}",
            file=sys.stderr,
        )
        return EXIT_DATA
    from hvd_magtag import distributed  # thread pools are set before TensorFlow starts
    from hvd_magtag.rundir import RunDirError
    from hvd_magtag.tag.model import TaggerError
    from hvd_magtag.tag.tagger import Tagger

    ctx = distributed.init()
    try:
        tagger = Tagger(model, weights=args.weights, precision=args.precision)
    except (TaggerError, RunDirError) as e:  # the model folder cannot be used
        print(f"error: {e}", file=sys.stderr)
        return EXIT_RUN_DIR
    workers = args.workers or ctx.threads
    results = tagger.tag_many(files, workers=workers, progress=any_folder and not args.quiet)
    text = render(args.format, str(tagger.path), tagger.tags, args.top_k, results)
    if args.out:
        from hvd_magtag.rundir import atomic_write_text

        atomic_write_text(args.out.expanduser().resolve(), text)
    else:
        sys.stdout.write(text)
    failed = [r for r in results if not hasattr(r, "clip")]
    if failed:
        print(
            f"{len(failed)} of {len(results)} file(s) failed: {', '.join(f.path for f in failed)}",
            file=sys.stderr,
        )
    return EXIT_RUNTIME if failed else EXIT_OK
