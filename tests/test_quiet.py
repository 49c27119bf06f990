"""Quiet by default: demo-like output (a tiny train + evaluate as ``make demo`` runs them) on 1 rank and on 2 ranks
under ``horovodrun`` prints the toolkit's own lines and not one line of TensorFlow / tensorflow-io / absl / MPI
chatter; ``--verbose`` brings TensorFlow's lines back on every rank (which also shows the counter sees them).

1 rank: ``tests/test_demo.py::test_tiny_demo_end_to_end`` (its two demo runs, the second with ``--verbose``,
counted with :func:`tf_lines`); 2 ranks: here. The commands run with the caller's environment minus
``TF_CPP_MIN_LOG_LEVEL`` and launcher variables (a user's shell sets none of them), started directly (not
through hvd_magtag.jobs), in a session of their own that is killed on timeout.

Rank prefixes (:data:`hvd_magtag.distributed.RANK_PREFIX_LEVEL`): rank 0's progress lines carry none, a single
process never; warnings and errors of a job of several ranks say ``[rank r/N]``. horovodrun's own
``[1,r]<stderr>:`` tags are Horovod's (``--tag-output`` is fixed in its mpi_run) and stay.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest
from train_fixtures import TINY_SETTINGS, tiny_dataset

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
#: Lines Open MPI (or its PMIx/PRRTE runtime) prints: warning boxes, "[host:pid] ..." component messages.
MPI_ORIGIN = re.compile(
    r"^-{70,}$|^\[[\w.-]+:\d+\] |\bmca_\w+|\bbtl\b|OpenFabrics|\bPMIx?\b|\bprte\w*|\bORTE\b"
    r"|^mpirun (noticed|has exited|detected)|^Primary job +terminated"
)
MPI_TAG = re.compile(r"^\[\d+,(\d+)\]<std(out|err)>:")


def tf_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if TF_ORIGIN.search(MPI_TAG.sub("", line))]


def mpi_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if MPI_ORIGIN.search(MPI_TAG.sub("", line))]


def ranks_of(lines: list[str]) -> set[int]:
    """The ranks whose horovodrun tag (``[1,r]<stderr>:``) these lines carry."""
    return {int(m.group(1)) for m in map(MPI_TAG.match, lines) if m}


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


@pytest.mark.slow
@pytest.mark.multirank
@pytest.mark.timeout(900)
def test_two_rank_demo_is_quiet_and_verbose_brings_tensorflow_back(tmp_path, tmp_path_factory, horovodrun):
    data = tiny_dataset(tmp_path_factory.getbasetemp())  # the session's (synthesis is not counted)
    config = tmp_path / "tiny.yaml"
    config.write_text("train: {steps: 4, validate_every: 2, checkpoint_every: 2}\n")
    cmd = [sys.executable, "-m", "hvd_magtag.demo", "--data", str(data), "--runs", str(tmp_path / "runs")]
    cmd += ["--np", "2", "--config", str(config)]
    for setting in TINY_SETTINGS:
        cmd += ["--set", setting]
    out = run(cmd, user_env())
    assert "[demo] test macro ROC-AUC" in out and "INFO hvd_magtag.train: step 4/4" in out, out[-3000:]
    assert tf_lines(out) == [] and mpi_lines(out) == [], out
    progress = [line for line in out.splitlines() if "INFO hvd_magtag.train: step " in line]
    assert progress and not any("[rank " in line for line in progress), progress  # rank 0: no prefix
    assert ranks_of(progress) == {0}, "progress is logged by rank 0 only"

    (run_dir,) = (tmp_path / "runs").iterdir()
    cmd = [
        str(horovodrun),
        "-np",
        "2",
        sys.executable,
        "-m",
        "hvd_magtag.evaluate",
        str(run_dir),
        "--verbose",
    ]
    verbose = tf_lines(run(cmd, user_env()))
    assert ranks_of(verbose) == {0, 1}, (
        f"--verbose: TensorFlow's lines from both ranks expected, got {verbose}"
    )
