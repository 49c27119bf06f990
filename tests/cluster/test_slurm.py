"""``sbatch --ntasks=2 launch/slurm.sbatch`` on the one-node SLURM, requeued mid-run (``scontrol requeue``):
its first attempt exits 143, the second resumes from the last checkpoint, the job completes (COMPLETED,
exit 0:0) and ends with the weights of the uninterrupted reference run (tolerance: runs.WEIGHT_ATOL, exact).

One job covers "completes" and "requeued" (each start-up costs ~40 s of the cluster group's budget); the
host list for other shapes (``2(x2),1``) is checked without SLURM in test_launch_cli.py."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cluster import runs
from cluster.services import ROOT
from hvd_magtag.rundir import RunDir

pytestmark = [pytest.mark.cluster, pytest.mark.multirank, pytest.mark.timeout(900)]
#: reasons a pending job gives while it can still start
WAITING = {"None", "Priority", "Resources", "BeginTime", None}
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL"}


def submit(slurm, sbatch_args: list[str], train: list[str], out: Path, env: dict[str, str]) -> str:
    cmd = ["sbatch", "--parsable", "--cpus-per-task=1", f"--output={out}", f"--chdir={ROOT}", *sbatch_args]
    proc = slurm.run(
        *cmd, str(runs.LAUNCH / "slurm.sbatch"), "--", *train, env={**env, "HVD_MAGTAG_ROOT": str(ROOT)}
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().split(";")[0]


def wait_for(slurm, job: str, out: Path, until, what: str, timeout: float = 400) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = slurm.job(job)
        if until(info):
            return info
        if info.get("JobState") in FINAL_STATES:
            break
        if info.get("JobState") == "PENDING" and info.get("Reason") not in WAITING:
            break  # e.g. PartitionNodeLimit: it would never start
        time.sleep(0.2)
    slurm.run("scancel", job)
    log = out.read_text()[-5000:] if out.is_file() else "(no job output)"
    state = {k: info.get(k) for k in ("JobState", "Reason", "ExitCode", "Restarts")}
    pytest.fail(f"job {job}: {what} did not happen ({state})\n{log}")


def finished(slurm, job: str, out: Path, timeout: float = 400) -> dict[str, str]:
    return wait_for(slurm, job, out, lambda i: i.get("JobState") in FINAL_STATES, "the end", timeout)


def test_requeued_job_resumes_from_its_checkpoint(slurm, data, launch_env, reference_run, tmp_path):
    run_dir, out = tmp_path / "run", tmp_path / "job.out"
    t0 = time.perf_counter()
    job = submit(slurm, ["--ntasks=2"], runs.train_args(data, run_dir), out, launch_env)
    first = run_dir / "checkpoints" / f"step-{runs.CHECKPOINT_EVERY:08d}" / "state.json"
    wait_for(slurm, job, out, lambda i: first.is_file(), f"the checkpoint {first.parent.name}")
    requeue = slurm.run("scontrol", "requeue", job)
    assert requeue.returncode == 0, requeue.stderr
    info = finished(slurm, job, out)
    print(f"sbatch + scontrol requeue mid-run, {runs.STEPS} steps: {time.perf_counter() - t0:.1f} s wall")
    log = out.read_text()
    assert info["JobState"] == "COMPLETED" and info["ExitCode"] == "0:0", log[-5000:]
    assert info["Restarts"] == "1" and "attempt 1:" in log and "attempt 2:" in log, log[-5000:]
    assert f"2 ranks on {slurm.node}:2" in log  # hosts from SLURM_TASKS_PER_NODE: --ntasks alone works
    assert "killed by signal 15" in log and "(exit 143)" in log  # the requeued attempt did not report success
    resumed = RunDir(run_dir).info["started_from_step"]
    assert resumed in range(runs.CHECKPOINT_EVERY, runs.STEPS, runs.CHECKPOINT_EVERY), resumed  # mid-run
    assert f"from step {resumed}" in log
    assert runs.train_steps(run_dir) == runs.train_steps(reference_run)  # one record per logged step
    runs.assert_same_weights(run_dir, reference_run)
