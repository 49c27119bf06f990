"""What the cluster tests run: the launch scripts with one tiny training config, and how runs are compared.

Every scenario trains the same tiny config (train_fixtures' SampleCNN 3^5 at 1/16 width on the synthetic
dataset) for :data:`STEPS` global steps with one seed, so their final weights can be compared with one shared
reference run (``launch/local.sh -n 2``).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from train_fixtures import TINY_SETTINGS, weights

from cluster.services import ROOT
from hvd_magtag import jobs
from hvd_magtag.rundir import RunDir

LAUNCH = ROOT / "launch"
STEPS, CHECKPOINT_EVERY, COMMIT_EVERY, LOG_EVERY, LR, SEED = 100, 10, 5, 2, 0.05, 7
#: final weights of two runs of one config and seed on 2 ranks: the same ops on the same shards, whatever
#: carries the allreduce (local MPI, MPI or Gloo over ssh, SLURM, a resume), give identical float32 sums
WEIGHT_ATOL = 0.0


def train_args(data: Path, run_dir: Path, *extra: object) -> list[str]:
    args = ["--data-root", str(data), "--run-dir", str(run_dir), "--steps", str(STEPS), "--seed", str(SEED)]
    for s in [*TINY_SETTINGS, f"train.lr={LR}", f"train.log_every={LOG_EVERY}", "train.validate_every=1000"]:
        args += ["--set", s]
    args += [
        "--set",
        f"train.checkpoint_every={CHECKPOINT_EVERY}",
        "--set",
        f"train.commit_every={COMMIT_EVERY}",
    ]
    return args + [str(e) for e in extra]


def launch(
    script: str, *args: object, env: Mapping[str, str], timeout: float = 400
) -> tuple[subprocess.CompletedProcess, float]:
    """Run ``launch/<script> args`` to completion (the whole job is killed on timeout); (result, seconds)."""
    t0 = time.perf_counter()
    proc = jobs.run([LAUNCH / script, *args], env=env, timeout=timeout, merge_output=True)
    return proc, time.perf_counter() - t0


def check_ok(proc: subprocess.CompletedProcess, tail: int = 5000) -> None:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}: {' '.join(map(str, proc.args))}\n{proc.stdout[-tail:]}"
    )


def final_weights(run_dir: Path) -> list[np.ndarray]:
    return weights(RunDir(run_dir).last_weights)


def assert_same_weights(run_dir: Path, reference: Path, atol: float = WEIGHT_ATOL) -> None:
    got, want = final_weights(run_dir), final_weights(reference)
    assert len(got) == len(want) > 0
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(got, want, strict=True))
    assert worst <= atol, f"{run_dir} vs {reference}: max abs weight difference {worst:.3g} > {atol}"
    ours, theirs = done(run_dir), done(reference)  # every rank of both runs: one digest
    assert ours["world_size"] == theirs["world_size"] == 2 and ours["step"] == STEPS
    if atol == 0.0:
        assert ours["weights_sha256"] == theirs["weights_sha256"]


def done(run_dir: Path) -> dict:
    """The run's last metrics record: ``{"event": "done", "step", "world_size", "weights_sha256", ...}``,
    written after every rank's final weights were hashed and found identical."""
    last = RunDir(run_dir).read_metrics()[-1]
    assert last["event"] == "done", last
    return last


def train_steps(run_dir: Path) -> list[int]:
    return [e["step"] for e in RunDir(run_dir).read_metrics() if e["event"] == "train"]


def hostfile(path: Path, hosts: Sequence[str], slots: int = 1) -> Path:
    path.write_text("".join(f"{h} slots={slots}\n" for h in hosts))
    return path
