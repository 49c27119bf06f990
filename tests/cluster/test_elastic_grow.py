"""``launch/elastic.sh`` grows: the job starts on 127.0.0.2 alone (``-n 1 --min-np 1 --max-np 2``), 127.0.0.3
is added to the discovery file mid-run, the job continues on 2 ranks and finishes: exact global step count,
one metrics record per logged step, the learning rate 1x until the commit the new worker joined at and 2x
after it, and the final weights identical on both ranks (the training's digest line)."""

from __future__ import annotations

import re
import time

import pytest

from cluster import runs
from cluster.test_elastic_hosts import changed_at, elastic, finish, lr_phases, wait_for_file
from hvd_magtag.checkpoint import latest_checkpoint, read_state
from hvd_magtag.rundir import RunDir

pytestmark = [pytest.mark.cluster, pytest.mark.multirank, pytest.mark.timeout(900)]


def test_a_host_joins_and_the_job_grows_to_two_ranks(ssh_hosts, data, launch_env, tmp_path):
    hosts_file, log, run_dir = tmp_path / "hosts", tmp_path / "job.log", tmp_path / "run"
    hosts_file.write_text(f"{ssh_hosts.hosts[0]}:1\n")
    t0 = time.perf_counter()
    job = elastic(ssh_hosts, hosts_file, 1, runs.train_args(data, run_dir), launch_env, log)
    try:
        wait_for_file(run_dir / "checkpoints" / f"step-{runs.CHECKPOINT_EVERY:08d}" / "state.json", job, log)
        hosts_file.write_text("".join(f"{h}:1\n" for h in ssh_hosts.hosts))  # a host comes (back)
        code = finish(job, log, timeout=300)
    finally:
        job.kill()
    print(
        f"elastic.sh 1 host -> 2 (127.0.0.3 added), {runs.STEPS} steps: {time.perf_counter() - t0:.1f} s wall"
    )
    text = log.read_text()
    assert code == 0, text[-5000:]
    assert runs.train_steps(run_dir) == list(range(runs.LOG_EVERY, runs.STEPS + 1, runs.LOG_EVERY)), text[
        -3000:
    ]
    changed_at(lr_phases(run_dir), before=runs.LR, after=2 * runs.LR)
    final = read_state(latest_checkpoint(RunDir(run_dir).checkpoint_dir))
    assert final["step"] == runs.STEPS and final["world_size"] == 2
    digest = re.findall(r"final weights identical on (\d+) ranks \(sha256 ([0-9a-f]+)", text)
    assert digest and digest[-1][0] == "2", text[-3000:]
    last = runs.done(run_dir)
    assert last["world_size"] == 2 and last["weights_sha256"].startswith(digest[-1][1])
