"""hvd_magtag.jobs: every process of a job is gone after run() returns, times out or is interrupted; the
launchers built on it (experiments.run_logged) clean up the same way."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from hvd_magtag import experiments, jobs

# a launcher that starts a "rank" in a session of its own (as Gloo does), prints its pid, then waits
SPAWNER = (
    "import subprocess, sys, time\n"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
    "print('rank', p.pid, flush=True)\n"
    "time.sleep(120)\n"
)


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _rank_pid(text: str) -> int:
    return int(next(line for line in text.splitlines() if line.startswith("rank")).split()[1])


def test_run_timeout_kills_the_launcher_and_a_rank_in_another_session():
    with pytest.raises(subprocess.TimeoutExpired) as err:
        jobs.run([sys.executable, "-c", SPAWNER], timeout=3, merge_output=True)
    assert _gone(_rank_pid(err.value.output))
    assert not jobs.job_processes("no-such-job")


def test_run_returns_exit_code_and_output_and_tags_the_environment():
    code = (
        "import os, sys; print(os.environ['HVD_MAGTAG_JOB_ID']); print('err', file=sys.stderr); sys.exit(3)"
    )
    done = jobs.run([sys.executable, "-c", code], timeout=60, env={"EXTRA": "1"})
    assert done.returncode == 3 and len(done.stdout.strip()) == 32 and done.stderr.strip() == "err"


def test_scrub_removes_other_launches_variables_only_when_asked(monkeypatch):
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "1")
    monkeypatch.setenv("OMPI_MCA_btl_tcp_if_include", "eth0")
    assert "OMPI_COMM_WORLD_RANK" not in jobs.job_environment()
    kept = jobs.job_environment(scrub=False, threads=3)
    assert kept["OMPI_MCA_btl_tcp_if_include"] == "eth0" and kept["OMP_NUM_THREADS"] == "3"


def test_experiments_run_logged_timeout_stops_the_whole_job(tmp_path):
    log = tmp_path / "run.log"
    code = experiments.run_logged([sys.executable, "-c", SPAWNER], log, timeout=2)
    assert code != 0
    text = log.read_text()
    assert "timed out" in text and _gone(_rank_pid(text))


def test_horovodrun_names_a_missing_launcher(monkeypatch, tmp_path):
    monkeypatch.setattr(jobs, "horovodrun_path", lambda: tmp_path / "horovodrun")
    with pytest.raises(FileNotFoundError, match="horovodrun"):
        jobs.horovodrun(2)
