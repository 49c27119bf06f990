"""Two hosts over ssh (127.0.0.2 and 127.0.0.3, one rank each) through ``launch/multihost.sh``, over MPI and
over Gloo: the job finishes and its final weights equal the one-host 2-rank reference run of the same config
and seed (tolerance: runs.WEIGHT_ATOL, exact)."""

from __future__ import annotations

import pytest

from cluster import runs

pytestmark = [pytest.mark.cluster, pytest.mark.multirank, pytest.mark.timeout(900)]


def ssh_args(ssh_hosts) -> list[str]:
    return ["--ssh-port", str(ssh_hosts.port), "--ssh-identity", str(ssh_hosts.identity), "-i", "lo"]


@pytest.mark.parametrize("controller", ["mpi", "gloo"])
def test_two_hosts_over_ssh_equal_one_host(controller, ssh_hosts, data, launch_env, reference_run, tmp_path):
    hosts = runs.hostfile(tmp_path / "hosts", ssh_hosts.hosts)
    run_dir = tmp_path / "run"
    gloo = ["--gloo"] if controller == "gloo" else []
    proc, seconds = runs.launch(
        "multihost.sh",
        "-f",
        hosts,
        *gloo,
        *ssh_args(ssh_hosts),
        "--",
        *runs.train_args(data, run_dir),
        env={**launch_env, **ssh_hosts.env()},
    )
    print(f"multihost.sh {controller}, 2 hosts over ssh, {runs.STEPS} steps: {seconds:.1f} s wall")
    runs.check_ok(proc)
    assert runs.train_steps(run_dir) == runs.train_steps(reference_run)
    runs.assert_same_weights(run_dir, reference_run)


def test_ssh_port_option_is_used(ssh_hosts, data, launch_env, tmp_path):
    """--ssh-port reaches horovodrun's ssh (the client config names the right port; the option wins)."""
    hosts = runs.hostfile(tmp_path / "hosts", ssh_hosts.hosts)
    wrong = ["--ssh-port", "1", "--ssh-identity", str(ssh_hosts.identity), "-i", "lo"]
    proc, _ = runs.launch(
        "multihost.sh",
        "-f",
        hosts,
        *wrong,
        "--",
        *runs.train_args(data, tmp_path / "run"),
        env={**launch_env, **ssh_hosts.env()},
        timeout=120,
    )
    assert proc.returncode != 0 and "ssh" in proc.stdout.lower(), proc.stdout[-3000:]
    assert not (tmp_path / "run").exists()
