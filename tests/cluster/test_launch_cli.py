"""Every launch script: ``--help`` (usage and the exit codes, exit 0), a wrong option and a missing environment
(one ``error:`` line on stderr, exit 2, launch/common.sh's table). Each check runs a shell script only, no
training (milliseconds)."""

from __future__ import annotations

import os
import subprocess

import pytest

from cluster.runs import LAUNCH

pytestmark = pytest.mark.cluster

SCRIPTS = ["local.sh", "multihost.sh", "elastic.sh", "resume.sh", "notebook_batch.sh", "slurm.sbatch"]
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
