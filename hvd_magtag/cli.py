"""The command line shared by every ``python -m hvd_magtag.<tool>``: exit codes, the one-line parser, run_cli.

    parser = cli.OneLineParser(prog="python -m hvd_magtag.evaluate", description=..., debug_flag=True)
    args = parser.parse_args(argv)                  # a usage error: one stderr line, exit 2
    return cli.run_cli(lambda: evaluate(...), debug=args.debug)

:func:`run_cli` prints one ``error: ...`` line (rank 0 only) for our own errors (hvd_magtag.errors: the
class carries the exit code) and returns that code; anything else propagates (traceback, exit code 1).
No TensorFlow here: ``--help`` and option errors answer before it is imported.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from hvd_magtag import console
from hvd_magtag.errors import ConfigError, DataError, HvdMagtagError, RunDirError

#: Exit codes of the command-line tools; the numbers of 2-4 are the error classes' own (hvd_magtag.errors).
EXIT_OK = 0
EXIT_RUNTIME = HvdMagtagError.exit_code
EXIT_USAGE = ConfigError.exit_code
EXIT_DATA = DataError.exit_code
EXIT_RUN_DIR = RunDirError.exit_code
EXIT_CODES_HELP = f"""exit codes:
  {EXIT_OK}  finished
  {EXIT_RUNTIME}  runtime failure (crash, lost rank, out of memory): traceback shown
  {EXIT_USAGE}  usage or configuration error: bad option or type, unknown --set key or model, bad YAML,
     invalid model override, resuming a run directory with another architecture or tag vocabulary
  {EXIT_DATA}  data error: dataset folder or metadata missing or invalid, empty split, every file
     unreadable, fewer training clips than batch_size x ranks
  {EXIT_RUN_DIR}  run-directory error: not creatable or writable, too little free disk space, not a run
     directory, unreadable checkpoint
Errors with codes 2-4 are one line on stderr ("error: ..."); add --debug for the traceback."""

#: Variables that give this process's rank before Horovod is initialised (horovodrun/Gloo, Open MPI,
#: MPICH/Intel MPI/Slurm PMI-2, MVAPICH, Slurm PMIx).
RANK_ENV = ("HOROVOD_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK")
#: The same for the number of ranks.
SIZE_ENV = ("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE")


def env_rank_size(environ: dict[str, str] | None = None) -> tuple[int, int]:
    """(rank, size) from the launcher's environment; rank 0 and size 0 (unknown) when no launcher set them."""
    env = os.environ if environ is None else environ

    def first(names: tuple[str, ...]) -> int:
        return next((int(env[k]) for k in names if env.get(k, "").isdigit()), 0)

    return first(RANK_ENV), first(SIZE_ENV)


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one stderr line (no usage block), exit code :data:`EXIT_USAGE`.

    ``debug_flag=True`` adds ``--debug`` (full tracebacks; pass ``args.debug`` to :func:`run_cli`) and
    ``--verbose`` (TensorFlow's start-up lines too). Parsing applies the output policy
    (:func:`hvd_magtag.console.quiet_startup`), before TensorFlow loads. Sub-command parsers (``add_subparsers``) are
    OneLineParsers too, without their own ``--debug``.
    """

    def __init__(self, *args: Any, debug_flag: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if debug_flag:
            self.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
            self.add_argument(
                "--verbose", action="store_true", help="also show TensorFlow / tensorflow-io start-up lines"
            )

    def parse_known_args(self, args=None, namespace=None):
        parsed, extra = super().parse_known_args(args, namespace)

        console.quiet_startup(True if getattr(parsed, "verbose", False) else None)  # before TensorFlow loads
        return parsed, extra

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def exit_code(e: BaseException) -> int | None:
    """The documented exit code for ``e``: its class's for our errors, :data:`EXIT_USAGE` for a missing or
    forbidden path given on the command line; None for anything else (a crash)."""
    if isinstance(e, HvdMagtagError):
        return e.exit_code
    if isinstance(e, (FileNotFoundError, PermissionError)):
        return EXIT_USAGE
    return None


def run_cli(
    fn: Callable[[], Any],
    debug: bool = False,
    *,
    log_level: int = logging.INFO,
    log_format: str = "%(message)s",
) -> int:
    """Run ``fn()`` with logging configured; its int result is the exit code (anything else: 0).

    Our errors become one ``error: ...`` line on rank 0 and their exit code (:func:`exit_code`); with
    ``debug``, or for any other exception, the exception propagates (traceback, exit code 1). TensorFlow's
    start-up chatter is off first (:func:`hvd_magtag.console.quiet_startup`, unless ``--verbose``)."""

    console.quiet_startup()
    logging.basicConfig(level=log_level, format=log_format)
    try:
        result = fn()
    except Exception as e:
        code = exit_code(e)
        if debug or code is None:
            raise
        if env_rank_size()[0] == 0:
            print(f"error: {e}", file=sys.stderr)
        return code
    return result if type(result) is int else EXIT_OK
