"""Tiny models, data and state files shared by the multi-rank scripts (run under horovodrun) and their tests.

Sizes are deliberately small (64-sample inputs, 4 channels, 5 tags) so a job of two ranks takes seconds
on two shared cores. Every builder is deterministic given ``keras.utils.set_random_seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Input length (samples) and tag count of the toy problem.
INPUT_SAMPLES = 64
N_TAGS = 5


def conv_model(name: str = "toy_conv"):
    """BN-free Conv1D tagger: [B, 64, 1] -> [B, 5] sigmoid."""
    import keras

    inputs = keras.Input((INPUT_SAMPLES, 1))
    x = keras.layers.Conv1D(4, 3, activation="relu")(inputs)  # 64 -> 62
    x = keras.layers.MaxPooling1D(2)(x)  # 62 -> 31
    x = keras.layers.Conv1D(4, 3, activation="relu")(x)  # 31 -> 29
    x = keras.layers.GlobalAveragePooling1D()(x)  # 29 -> 1 (4 channels)
    outputs = keras.layers.Dense(N_TAGS, activation="sigmoid")(x)  # 4 -> 5 tags
    return keras.Model(inputs, outputs, name=name)


def bn_model(name: str = "toy_bn"):
    """Conv1D + BatchNormalization tagger: [B, 64, 1] -> [B, 5] sigmoid (has moving statistics)."""
    import keras

    inputs = keras.Input((INPUT_SAMPLES, 1))
    x = keras.layers.Conv1D(4, 3, use_bias=False)(inputs)  # 64 -> 62
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling1D(2)(x)  # 62 -> 31
    x = keras.layers.GlobalAveragePooling1D()(x)  # 31 -> 1 (4 channels)
    outputs = keras.layers.Dense(N_TAGS, activation="sigmoid")(x)  # 4 -> 5 tags
    return keras.Model(inputs, outputs, name=name)


MODELS = {"conv": conv_model, "bn": bn_model}


def global_batches(steps: int, global_batch: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``steps`` global batches (x [B, 64, 1] float32, y [B, 5] float32 multi-hot), identical on every rank."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        x = rng.standard_normal((global_batch, INPUT_SAMPLES, 1)).astype(np.float32)
        y = (rng.random((global_batch, N_TAGS)) < 0.3).astype(np.float32)
        out.append((x, y))
    return out


def local_slice(batch: tuple[np.ndarray, ...], rank: int, size: int) -> tuple[np.ndarray, ...]:
    """Rank ``rank``'s contiguous 1/size of a global batch (its size must divide evenly)."""
    n = len(batch[0])
    if n % size:
        raise ValueError(f"global batch {n} is not divisible by {size} ranks")
    per = n // size
    return tuple(a[rank * per : (rank + 1) * per] for a in batch)


def state_arrays(model, optimizer=None) -> dict[str, np.ndarray]:
    """Every model (and optimizer) variable, keyed by position and role, not by auto-generated layer names.

    Keys: ``model|<i>|<last path part>`` (``model|03|moving_mean``) and ``opt|<i>|<role>`` (role = last
    ``_`` token: ``iteration``, ``rate``, ``momentum``, ``velocity``), so states of the same architecture
    built in different orders or processes compare key by key.
    """
    out = {
        f"model|{i:02d}|{v.path.rsplit('/', 1)[-1]}": np.asarray(v.numpy())
        for i, v in enumerate(model.variables)
    }
    if optimizer is not None:
        for i, v in enumerate(optimizer.variables):
            out[f"opt|{i:02d}|{v.path.replace('/', '_').rsplit('_', 1)[-1]}"] = np.asarray(v.numpy())
    return out


def save_state(path: Path, model, optimizer=None) -> None:
    np.savez(path, **state_arrays(model, optimizer))


def load_state(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray], prefix: str = "") -> float:
    """Largest |a - b| over the keys starting with ``prefix`` (the key sets must match)."""
    keys = sorted(k for k in a if k.startswith(prefix))
    if keys != sorted(k for k in b if k.startswith(prefix)):
        raise AssertionError(f"different variables: {sorted(set(a) ^ set(b))}")
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in keys)
