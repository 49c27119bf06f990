"""Session fixtures of the cluster tests: two ssh "hosts" on loopback aliases, a one-node SLURM, the tiny
synthetic dataset, and the launch scripts' environment (``cluster.services`` starts the daemons).

Every daemon starts once per session and is stopped by its pid in the fixture's teardown, which pytest runs
whether the tests passed or failed. A missing binary fails the test with the install command, never skips.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from train_fixtures import tiny_dataset

from cluster import runs, services


@pytest.fixture(scope="session")
def ssh_hosts(tmp_path_factory):
    hosts = services.start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield hosts
    finally:
        services.stop_all(hosts.daemons)


@pytest.fixture(scope="session")
def slurm():
    cluster = services.start_slurm()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def launch_env() -> dict[str, str]:
    """What a launch script needs from the test: this venv (the tree's own may not exist) and this tree's
    package first on the path; horovodrun forwards both to every rank, local or over ssh."""
    venv = Path(sys.executable).parent.parent
    path = os.pathsep.join(p for p in (str(services.ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"VENV": str(venv), "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def reference_run(data, launch_env, tmp_path_factory):
    """The shared reference: ``launch/local.sh -n 2`` (MPI, one host) of the tiny config; its run dir."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    proc, seconds = runs.launch("local.sh", "-n", 2, "--", *runs.train_args(data, run_dir), env=launch_env)
    print(f"reference: launch/local.sh -n 2, {runs.STEPS} steps: {seconds:.1f} s wall")
    runs.check_ok(proc)
    assert runs.train_steps(run_dir) == list(range(runs.LOG_EVERY, runs.STEPS + 1, runs.LOG_EVERY))
    return run_dir
