"""Start ``horovodrun`` jobs (or any command that spawns ranks) and always clean them up.

The one home for what every launcher in the package (``demo``, ``experiments``, ``bench scaling``) and the
multi-rank tests (``tests/multirank/runner.py``) need::

    from hvd_magtag import jobs

    cmd = [*jobs.horovodrun(2), sys.executable, "-m", "hvd_magtag.train", "--run-dir", "runs/x"]
    done = jobs.run(cmd, timeout=600, merge_output=True)   # CompletedProcess; the job is gone afterwards
    job = jobs.start(cmd, stdout=log_file)                  # or stream it yourself ...
    try:
        job.proc.wait()
    finally:
        job.kill()                                           # ... and always clean up

Process hygiene: the job starts in its own session and every process of it carries a unique
:data:`JOB_ID_ENV` in its environment. :func:`kill_job` terminates the session's process group, the
launcher's descendants and every process carrying that id (Gloo ranks run in sessions of their own, orphans
get re-parented), then kills what survives a grace period. ``scrub=True`` removes inherited launcher
variables (``OMPI_*``, ``PMIX_*``, ``HOROVOD_*``...) so that a parent that is itself an MPI process (an MPI
singleton, a rank) cannot confuse ``mpirun``; launchers that serve users keep them (``OMPI_MCA_*`` settings
such as the network interface are theirs).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Environment variable tagging every process of one job (used to find and kill them all).
JOB_ID_ENV = "HVD_MAGTAG_JOB_ID"
#: Prefixes of inherited variables that belong to some other launch (removed when ``scrub``).
SCRUB_PREFIXES = ("OMPI_", "PMIX_", "PMI_", "HOROVOD_", "MV2_", "OPAL_", "HVD_MAGTAG_HOROVOD")
#: Seconds between SIGTERM and SIGKILL during cleanup.
GRACE_SECONDS = 5.0


def horovodrun_path() -> Path:
    """This interpreter's venv ``horovodrun`` (next to ``sys.executable``)."""
    return Path(sys.executable).parent / "horovodrun"


def horovodrun(np: int, *, gloo: bool = False, launcher_args: Sequence[object] = ()) -> list[str]:
    """``[horovodrun, -np, N, (--gloo), *launcher_args]``; FileNotFoundError naming the path when Horovod is
    not installed in this venv."""
    launcher = horovodrun_path()
    if not launcher.exists():
        raise FileNotFoundError(
            f"{launcher} not found: horovodrun must be installed in this venv (make install)"
        )
    return [str(launcher), "-np", str(int(np)), *(["--gloo"] if gloo else []), *map(str, launcher_args)]


def job_environment(
    env: Mapping[str, str] | None = None, *, job_id: str = "", threads: int | None = None, scrub: bool = True
) -> dict[str, str]:
    """The environment of a job: ``os.environ`` (without other launches' variables when ``scrub``), quiet
    TensorFlow, unbuffered output, MPI ranks that yield the CPU when idle, ``OMP_NUM_THREADS`` when
    ``threads`` is given, the job id, then ``env`` on top."""
    out = {k: v for k, v in os.environ.items() if not (scrub and k.startswith(SCRUB_PREFIXES))}
    out.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Open MPI busy-polls while a rank waits; on a shared or oversubscribed machine (2 cores) that steals the
    # core the other rank needs: a 4 MiB allreduce measured 128 ms polling vs 30 ms yielding here.
    out.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    out["PYTHONUNBUFFERED"] = "1"
    if threads:
        out["OMP_NUM_THREADS"] = str(int(threads))
    if job_id:
        out[JOB_ID_ENV] = job_id
    out.update(env or {})
    return out


def job_processes(job_id: str) -> list:
    """Live processes (``psutil.Process``) whose environment carries ``JOB_ID_ENV=job_id``."""
    import psutil

    found = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get(JOB_ID_ENV) == job_id:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_job(proc: subprocess.Popen, job_id: str = "") -> None:
    """Terminate every process of the job (horovodrun's process group, its descendants and, with ``job_id``,
    every process tagged with it); SIGKILL what survives :data:`GRACE_SECONDS`; reap the launcher.

    The process group is signalled only while the launcher is un-reaped (its pid cannot have been reused);
    after that, the job-id tag finds the stragglers.
    """
    import psutil

    for sig in (signal.SIGTERM, signal.SIGKILL):
        # the launcher itself is left to Popen to reap (psutil reaping it would make its exit code read 0)
        victims = [p for p in job_processes(job_id) if p.pid != proc.pid] if job_id else []
        if proc.poll() is None:
            try:
                victims += [p for p in psutil.Process(proc.pid).children(recursive=True) if p not in victims]
            except psutil.Error:
                pass
            try:
                os.killpg(proc.pid, sig)  # start_new_session: the group id is the launcher's pid
            except (ProcessLookupError, PermissionError):
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass
        for p in victims:
            try:
                p.send_signal(sig)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        grace = GRACE_SECONDS if sig == signal.SIGTERM else 1.0
        _, alive = psutil.wait_procs(victims, timeout=grace)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        if not alive and proc.poll() is not None:
            break
    try:
        proc.wait(timeout=GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass
class Job:
    """A started job: its launcher process and the id every process of it carries."""

    proc: subprocess.Popen
    job_id: str

    def kill(self) -> None:
        kill_job(self.proc, self.job_id)


def start(
    cmd: Sequence[object],
    *,
    env: Mapping[str, str] | None = None,
    threads: int | None = None,
    scrub: bool = True,
    **popen: Any,
) -> Job:
    """Start ``cmd`` in a session of its own with a fresh job id (:func:`job_environment`); ``popen``: the
    remaining ``subprocess.Popen`` arguments (stdout, stderr, text...). The caller must :meth:`Job.kill`."""
    job_id = uuid.uuid4().hex
    proc = subprocess.Popen(
        [str(c) for c in cmd],
        env=job_environment(env, job_id=job_id, threads=threads, scrub=scrub),
        start_new_session=True,
        **popen,
    )
    return Job(proc, job_id)


def run(
    cmd: Sequence[object],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
    threads: int | None = None,
    scrub: bool = True,
    merge_output: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``cmd`` to completion with its output captured as text (stderr into stdout when
    ``merge_output``). A non-zero exit is returned, not raised. After ``timeout`` seconds the whole job is
    killed and ``subprocess.TimeoutExpired`` (carrying the output so far) raised; on any other exception
    (Ctrl-C, a test timeout) the job is killed and the exception re-raised. No process of the job outlives
    the call."""
    args = [str(c) for c in cmd]
    stderr = subprocess.STDOUT if merge_output else subprocess.PIPE
    job = start(args, env=env, threads=threads, scrub=scrub, stdout=subprocess.PIPE, stderr=stderr, text=True)
    try:
        stdout, err = job.proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        job.kill()
        stdout, err = job.proc.communicate()
        raise subprocess.TimeoutExpired(args, timeout or 0.0, output=stdout, stderr=err) from None
    except BaseException:
        job.kill()
        raise
    finally:
        job.kill()
    return subprocess.CompletedProcess(args, job.proc.returncode, stdout, err)
