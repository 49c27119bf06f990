"""Die by SIGKILL in the middle of a checkpoint write (a plain process; used by tests/test_faults.py).

    python fault_checkpoint_kill.py OUT_DIR

Saves a complete checkpoint at step 1 under ``OUT_DIR/checkpoints`` (and the weights it holds in
``OUT_DIR/expected.npz``), changes the weights, then starts the step-2 checkpoint and SIGKILLs itself right
after ``model.npz`` of that checkpoint is on disk, before ``optimizer.npz`` and ``state.json``.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import numpy as np


def main() -> None:
    out = Path(sys.argv[1])
    import keras
    import toy

    from hvd_magtag import checkpoint

    keras.utils.set_random_seed(0)
    model = toy.conv_model()
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    checkpoint.save(out / "checkpoints", model, optimizer, {"step": 1})
    np.savez(out / "expected.npz", *[v.numpy() for v in model.variables])
    for v in model.trainable_variables:
        v.assign(v + 1.0)

    real_save = checkpoint._save_arrays

    def save_then_die(path: Path, arrays) -> None:
        if path.name == "optimizer.npz":  # model.npz of step 2 is written: die mid-checkpoint
            os.kill(os.getpid(), signal.SIGKILL)
        real_save(path, arrays)

    checkpoint._save_arrays = save_then_die
    checkpoint.save(out / "checkpoints", model, optimizer, {"step": 2})
    raise SystemExit("unreachable: the process should have been killed")


if __name__ == "__main__":
    main()
