"""Run a Python script as a real ``horovodrun -np N`` job from a test (or a benchmark), and always clean up.

    from multirank.runner import run_horovod, check_ok
    proc = run_horovod(SCRIPTS / "collectives.py", np=2, args=["--out", tmp_path], gloo=False, timeout=120)
    check_ok(proc)                                     # AssertionError with the job's output tail if it failed

``tests/`` is on ``sys.path`` in a pytest session (see ``tests/conftest.py``), so any test can import this.
Results should cross the process boundary through files the script writes (e.g. one ``.npz`` per rank
under ``--out``), not through parsing stdout.

Process hygiene: horovodrun starts in its own session; every process of the job carries a unique
``HVD_MAGTAG_JOB_ID`` in its environment. On timeout, error or normal exit, the session's process group
and every process carrying that id (Gloo ranks run in sessions of their own, orphans get re-parented) are
terminated, then killed after a grace period. Inherited launcher variables (``OMPI_*``, ``PMIX_*``,
``HOROVOD_*``...) are removed from the job's environment so a parent that is itself an MPI process (e.g. a
singleton) cannot confuse ``mpirun``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

#: Environment variable tagging every process of one job (used to find and kill them all).
JOB_ID_ENV = "HVD_MAGTAG_JOB_ID"
#: Prefixes of inherited variables that belong to some other launch and must not leak into the job.
SCRUB_PREFIXES = ("OMPI_", "PMIX_", "PMI_", "HOROVOD_", "MV2_", "OPAL_", "HVD_MAGTAG_HOROVOD")
#: Seconds between SIGTERM and SIGKILL during cleanup.
GRACE_SECONDS = 5.0


def horovodrun_path() -> Path:
    """The venv's ``horovodrun``: next to ``sys.executable`` (the interpreter running the tests)."""
    return Path(sys.executable).parent / "horovodrun"


def job_environment(env: Mapping[str, str] | None = None, job_id: str = "") -> dict[str, str]:
    """os.environ without other launches' variables, quiet TF, unbuffered output, MPI ranks that yield the
    CPU when idle, plus ``env`` on top."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB_PREFIXES)}
    out.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Open MPI busy-polls while waiting; on a shared or oversubscribed machine (tests, 2 cores) that steals
    # the cores the other rank needs: a 4 MiB allreduce measured 128 ms polling vs 30 ms yielding here.
    out["OMPI_MCA_mpi_yield_when_idle"] = "1"
    out["PYTHONUNBUFFERED"] = "1"
    out.update(env or {})
    if job_id:
        out[JOB_ID_ENV] = job_id
    return out


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
    launcher = horovodrun_path()
    if not launcher.exists():
        raise FileNotFoundError(
            f"{launcher} not found: horovodrun must be installed in this venv (make install)"
        )
    script = Path(script).resolve()
    if not script.is_file():
        raise FileNotFoundError(f"multi-rank script {script} does not exist")
    cmd = [str(launcher), "-np", str(np), *(["--gloo"] if gloo else []), *map(str, launcher_args)]
    cmd += [sys.executable, str(script)]
    cmd += [str(a) for a in args]
    job_id = uuid.uuid4().hex
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=job_environment(env, job_id),
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_job(proc, job_id)
        stdout, stderr = proc.communicate()
        raise subprocess.TimeoutExpired(cmd, timeout, output=stdout, stderr=stderr) from None
    except BaseException:  # KeyboardInterrupt, pytest-timeout...: never leave ranks behind, then re-raise
        kill_job(proc, job_id)
        raise
    finally:
        kill_job(proc, job_id)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def job_processes(job_id: str) -> list[psutil.Process]:
    """Live processes whose environment carries ``JOB_ID_ENV=job_id``."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get(JOB_ID_ENV) == job_id:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_job(proc: subprocess.Popen, job_id: str) -> None:
    """Terminate every process of the job (and horovodrun's process group); SIGKILL what survives.

    The process group is signalled only while horovodrun is un-reaped (its pid cannot have been reused);
    after that, the job-id environment tag finds the stragglers.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        victims = job_processes(job_id)
        if proc.poll() is None:
            try:
                victims += [p for p in psutil.Process(proc.pid).children(recursive=True) if p not in victims]
            except psutil.Error:
                pass
            try:
                os.killpg(proc.pid, sig)  # start_new_session: the group id is horovodrun's pid
            except (ProcessLookupError, PermissionError):
                pass
        for p in victims:
            try:
                p.send_signal(sig)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        _, alive = psutil.wait_procs(victims, timeout=GRACE_SECONDS if sig == signal.SIGTERM else 1.0)
        if not alive and proc.poll() is not None:
            break
    try:
        proc.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
