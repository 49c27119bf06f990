"""Elastic training (``python -m hvd_magtag.train --elastic`` under ``horovodrun --min-np 1 --max-np 2``):
start on two workers, the host-discovery script then offers one slot, the job continues on one rank from
its last commit and finishes: global step count kept, learning rate rescaled to the new world size, a
complete run directory (run.json, metrics, checkpoints, last weights that load)."""

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

TESTS = Path(__file__).resolve().parent
STEPS, COMMIT_EVERY, CHECKPOINT_EVERY, LR = 200, 5, 10, 0.05

pytestmark = [pytest.mark.multirank, pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.getbasetemp())


def drop_a_slot_when(flag: Path, hosts: Path, stop: threading.Event) -> threading.Thread:
    """A thread that rewrites the discovery file to one slot once ``flag`` exists."""

    def watch() -> None:
        while not stop.is_set():
            if flag.exists():
                hosts.write_text("localhost:1\n")
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_losing_a_worker_keeps_training(data, tmp_path, horovodrun):
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("localhost:2\n")
    discover = tmp_path / "discover.sh"
    discover.write_text(f"#!/bin/sh\ncat {hosts}\n")
    discover.chmod(0o755)
    run_dir = tmp_path / "run"
    args = ["train", "--data-root", data, "--run-dir", run_dir, "--elastic", "--steps", STEPS]
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
    watcher = drop_a_slot_when(run_dir / "checkpoints" / "step-00000010" / "state.json", hosts, stop)
    try:
        proc, seconds = wall_clock(
            run_horovod,
            TESTS / "train_cli_script.py",
            np=2,
            args=args,
            timeout=600,
            launcher_args=launcher,
        )
    finally:
        stop.set()
        watcher.join()
    print(f"elastic 2 -> 1 ranks, {STEPS} steps: {seconds:.1f} s wall")
    check_ok(proc)
    assert hosts.read_text() == "localhost:1\n", "the run never reached step 10"

    found = re.findall(r"elastic: continuing on (\d+) ranks from step (\d+)", proc.stderr)
    assert found, f"no membership change was seen:\n{proc.stderr[-3000:]}"
    size, resumed_at = int(found[-1][0]), int(found[-1][1])
    assert size == 1 and 10 <= resumed_at < STEPS and resumed_at % COMMIT_EVERY == 0

    run = RunDir(run_dir)
    events = run.read_metrics()
    train_steps = [e["step"] for e in events if e["event"] == "train"]
    assert train_steps == list(range(5, STEPS + 1, 5)), "each global step logged once, none lost or repeated"
    for e in events:
        if e["event"] == "train":  # scale_lr: the rate follows the world size the step ran on
            assert e["lr"] == pytest.approx(LR * (2 if e["step"] <= resumed_at else 1)), e
    assert [e["step"] for e in events if e["event"] == "valid"] == [100, 200]
    assert all(np.isfinite(e["loss"]) for e in events)

    final = read_state(latest_checkpoint(run.checkpoint_dir))
    assert final["step"] == STEPS and final["world_size"] == 1
    assert run.info["model"] == "samplecnn"
    model = run.load_model("last")  # a valid result: the last weights load into the rebuilt model
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())
