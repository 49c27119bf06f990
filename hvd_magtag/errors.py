"""hvd_magtag's own errors: one base class carrying the exit code a command-line tool ends with.

Every message names the file or option at fault and what to do. :func:`hvd_magtag.cli.run_cli` turns any
:class:`HvdMagtagError` into one ``error: ...`` line on stderr and ``type(e).exit_code``; anything else is
a crash (traceback, exit code 1). The codes are listed for users in :data:`hvd_magtag.cli.EXIT_CODES_HELP`.

    HvdMagtagError            exit 1  runtime failure we can explain in one line
      ConfigError             exit 2  usage or configuration error (option, type, YAML, model override, ...)
      DataError               exit 3  dataset or metadata missing or invalid, empty split, no audio found
      RunDirError             exit 4  run directory not creatable/writable, not a run directory, no weights
      CheckpointError         exit 4  checkpoint unreadable or of another architecture

Modules derive their own errors from these (``AnalysisError(ConfigError)``, ``TaggerError(RunDirError)``
...), so the exit code follows from the class, never from where it was raised. The base is a ValueError so
that ``except ValueError`` around user input keeps catching them. No TensorFlow here (``--help`` stays fast).
"""

from __future__ import annotations


class HvdMagtagError(ValueError):
    """Base of every hvd_magtag error; ``exit_code`` is the command line's exit status for it."""

    exit_code: int = 1


class ConfigError(HvdMagtagError):
    """A configuration value, option or file is wrong; the message names it and what to do."""

    exit_code = 2


class DataError(HvdMagtagError):
    """A dataset, its metadata or its audio cannot be used (missing, invalid, empty split, no audio files)."""

    exit_code = 3


class RunDirError(HvdMagtagError):
    """The run directory cannot be created or written, is not a run directory, or lacks what was asked."""

    exit_code = 4


class CheckpointError(HvdMagtagError):
    """A checkpoint is unreadable or does not match the model/optimizer it is loaded into."""

    exit_code = 4


class ExportError(RunDirError):
    """The run cannot be exported; the message names the run directory and what to do (exit code 4)."""
