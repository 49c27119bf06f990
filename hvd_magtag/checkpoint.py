"""Training checkpoints: everything to continue a run exactly where it stopped (written by rank 0).

A checkpoint is a folder ``RUN_DIR/checkpoints/step-00001200/`` holding

    model.npz      every model variable (weights, BatchNorm statistics, dropout seed-generator state),
                   keyed by variable path
    optimizer.npz  every optimizer variable (iteration count, learning rate, momenta), keyed by path
    state.json     step, epoch, optimizer name, schedule state, best validation AUC, seed, fingerprint

It is written into a hidden temporary folder and renamed into place, so a crash (even SIGKILL) mid-write
never leaves a half checkpoint that resume would pick up. The last ``keep`` checkpoints are kept.
Loading checks variable paths and shapes, so a checkpoint never silently loads into another architecture.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from hvd_magtag import fsutil
from hvd_magtag.errors import CheckpointError

_STEP_DIR = re.compile(r"^step-(\d{8})$")


def _variables_to_arrays(variables) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for i, v in enumerate(variables):
        key = f"{i:04d}:{v.path}"  # index first: paths are not guaranteed unique
        out[key] = np.asarray(v.numpy())
    return out


def _assign_arrays(variables, arrays: dict[str, np.ndarray], what: str, source: Path) -> None:
    keys = sorted(arrays)
    if len(keys) != len(variables):
        raise CheckpointError(
            f"{source}: holds {len(keys)} {what} variables, the current {what} has {len(variables)}; "
            "the architecture or optimizer differs from the run's"
        )
    for key, v in zip(keys, variables):
        value = arrays[key]
        if tuple(value.shape) != tuple(v.shape):
            raise CheckpointError(
                f"{source}: {what} variable {key.split(':', 1)[1]} has shape {value.shape}, "
                f"current {v.path} has {tuple(v.shape)}; the architecture differs from the run's"
            )
    for key, v in zip(keys, variables):
        v.assign(arrays[key])


def _save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    np.savez(path, **arrays)


def step_dir(checkpoint_dir: Path, step: int) -> Path:
    return Path(checkpoint_dir) / f"step-{step:08d}"


def list_checkpoints(checkpoint_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints as (step, folder), oldest first (temporary folders are ignored)."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return []
    found = []
    for p in checkpoint_dir.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and (p / "state.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    found = list_checkpoints(checkpoint_dir)
    return found[-1][1] if found else None


def save(checkpoint_dir: str | Path, model, optimizer, state: dict[str, Any], keep: int = 3) -> Path:
    """Write a checkpoint for ``state["step"]`` atomically; prune to the newest ``keep``. Returns its folder."""
    checkpoint_dir = Path(checkpoint_dir)
    final = step_dir(checkpoint_dir, int(state["step"]))
    with fsutil.atomic_dir(final) as tmp:  # re-saving a step (e.g. after a resume) swaps the old one out
        _save_arrays(tmp / "model.npz", _variables_to_arrays(model.variables))
        _save_arrays(tmp / "optimizer.npz", _variables_to_arrays(optimizer.variables))
        (tmp / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
    for _, old in list_checkpoints(checkpoint_dir)[: -max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    fsutil.remove_stale(checkpoint_dir, "step-")  # left by a killed writer
    return final


def read_state(folder: str | Path) -> dict[str, Any]:
    return json.loads((Path(folder) / "state.json").read_text())


def load(folder: str | Path, model, optimizer=None) -> dict[str, Any]:
    """Restore model (and optimizer, built beforehand) variables from ``folder``; returns its state dict."""
    folder = Path(folder)
    try:
        with np.load(folder / "model.npz") as z:
            _assign_arrays(model.variables, dict(z), "model", folder)
        if optimizer is not None:
            with np.load(folder / "optimizer.npz") as z:
                _assign_arrays(optimizer.variables, dict(z), "optimizer", folder)
        return read_state(folder)
    except (OSError, ValueError, json.JSONDecodeError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(
            f"{folder}: unreadable checkpoint ({e}); delete it to resume from an older one"
        ) from None
