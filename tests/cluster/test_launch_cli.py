"""Every launch script: ``--help`` (usage and the exit codes, exit 0), a wrong option and a missing environment
(one ``error:`` line on stderr, exit 2, launch/common.sh's table). Each check runs a shell script only, no
training (milliseconds)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from cluster.runs import LAUNCH

pytestmark = pytest.mark.cluster

SCRIPTS = [
    "local.sh",
    "multihost.sh",
    "elastic.sh",
    "resume.sh",
    "notebook_batch.sh",
    "slurm.sbatch",
    "tag.sh",
]
EXIT_USAGE = 2


def run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "VENV", "PYTHON", "HOROVODRUN"))
    }
    return subprocess.run(
        ["bash", str(LAUNCH / script), *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=30,
    )


def one_error_line(proc: subprocess.CompletedProcess, script: str, *words: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"{script}: expected one stderr line, got:\n{proc.stderr}"
    assert lines[0].startswith(f"error: {script}: "), lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    proc = run(script, "--help", env={"VENV": "/nonexistent"})  # help needs no environment
    assert proc.returncode == 0, proc.stderr
    assert f"launch/{script}" in proc.stdout and "exit codes: 0 finished" in proc.stdout
    assert "143" in proc.stdout and proc.stderr == ""


@pytest.mark.parametrize("script", SCRIPTS)
def test_wrong_option(script):
    proc = run(script, "--no-such-option")
    assert proc.returncode == EXIT_USAGE
    one_error_line(proc, script, "--no-such-option", "--help")


@pytest.mark.parametrize(
    "script,args",
    [
        ("local.sh", ["-n"]),
        ("local.sh", ["-n", "two"]),
        ("multihost.sh", ["-f", "/nonexistent/hosts"]),
        ("multihost.sh", ["--ssh-port", "x", "-f", str(LAUNCH / "hostfile.example")]),
        ("multihost.sh", ["--ssh-identity", "/nonexistent/id", "-f", str(LAUNCH / "hostfile.example")]),
        ("multihost.sh", []),
        ("elastic.sh", ["-n", "3", "--max-np", "2"]),
        ("elastic.sh", ["-d", "/nonexistent/discover.sh"]),
        ("resume.sh", []),
        ("notebook_batch.sh", ["a", "b", "c"]),
        ("slurm.sbatch", ["-i"]),
        ("tag.sh", []),
        ("tag.sh", ["-f", "/nonexistent/hosts", "--", "lib", "--model", "m"]),
    ],
)
def test_bad_value(script, args):
    proc = run(script, *args)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    one_error_line(proc, script)


def test_resume_needs_a_run_directory(tmp_path):
    proc = run("resume.sh", str(tmp_path))
    assert proc.returncode == 4  # the training's run-directory code
    one_error_line(proc, "resume.sh", str(tmp_path), "not a run directory")


@pytest.mark.parametrize("script", [s for s in SCRIPTS if s not in ("slurm.sbatch", "resume.sh")])
def test_missing_environment(script, tmp_path):
    args = ["-f", str(LAUNCH / "hostfile.example")] if script == "multihost.sh" else []
    args = ["kernel_size"] if script == "notebook_batch.sh" else args
    args = ["--", "lib", "--model", "m"] if script == "tag.sh" else args
    proc = run(script, *args, env={"VENV": str(tmp_path / "no-venv")})
    assert proc.returncode == EXIT_USAGE
    one_error_line(proc, script, str(tmp_path / "no-venv"), "make install")


def test_resume_missing_environment(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    proc = run("resume.sh", str(tmp_path), env={"VENV": str(tmp_path / "no-venv")})
    assert proc.returncode == EXIT_USAGE
    one_error_line(proc, "resume.sh", "make install")


def test_slurm_script_outside_a_job():
    proc = run("slurm.sbatch", "--", "--steps", "1")
    assert proc.returncode == EXIT_USAGE
    one_error_line(proc, "slurm.sbatch", "not inside a SLURM job", "sbatch")


def test_slurm_script_finds_no_checkout(tmp_path):
    copy = tmp_path / "slurm_script"  # what sbatch runs: a copy in its spool folder
    copy.write_text((LAUNCH / "slurm.sbatch").read_text())
    proc = subprocess.run(
        ["bash", str(copy), "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "SLURM_SUBMIT_DIR": str(tmp_path)},
        timeout=30,
    )
    assert proc.returncode == EXIT_USAGE
    one_error_line(proc, "slurm.sbatch", "HVD_MAGTAG_ROOT")


def fake_environment(tmp_path, horovodrun: str) -> dict[str, str]:
    """A venv whose horovodrun is ``horovodrun`` (a shell script) and a PATH with a fake ``scontrol``."""
    venv, bin_dir = tmp_path / "venv", tmp_path / "bin"
    (venv / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    for path, text in [
        (venv / "bin" / "python", "#!/bin/sh\nexit 0\n"),
        (venv / "bin" / "horovodrun", f"#!/usr/bin/env bash\n{horovodrun}\n"),
        (
            bin_dir / "scontrol",
            '#!/bin/sh\n[ "$1 $2 $3" = "show hostnames n[1-3]" ] && printf "n1\\nn2\\nn3\\n"\n',
        ),
    ]:
        path.write_text(text)
        path.chmod(0o755)
    return {"VENV": str(venv), "PATH": f"{bin_dir}:{os.environ['PATH']}"}


SLURM_JOB = {"SLURM_JOB_NODELIST": "n[1-3]", "SLURM_NTASKS": "5", "SLURM_CPUS_PER_TASK": "3"}


def test_slurm_hosts_follow_tasks_per_node(tmp_path):
    env = fake_environment(
        tmp_path, f'echo "$@" > {tmp_path / "args"}; echo "OMP=$OMP_NUM_THREADS" >> {tmp_path / "args"}'
    )
    proc = run(
        "slurm.sbatch",
        "--gloo",
        "--",
        "--steps",
        "1",
        env={**env, **SLURM_JOB, "SLURM_TASKS_PER_NODE": "2(x2),1"},
    )
    assert proc.returncode == 0, proc.stderr
    python = tmp_path / "venv" / "bin" / "python"
    args, omp = (tmp_path / "args").read_text().splitlines()
    assert args == f"-np 5 -H n1:2,n2:2,n3:1 --gloo {python} -m hvd_magtag.train --steps 1"
    assert omp == "OMP=3"


def test_slurm_hosts_that_do_not_match_the_nodes(tmp_path):
    env = fake_environment(tmp_path, "exit 0")
    proc = run("slurm.sbatch", "--", "--steps", "1", env={**env, **SLURM_JOB, "SLURM_TASKS_PER_NODE": "2"})
    assert proc.returncode == EXIT_USAGE
    one_error_line(proc, "slurm.sbatch", "SLURM_TASKS_PER_NODE=2", "3 nodes")


LAUNCHERS = {
    "local.sh": [],
    "multihost.sh": ["-f", str(LAUNCH / "hostfile.example")],
    "elastic.sh": [],
    "resume.sh": ["RUN"],
    "slurm.sbatch": [],
    "tag.sh": [],
}


@pytest.mark.parametrize("script", sorted(LAUNCHERS))
def test_a_killed_launch_never_exits_0(script, tmp_path):
    """SIGTERM to the script reaches the launcher, and the script exits 143 although the launcher exits 0
    (as horovodrun's Gloo driver may when it traps the signal)."""
    started = tmp_path / "started"
    launcher = (
        f"trap 'echo got-term > {tmp_path / 'term'}; kill $!; exit 0' TERM; touch {started}; sleep 30 & wait"
    )
    env = {**fake_environment(tmp_path, launcher), **SLURM_JOB, "SLURM_TASKS_PER_NODE": "2(x2),1"}
    (tmp_path / "RUN").mkdir()
    (tmp_path / "RUN" / "config.json").write_text("{}")
    args = [str(tmp_path / a) if a == "RUN" else a for a in LAUNCHERS[script]]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "VENV"))}
    proc = subprocess.Popen(
        ["bash", str(LAUNCH / script), *args, "--", "lib" if script == "tag.sh" else "--steps", "1"],
        env={**clean, **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(200):
            if started.exists():
                break
            time.sleep(0.05)
        assert started.exists(), "the fake launcher never started"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 143 and (tmp_path / "term").read_text() == "got-term\n"
    assert (
        err.strip().splitlines()[-1]
        == f"error: {script}: killed by signal 15; the job was stopped (exit 143)"
    )


@pytest.mark.parametrize(
    "args,want",
    [
        (["-n", "3", "--gloo"], "-np 3 --gloo {py} -m hvd_magtag.tag lib --model m"),
        (
            ["-f", "HOSTS", "--ssh-port", "2222"],
            "-np 3 --hostfile HOSTS --ssh-port 2222 {py} -m hvd_magtag.tag lib --model m",
        ),
    ],
)
def test_tag_sh_runs_the_tagger_on_ranks(args, want, tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("a slots=2\nb slots=1\n")
    env = fake_environment(tmp_path, f'echo "$@" > {tmp_path / "args"}')
    args = [str(hosts) if a == "HOSTS" else a for a in args]
    proc = run("tag.sh", *args, "--", "lib", "--model", "m", env=env)
    assert proc.returncode == 0, proc.stderr
    py = tmp_path / "venv" / "bin" / "python"
    assert (tmp_path / "args").read_text().strip() == want.format(py=py).replace("HOSTS", str(hosts))
