"""Elastic training (``python -m hvd_magtag.train --elastic`` under ``horovodrun --min-np 1 --max-np 2``):
start on two workers and the host-discovery script then offers one slot, or start on one and it offers two;
the job continues from its last commit on the new world and finishes: global step count kept, learning
rate rescaled to the new world size, one metrics record per logged step, a complete run directory whose
last weights load and equal the weights every rank ended with (the run's digest)."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from multirank.runner import check_ok, run_horovod, wall_clock
from train_fixtures import TINY_SETTINGS, tiny_dataset

from hvd_magtag.checkpoint import latest_checkpoint, read_state
from hvd_magtag.rundir import RunDir
from hvd_magtag.train import DONE_LINE, weights_digest

TESTS = Path(__file__).resolve().parent
STEPS, COMMIT_EVERY, CHECKPOINT_EVERY, LR = 200, 5, 10, 0.05

pytestmark = [pytest.mark.multirank, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.getbasetemp())


def rewrite_hosts_when(flag: Path, hosts: Path, text: str, stop: threading.Event) -> threading.Thread:
    """A thread that rewrites the discovery file to ``text`` once ``flag`` exists."""

    def watch() -> None:
        while not stop.is_set():
            if flag.exists():
                hosts.write_text(text)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def run_elastic(data, tmp_path: Path, start: str, then: str, np: int, steps: int = STEPS):
    """``horovodrun -np NP --min-np 1 --max-np 2`` elastic training whose discovery script prints ``start``
    and ``then`` once the step-10 checkpoint exists; (process, wall seconds, run dir, the reset's
    (world size, step) as logged)."""
    hosts = tmp_path / "hosts.txt"
    hosts.write_text(start)
    discover = tmp_path / "discover.sh"
    discover.write_text(f"#!/bin/sh\ncat {hosts}\n")
    discover.chmod(0o755)
    run_dir = tmp_path / "run"
    args = ["train", "--data-root", data, "--run-dir", run_dir, "--elastic", "--steps", steps]
    for s in TINY_SETTINGS:
        args += ["--set", s]
    args += ["--set", f"train.lr={LR}", "--set", "train.log_every=5", "--set", "train.validate_every=100"]
    args += [
        "--set",
        f"train.commit_every={COMMIT_EVERY}",
        "--set",
        f"train.checkpoint_every={CHECKPOINT_EVERY}",
    ]
    launcher = [
        "--min-np",
        1,
        "--max-np",
        2,
        "--network-interface",
        "lo",
        "--host-discovery-script",
        discover,
    ]
    stop = threading.Event()
    watcher = rewrite_hosts_when(run_dir / "checkpoints" / "step-00000010" / "state.json", hosts, then, stop)
    try:
        proc, seconds = wall_clock(
            run_horovod, TESTS / "train_cli_script.py", np=np, args=args, timeout=600, launcher_args=launcher
        )
    finally:
        stop.set()
        watcher.join()
    check_ok(proc)
    assert hosts.read_text() == then, "the run never reached step 10"
    found = re.findall(r"elastic: continuing on (\d+) ranks from step (\d+)", proc.stderr)
    assert found, f"no membership change was seen:\n{proc.stderr[-3000:]}"
    size, at = int(found[-1][0]), int(found[-1][1])
    assert 10 <= at < steps and at % COMMIT_EVERY == 0, found
    return proc, seconds, run_dir, (size, at)


def check_run(run_dir: Path, proc, sizes, at: int, steps: int = STEPS) -> None:
    """Every global step logged once, the rate scaled to the world size each step ran on (``sizes``: before
    and after step ``at``), a finished run whose final weights all ranks shared."""
    run = RunDir(run_dir)
    events = run.read_metrics()
    train_steps = [e["step"] for e in events if e["event"] == "train"]
    assert train_steps == list(range(5, steps + 1, 5)), "each global step logged once, none lost or repeated"
    for e in events:
        if e["event"] == "train":  # scale_lr: the rate follows the world size the step ran on
            assert e["lr"] == pytest.approx(LR * (sizes[0] if e["step"] <= at else sizes[1])), e
    assert [e["step"] for e in events if e["event"] == "valid"] == [100, 200]
    assert all(np.isfinite(e["loss"]) for e in events if e["event"] != "done")
    final = read_state(latest_checkpoint(run.checkpoint_dir))
    assert final["step"] == steps and final["world_size"] == sizes[1]
    done = events[-1]
    assert done["event"] == "done" and done["step"] == steps and done["world_size"] == sizes[1]
    line = DONE_LINE.format(ranks=sizes[1], digest=done["weights_sha256"][:12])
    assert line in proc.stderr, proc.stderr[-3000:]
    model = run.load_model("last")  # a valid result: the last weights load into the rebuilt model
    assert weights_digest(model) == done["weights_sha256"]


def test_losing_a_worker_keeps_training(data, tmp_path, horovodrun):
    proc, seconds, run_dir, (size, at) = run_elastic(data, tmp_path, "localhost:2\n", "localhost:1\n", np=2)
    print(f"elastic 2 -> 1 ranks, {STEPS} steps: {seconds:.1f} s wall")
    assert size == 1
    check_run(run_dir, proc, (2, 1), at)


def test_gaining_a_worker_grows_the_job(data, tmp_path, horovodrun):
    """Issue 15: the joining worker gets the committed weights and step in its first sync (and runs no
    other collective before it), the job goes on on 2 ranks and finishes."""
    proc, seconds, run_dir, (size, at) = run_elastic(data, tmp_path, "localhost:1\n", "localhost:2\n", np=1)
    print(f"elastic 1 -> 2 ranks, {STEPS} steps: {seconds:.1f} s wall")
    assert size == 2
    check_run(run_dir, proc, (1, 2), at)
