"""Quiet by default: a tiny train + evaluate (+ tag, export) as a user types them, on 1 rank and on 2 ranks under
``horovodrun``, prints the toolkit's own lines and not one line of TensorFlow / tensorflow-io / absl chatter;
the user's own ``TF_CPP_MIN_LOG_LEVEL`` and ``--verbose`` bring it back (which also shows the counter sees it).

The commands run with the caller's environment minus ``TF_CPP_MIN_LOG_LEVEL`` (a user's shell does not set
it), started directly (not through hvd_magtag.jobs), in a session of their own that is killed on timeout.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess

from hvd_magtag import console

#: Lines that come from TensorFlow, tensorflow-io, absl or Keras rather than from the toolkit.
TF_ORIGIN = re.compile(
    r"\d{6}: [IWEF] \S+\.(cc|h):\d+\]"  # a C++ LOG() header: "2026-12-02 06:53:32.464805: I tensorflow/...cc:113]"
    r"|\b[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ \S+\.cc:\d+\]"  # absl C++ log header
    r"|oneDNN custom operations|cpu_feature_guard|rebuild TensorFlow with the appropriate compiler flags"
    r"|To enable the following instructions|TensorFlow IO binary was not compiled|local_rendezvous"
    r"|End of sequence|WARNING:(tensorflow|absl)|absl::InitializeLog|^Function `\w+` contains input name"
    r"|^Assets written to:"
)
MPI_TAG = re.compile(r"^\[\d+,\d+\]<std(out|err)>:")


def tf_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if TF_ORIGIN.search(MPI_TAG.sub("", line))]


def user_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (console.TF_LOG_ENV, console.VERBOSE_ENV)
        and not k.startswith(("OMPI_", "PMIX_", "PMI_", "HOROVOD_", "HVD_MAGTAG_JOB"))
    }
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def run(cmd: list[str], env: dict[str, str], timeout: float = 900) -> str:
    """stdout + stderr of ``cmd``; fails on a non-zero exit."""
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, f"{cmd[:4]}... exit {proc.returncode}\n{out[-3000:]}"
    return out


def test_quiet_startup_policy(monkeypatch):
    import logging

    from hvd_magtag import cli

    monkeypatch.delenv(console.TF_LOG_ENV, raising=False)
    monkeypatch.delenv(console.VERBOSE_ENV, raising=False)
    for name in console.CHATTY_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    assert console.quiet_startup() is False
    assert os.environ[console.TF_LOG_ENV] == "2" and logging.getLogger("tensorflow").level == logging.ERROR
    monkeypatch.setenv(console.TF_LOG_ENV, "1")  # the user's own value
    console.quiet_startup(verbose=True)
    assert os.environ[console.TF_LOG_ENV] == "1" and os.environ[console.VERBOSE_ENV] == "1"
    assert logging.getLogger("absl").level == logging.NOTSET
    assert console.quiet_startup() is True, "a child of a verbose process is verbose"

    monkeypatch.setenv(console.TF_LOG_ENV, "")  # empty = unset
    monkeypatch.delenv(console.VERBOSE_ENV)
    parser = cli.OneLineParser(prog="x", debug_flag=True)
    assert parser.parse_args(["--verbose"]).verbose and os.environ[console.TF_LOG_ENV] == "0"
    assert not parser.parse_args([]).verbose and console.is_verbose(), (
        "inherited from the parent stays verbose"
    )
