"""``launch/elastic.sh`` on the two ssh hosts (Gloo, discovery through launch/discover_hosts.sh and a hosts
file): every process of host 127.0.0.3 is SIGKILLed mid-run, the job continues on 127.0.0.2 and finishes
all steps (exact global step count, one metrics record per logged step, learning rate following the world
size); and a SIGTERM to the script reaches every rank and ends it with 143, never 0."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from cluster import runs
from hvd_magtag import jobs
from hvd_magtag.checkpoint import latest_checkpoint, read_state
from hvd_magtag.rundir import RunDir

pytestmark = [pytest.mark.cluster, pytest.mark.multirank, pytest.mark.timeout(900)]


def elastic(
    ssh_hosts, hosts_file: Path, np: int, train: list[str], env: dict[str, str], log: Path
) -> jobs.Job:
    args = ["-n", np, "--min-np", 1, "--max-np", 2, "-i", "lo", "--ssh-port", ssh_hosts.port]
    args += ["--ssh-identity", ssh_hosts.identity, "--", *train]
    env = {**env, **ssh_hosts.env(), "HVD_MAGTAG_HOSTS_FILE": str(hosts_file)}
    out = open(log, "w")  # noqa: SIM115  (closed below; the job writes it)
    try:
        return jobs.start([runs.LAUNCH / "elastic.sh", *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    finally:
        out.close()


def wait_for_file(path: Path, job: jobs.Job, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_file():
        assert job.proc.poll() is None, (
            f"the job ended (exit {job.proc.returncode}) first:\n{log.read_text()[-5000:]}"
        )
        assert time.monotonic() < deadline, f"{path} not written in {timeout} s:\n{log.read_text()[-5000:]}"
        time.sleep(0.1)


def finish(job: jobs.Job, log: Path, timeout: float = 400) -> int:
    try:
        return job.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"elastic job still running after {timeout} s:\n{log.read_text()[-5000:]}")
    finally:
        job.kill()


def command_line(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:  # ended meanwhile
        return ""


def live(processes: list[psutil.Process]) -> list[str]:
    out = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(command_line(p))
        except psutil.Error:
            continue
    return out


def lr_phases(run_dir: Path) -> list[tuple[float, int, int]]:
    """[(learning rate, first logged step, last logged step)] of the train records, in step order."""
    phases: list[tuple[float, int, int]] = []
    for e in RunDir(run_dir).read_metrics():
        if e["event"] == "train":
            if phases and phases[-1][0] == pytest.approx(e["lr"]):
                phases[-1] = (phases[-1][0], phases[-1][1], e["step"])
            else:
                phases.append((e["lr"], e["step"], e["step"]))
    return phases


def changed_at(phases: list[tuple[float, int, int]], before: float, after: float) -> int:
    """The commit (a multiple of COMMIT_EVERY) where the rate went from ``before`` to ``after``: the steps up
    to it ran at the old world size, the steps after it at the new one."""
    assert len(phases) == 2, phases
    (lr_a, _, last_a), (lr_b, first_b, _) = phases
    assert lr_a == pytest.approx(before) and lr_b == pytest.approx(after), phases
    commits = [c for c in range(last_a, first_b) if c % runs.COMMIT_EVERY == 0]
    assert len(commits) == 1 and runs.CHECKPOINT_EVERY <= commits[0] < runs.STEPS, phases
    return commits[0]


def test_a_host_dies_and_the_job_finishes_on_the_other(ssh_hosts, data, launch_env, tmp_path):
    hosts_file, log, run_dir = tmp_path / "hosts", tmp_path / "job.log", tmp_path / "run"
    hosts_file.write_text("".join(f"{h}:1\n" for h in ssh_hosts.hosts))
    t0 = time.perf_counter()
    job = elastic(ssh_hosts, hosts_file, 2, runs.train_args(data, run_dir), launch_env, log)
    try:
        wait_for_file(run_dir / "checkpoints" / f"step-{runs.CHECKPOINT_EVERY:08d}" / "state.json", job, log)
        victims = ssh_hosts.session_processes(ssh_hosts.hosts[1])
        assert any("hvd_magtag.train" in command_line(p) for p in victims), victims
        for p in victims:  # the host dies: its sshd sessions and everything under them
            p.send_signal(signal.SIGKILL)
        hosts_file.write_text(f"{ssh_hosts.hosts[0]}:1\n")  # ... and discovery stops listing it
        code = finish(job, log)
    finally:
        job.kill()
    print(
        f"elastic.sh 2 hosts -> 1 (SIGKILL of 127.0.0.3), {runs.STEPS} steps: {time.perf_counter() - t0:.1f} s wall"
    )
    text = log.read_text()
    assert code == 0, text[-5000:]
    assert runs.train_steps(run_dir) == list(range(runs.LOG_EVERY, runs.STEPS + 1, runs.LOG_EVERY)), text[
        -3000:
    ]
    # learning rate: scaled to 2 ranks up to the last commit before the kill, to 1 rank after it
    changed_at(lr_phases(run_dir), before=2 * runs.LR, after=runs.LR)
    final = read_state(latest_checkpoint(RunDir(run_dir).checkpoint_dir))
    assert final["step"] == runs.STEPS and final["world_size"] == 1
    assert runs.final_weights(run_dir)  # the one remaining rank saved its final weights
    assert runs.done(run_dir)["world_size"] == 1 and "final weights identical on 1 ranks (sha256 " in text


def test_sigterm_stops_every_rank_and_exits_143(ssh_hosts, data, launch_env, tmp_path):
    hosts_file, log = tmp_path / "hosts", tmp_path / "job.log"
    hosts_file.write_text("".join(f"{h}:1\n" for h in ssh_hosts.hosts))
    job = elastic(ssh_hosts, hosts_file, 2, runs.train_args(data, tmp_path / "run"), launch_env, log)
    try:
        deadline = time.monotonic() + 120
        while len([p for p in jobs.job_processes(job.job_id) if "hvd_magtag.train" in command_line(p)]) < 2:
            assert job.proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        os.kill(job.proc.pid, signal.SIGTERM)
        code = job.proc.wait(timeout=60)
        deadline = time.monotonic() + 30  # horovodrun's process helpers give each command 5 s to end
        while (left := live(jobs.job_processes(job.job_id))) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        job.kill()
    assert code == 143, log.read_text()[-3000:]
    assert "killed by signal 15" in log.read_text()
    assert not left, left
