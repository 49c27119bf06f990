"""Shared by the training/evaluation/demo tests: a tiny synthetic dataset and tiny-model training commands.

The dataset (64 one-second clips in the MTAT layout, ``hvd_magtag.data.synth``) is generated once per test
session under pytest's base temp folder; synth reuses it when its parameters are unchanged.
The model is SampleCNN 3^5 at 1/16 width: 729-sample (46 ms) windows, a few thousand parameters.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TINY_CLIPS = 64
TINY_SECONDS = 1.0
#: --set overrides giving a tiny, fast, deterministic run (extend with steps etc. per test)
TINY_SETTINGS = [
    "model.name=samplecnn",
    "model.overrides={m: 3, n: 5, width: 0.0625}",
    "data.split=directory",
    "train.batch_size=4",
    "train.optimizer=sgd",
    "train.lr=0.05",
    "train.deterministic=true",
    "train.log_every=2",
    "train.valid_windows=2",
    "eval.windows=2",
    "eval.batch_size=16",
]


def tiny_dataset(base: Path) -> Path:
    """The session's tiny synthetic dataset (generated on first use)."""
    out = base / "train_tiny_synth"
    if not (out / "annotations_final.csv").is_file():
        cmd = [sys.executable, "-m", "hvd_magtag.data.synth", "--out", str(out), "--clips", str(TINY_CLIPS)]
        cmd += ["--seconds", str(TINY_SECONDS), "--workers", "1", "--seed", "3"]
        proc = run(cmd)
        assert proc.returncode == 0, f"synthesis failed: {proc.stderr[-3000:]}"
    return out


def child_env() -> dict[str, str]:
    """Environment for child processes: quiet TF, unbuffered, no launcher variables from a parent job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_", "PMIX_", "HOROVOD_", "PMI_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return env


def train_command(data: Path, run_dir: Path, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "hvd_magtag.train", "--data-root", str(data), "--run-dir", str(run_dir)]
    for s in TINY_SETTINGS:
        cmd += ["--set", s]
    return cmd + list(extra)


def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=timeout)


def weights(path: Path) -> list[np.ndarray]:
    """Arrays of a ``.weights.h5`` file (Keras 3 layout), in file order."""
    import h5py

    out: list[np.ndarray] = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: out.append(np.array(obj)) if isinstance(obj, h5py.Dataset) else None)
    return out


#: Steps and settings of conftest's ``two_rank_reference`` run (and of the runs compared with it): enough
#: steps after the step-8 checkpoint for a kill to land mid-run, checkpoints every 4 steps.
REFERENCE_STEPS = 48
REFERENCE_SETTINGS = ["--set", "train.checkpoint_every=4", "--set", "train.validate_every=1000"]


def two_rank_args(data: Path, run_dir: Path, *extra: object) -> list[str]:
    """``train_cli_script.py`` arguments of the reference config: TINY_SETTINGS, REFERENCE_* and ``extra``."""
    args = ["train", "--data-root", str(data), "--run-dir", str(run_dir), "--steps", str(REFERENCE_STEPS)]
    for s in TINY_SETTINGS:
        args += ["--set", s]
    return args + REFERENCE_SETTINGS + [str(e) for e in extra]
