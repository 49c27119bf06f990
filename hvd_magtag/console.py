"""What a command prints: the toolkit's own logs, progress and results; TensorFlow's start-up chatter only on
request. The one home of that policy.

Every entry point (``python -m hvd_magtag.<tool>``, the console scripts, the notebooks' first code cell)
calls :func:`quiet_startup` before TensorFlow is imported. Where each silenced line comes from:

============================================= =================================== =========================
line                                          origin                              silenced by
============================================= =================================== =========================
``oneDNN custom operations are on ...``       TF C++ ``util/port.cc``, INFO        ``TF_CPP_MIN_LOG_LEVEL=2``
``This TensorFlow binary is optimized ...``   TF C++ ``cpu_feature_guard.cc``,     (TF reads it once, when
(+ "To enable the following instructions")    INFO                                its first log line is
``Your CPU supports instructions that this    tensorflow-io C++ ``cpu_check.cc``   emitted: it must be in
TensorFlow IO binary was not compiled ...``   (TF's logging), INFO                 the environment before
``Local rendezvous is aborting with status:   TF C++ ``local_rendezvous.cc``,      TensorFlow loads)
OUT_OF_RANGE: End of sequence``               WARNING, at the end of every
                                              finite tf.data iteration
``WARNING:tensorflow:...`` (retracing ...)    TF's Python logger ``tensorflow``    logger level ERROR
``WARNING:absl:...``                          absl's Python logger ``absl``        logger level ERROR
============================================= =================================== =========================

The environment variable is exported, so processes started from here (``horovodrun`` and its ranks, which
inherit the launcher's environment; notebook kernels; the demo's steps) are quiet too. A value the user set
(``TF_CPP_MIN_LOG_LEVEL=0 python -m ...``) is never overridden. ``--verbose`` (:data:`VERBOSE_ENV` for the
children) shows everything: TensorFlow's C++ INFO and WARNING lines and the libraries' Python warnings. Errors
are never hidden: TensorFlow's ERROR lines and every Python exception still print.

Calling it is explicit (nothing happens on ``import hvd_magtag``): a library user's own TensorFlow settings
are left alone.
"""

from __future__ import annotations

import logging
import os

#: TensorFlow's C++ log threshold: 0 all, 1 no INFO, 2 no INFO/WARNING, 3 no ERROR either.
TF_LOG_ENV = "TF_CPP_MIN_LOG_LEVEL"
#: Set to "1" by ``--verbose`` so child processes are verbose too.
VERBOSE_ENV = "HVD_MAGTAG_VERBOSE"
QUIET_TF_LEVEL = "2"
VERBOSE_TF_LEVEL = "0"
#: Python loggers of libraries whose WARNINGs are start-up or tracing chatter for our users.
CHATTY_LOGGERS = ("tensorflow", "absl", "h5py", "matplotlib")


def is_verbose(verbose: bool | None = None) -> bool:
    """``verbose`` when given, else whether a parent process asked for it (:data:`VERBOSE_ENV`)."""
    return bool(verbose) if verbose is not None else os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def quiet_startup(verbose: bool | None = None) -> bool:
    """Set the output policy for this process and its children; call before TensorFlow is imported.

    Returns whether output is verbose. Idempotent. If TensorFlow is already loaded its C++ threshold cannot
    change any more; the Python-side settings still apply.
    """
    verbose = is_verbose(verbose)
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    if not os.environ.get(TF_LOG_ENV):  # the user's own value wins; empty counts as unset
        os.environ[TF_LOG_ENV] = VERBOSE_TF_LEVEL if verbose else QUIET_TF_LEVEL
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.ERROR)
    return verbose
