"""Run a Python script as a real ``horovodrun -np N`` job from a test (or a benchmark), and always clean up.

    from multirank.runner import run_horovod, check_ok
    proc = run_horovod(SCRIPTS / "collectives.py", np=2, args=["--out", tmp_path], gloo=False, timeout=120)
    check_ok(proc)                                     # AssertionError with the job's output tail if it failed

``tests/`` is on ``sys.path`` in a pytest session (see ``tests/conftest.py``), so any test can import this.
Results should cross the process boundary through files the script writes (e.g. one ``.npz`` per rank
under ``--out``), not through parsing stdout.

Process hygiene is :mod:`hvd_magtag.jobs`'s (the package's launchers use the same module): the job runs
in its own session, every process of it carries a unique ``HVD_MAGTAG_JOB_ID``, and on timeout, error or
normal exit all of them are terminated, then killed after a grace period; inherited launcher variables
(``OMPI_*``, ``PMIX_*``, ``HOROVOD_*``...) are removed from the job's environment.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from hvd_magtag import jobs
from hvd_magtag.jobs import (  # noqa: F401  (re-exported for the tests)
    GRACE_SECONDS,
    JOB_ID_ENV,
    SCRUB_PREFIXES,
    horovodrun_path,
    job_environment,
    job_processes,
    kill_job,
)


def run_horovod(
    script: str | os.PathLike,
    np: int = 2,
    args: Sequence[object] = (),
    gloo: bool = False,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    *,
    launcher_args: Sequence[object] = (),
) -> subprocess.CompletedProcess:
    """``horovodrun -np {np} [--gloo] {launcher_args} {python} {script} {args}``; stdout/stderr captured as text.

    ``launcher_args``: extra horovodrun options, e.g. ``["--min-np", 2, "--host-discovery-script", path]``.

    Raises ``subprocess.TimeoutExpired`` (with the output so far) after ``timeout`` seconds, having killed
    the whole job. A non-zero exit is returned, not raised: use :func:`check_ok`.
    """
    import sys

    script = Path(script).resolve()
    if not script.is_file():
        raise FileNotFoundError(f"multi-rank script {script} does not exist")
    cmd = [*jobs.horovodrun(np, gloo=gloo, launcher_args=launcher_args), sys.executable, str(script)]
    return jobs.run([*cmd, *map(str, args)], timeout=timeout, env=env)


def check_ok(proc: subprocess.CompletedProcess, tail: int = 4000) -> None:
    """AssertionError naming the command and showing the output tail unless the job exited with 0."""
    if proc.returncode != 0:
        raise AssertionError(
            f"horovodrun job failed (exit {proc.returncode}): {' '.join(map(str, proc.args))}\n"
            f"--- stdout (tail) ---\n{(proc.stdout or '')[-tail:]}\n--- stderr (tail) ---\n{(proc.stderr or '')[-tail:]}"
        )


def wall_clock(fn, *a, **kw):
    """(result, seconds) of ``fn(*a, **kw)``: multi-rank tests report their wall time."""
    t0 = time.perf_counter()
    result = fn(*a, **kw)
    return result, time.perf_counter() - t0
