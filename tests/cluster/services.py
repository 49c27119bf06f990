"""Real cluster components for ``tests/cluster``, started from Debian's binaries with a private configuration:

- :func:`start_sshd`: OpenSSH servers on the loopback aliases 127.0.0.2 and 127.0.0.3 (two "hosts" of one
  core each), their own host key, a free port, key-only auth, and a temporary HOME whose ``~/.ssh`` holds the client key,
  ``authorized_keys`` and a ``config`` for both hosts. OpenSSH reads ``~/.ssh`` from the passwd entry, not
  from ``$HOME``, so the HOME also carries ``bin/ssh`` (``ssh -F HOME/.ssh/config``); with that first on
  PATH, horovodrun's and mpirun's ssh calls use the test's keys and known_hosts, never the user's.
- :func:`start_slurm`: munged (own key and socket), slurmctld and slurmd of a one-node cluster from a
  generated ``slurm.conf`` (proctrack/linuxproc, task/none, own state dirs and ports, a 5 s credential
  lifetime so that a requeued job starts again after seconds instead of SLURM's default 2 minutes).

Each daemon runs in the foreground under :class:`Daemon` and is stopped by its pid (SIGTERM, then SIGKILL).
A missing binary fails the test with the install command (the packages are the Makefile's
``CLUSTER_PACKAGES``; ``make cluster-deps`` installs them).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SSH_HOSTS = ("127.0.0.2", "127.0.0.3")
START_SECONDS = 30.0


def install_command() -> str:
    """The exact command installing what the cluster tests need (the Makefile's CLUSTER_PACKAGES)."""
    found = re.search(r"^CLUSTER_PACKAGES\s*:=\s*(.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert found, "Makefile lost its CLUSTER_PACKAGES line"
    return f"sudo apt-get install -y {found.group(1).strip()} (or `make cluster-deps` as root)"


def binary(name: str) -> str:
    """Path of ``name`` (PATH, then /usr/sbin); a missing one FAILS the test with the install command."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.access(f"/usr/sbin/{name}", os.X_OK) else None)
    if path is None:
        pytest.fail(
            f"{name} not found: the cluster tests need a real OpenSSH server and SLURM; run: {install_command()}"
        )
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.is_file() else f"({path} not written)"


@dataclass
class Daemon:
    """A foreground daemon, its log, and how to stop it (by pid)."""

    name: str
    proc: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, name: str, cmd: list[str], log: Path, env: Mapping[str, str] | None = None) -> Daemon:
        out = open(log, "ab")  # noqa: SIM115  (the daemon owns it until stop)
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        out.close()
        return cls(name, proc, log)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                return
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                continue


def wait_until(check: Callable[[], bool], what: str, daemons: list[Daemon], timeout: float = START_SECONDS):
    """Poll ``check`` until true; fail naming ``what`` with the daemons' log tails otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        dead = [d for d in daemons if not d.alive()]
        if dead:
            break
        time.sleep(0.2)
    logs = "\n".join(f"--- {d.name} (exit {d.proc.poll()}) {d.log} ---\n{tail(d.log)}" for d in daemons)
    pytest.fail(f"{what} did not happen within {timeout:.0f} s\n{logs}")


def stop_all(daemons: list[Daemon]) -> None:
    for d in reversed(daemons):
        d.stop()


# -- OpenSSH ------------------------------------------------------------------------------------------------


@dataclass
class SshHosts:
    """Two ssh "hosts" on loopback aliases: ``hosts``, ``port``, the client key ``identity``, the client HOME
    (``env()`` puts it and its ``bin/ssh`` first on PATH)."""

    hosts: tuple[str, ...]
    port: int
    identity: Path
    home: Path
    daemons: list[Daemon]

    def env(self) -> dict[str, str]:
        return {
            "HOME": str(self.home),
            "PATH": f"{self.home / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        }

    def ssh(self, host: str, *command: str, timeout: float = 20) -> subprocess.CompletedProcess:
        env = {**os.environ, **self.env()}
        return subprocess.run(
            ["ssh", "-o", "BatchMode=yes", host, *command],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )

    def session_processes(self, host: str) -> list:
        """psutil processes of every ssh session into ``host``: the per-connection sshd and its descendants
        (all a host runs for a job: orted or the Gloo task service, the ranks)."""
        import psutil

        found = []
        for p in psutil.process_iter(["name"]):
            if p.pid in {d.proc.pid for d in self.daemons} or p.info["name"] != "sshd":
                continue
            try:
                conns = p.net_connections(kind="tcp")
                if any(c.laddr and c.laddr.ip == host and c.laddr.port == self.port for c in conns):
                    found += [p, *p.children(recursive=True)]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return found


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def start_sshd(tmp: Path) -> SshHosts:
    """One sshd per host alias, each pinned to its own core (``taskset``; both on core 0 of a 1-core machine):
    a rank gets the thread budget of a 1-core host, as each of two ranks on this machine does in a 2-rank
    one-host run (TensorFlow's float sums depend on its thread count)."""
    sshd, keygen, taskset = binary("sshd"), binary("ssh-keygen"), binary("taskset")
    binary("ssh")
    tmp.mkdir(parents=True, exist_ok=True)
    home = tmp / "home"
    dot_ssh = home / ".ssh"
    (home / "bin").mkdir(parents=True)
    dot_ssh.mkdir(mode=0o700)
    for key in (tmp / "host_key", dot_ssh / "id_ed25519"):
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-C", "hvd_magtag-test", "-f", str(key)], check=True
        )
    shutil.copy(dot_ssh / "id_ed25519.pub", dot_ssh / "authorized_keys")
    port = free_port(SSH_HOSTS[0])
    client = _write(
        dot_ssh / "config",
        f"Host {' '.join(SSH_HOSTS)}\n  Port {port}\n  IdentityFile {dot_ssh / 'id_ed25519'}\n"
        f"  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile {dot_ssh / 'known_hosts'}\n"
        "  LogLevel ERROR\n  BatchMode yes\n",
        0o600,
    )
    _write(home / "bin" / "ssh", f'#!/bin/sh\nexec {shutil.which("ssh")} -F {client} "$@"\n', 0o755)
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    cores = sorted(os.sched_getaffinity(0))
    daemons = []
    for i, host in enumerate(SSH_HOSTS):
        config = _write(
            tmp / f"sshd_config.{host}",
            f"ListenAddress {host}:{port}\nHostKey {tmp / 'host_key'}\nPidFile {tmp / f'sshd.{host}.pid'}\n"
            f"AuthorizedKeysFile {dot_ssh / 'authorized_keys'}\nPubkeyAuthentication yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nMaxStartups 64\nMaxSessions 64\nLogLevel VERBOSE\n",
        )
        core = str(cores[i % len(cores)])
        cmd = [taskset, "-c", core, sshd, "-D", "-e", "-f", str(config)]
        daemons.append(Daemon.start(f"sshd {host}", cmd, tmp / f"sshd.{host}.log"))
    hosts = SshHosts(SSH_HOSTS, port, dot_ssh / "id_ed25519", home, daemons)
    try:
        wait_until(
            lambda: all(hosts.ssh(h, "true").returncode == 0 for h in SSH_HOSTS),
            "ssh into 127.0.0.2/3",
            daemons,
        )
    except BaseException:
        stop_all(daemons)
        raise
    return hosts


# -- SLURM ---------------------------------------------------------------------------------------------------


@dataclass
class Slurm:
    """A one-node SLURM: ``conf`` (export it as SLURM_CONF), the node name, the daemons."""

    conf: Path
    node: str
    top: Path
    daemons: list[Daemon] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(
        self, *cmd: str, env: Mapping[str, str] | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env(), **(env or {})},
        )

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, Restarts, ExitCode, ...); {} once SLURM forgot it."""
        out = self.run("scontrol", "-o", "show", "job", job_id).stdout
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)

    def stop(self) -> None:
        self.run("scancel", "--full", "--quiet", "--user", str(os.getuid()))
        stop_all(self.daemons)
        shutil.rmtree(self.top, ignore_errors=True)


SLURM_CONF = """\
ClusterName=hvdmagtagtest
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket},cred_expire=5
StateSaveLocation={top}/state
SlurmdSpoolDir={top}/spool
SlurmctldPidFile={top}/slurmctld.pid
SlurmdPidFile={top}/slurmd.pid
SlurmctldLogFile={top}/slurmctld.log
SlurmdLogFile={top}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
MpiDefault=none
ReturnToService=2
KillWait=10
MinJobAge=600
NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def start_slurm() -> Slurm:
    munged, slurmctld, slurmd = binary("munged"), binary("slurmctld"), binary("slurmd")
    for client in ("sbatch", "scontrol", "squeue", "scancel", "sinfo"):
        binary(client)
    # a short path (unix sockets) with execute permission for all on every component (munged checks it)
    top = Path(tempfile.mkdtemp(prefix="hvd_magtag-slurm-"))
    top.chmod(0o755)
    for d in ("state", "spool"):
        (top / d).mkdir()
    key = top / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    socket_path = top / "munge.sock"
    node = socket.gethostname().split(".")[0]
    conf = _write(
        top / "slurm.conf",
        SLURM_CONF.format(
            node=node,
            ctld_port=free_port(),
            slurmd_port=free_port(),
            munge_socket=socket_path,
            top=top,
            cpus=os.cpu_count() or 1,
        ),
    )
    slurm = Slurm(conf, node, top)
    env = {**os.environ, **slurm.env()}
    try:
        munge_args = [f"--key-file={key}", f"--socket={socket_path}", f"--pid-file={top / 'munged.pid'}"]
        munge_args += [f"--log-file={top / 'munged.log'}", f"--seed-file={top / 'munged.seed'}"]
        slurm.daemons.append(Daemon.start("munged", [munged, "-F", *munge_args], top / "munged.out"))
        wait_until(socket_path.exists, "munged's socket", slurm.daemons)
        slurm.daemons.append(
            Daemon.start("slurmctld", [slurmctld, "-D", "-f", str(conf)], top / "slurmctld.out", env)
        )
        slurm.daemons.append(Daemon.start("slurmd", [slurmd, "-D", "-f", str(conf)], top / "slurmd.out", env))
        wait_until(
            lambda: slurm.run("sinfo", "-h", "-o", "%t").stdout.strip() == "idle",
            "SLURM node idle",
            slurm.daemons,
        )
    except BaseException:
        slurm.stop()
        raise
    return slurm
