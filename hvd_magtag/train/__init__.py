"""Train a tagging model with Horovod; one process is a world of size 1.

    python -m hvd_magtag.train --model shortchunk_cnn --set model.overrides.width=0.5 --steps 2000
    horovodrun -np 2 python -m hvd_magtag.train --config demo --run-dir runs/demo    # the packaged demo.yaml
    horovodrun -np 2 python -m hvd_magtag.train --run-dir runs/demo      # resume exactly where it stopped

Settings come from, in order: defaults (hvd_magtag.config), the run directory's config.json when resuming
without --config, ``--config`` YAML/JSON, the flags below, then ``--set section.key=value`` (repeatable).
The run directory (hvd_magtag.rundir) receives config.json, run.json, metrics.jsonl, tensorboard/,
checkpoints/, best/ and last/ weights. Only rank 0 writes or logs; every rank computes.

The package, by job: ``command`` (flags, settings, :func:`main`), ``setup`` (data, run directory, model and
optimizer, resume verdict), ``step`` (the compiled step and gradient allreduce), ``monitor`` (rank-0
metrics and progress) and ``loop`` (:func:`train`, shaped like Horovod's elastic TensorFlow 2 example).

Importing the package imports no TensorFlow: names load on first use (PEP 562), so that ``python -m
hvd_magtag.train --help`` and option errors answer without it.
"""

from __future__ import annotations

import importlib

#: public name -> submodule defining it
_LAZY = {
    "DONE_LINE": "hvd_magtag.train.monitor",
    "Job": "hvd_magtag.train.setup",
    "Loop": "hvd_magtag.train.loop",
    "MIN_FREE_BYTES": "hvd_magtag.train.setup",
    "Monitor": "hvd_magtag.train.monitor",
    "_versions": "hvd_magtag.train.setup",
    "build_model": "hvd_magtag.train.setup",
    "build_parser": "hvd_magtag.train.command",
    "check_run_dir": "hvd_magtag.train.setup",
    "create_model": "hvd_magtag.train.setup",
    "create_run_dir": "hvd_magtag.train.setup",
    "experiment_from_args": "hvd_magtag.train.command",
    "main": "hvd_magtag.train.command",
    "make_optimizer": "hvd_magtag.train.setup",
    "make_train_step": "hvd_magtag.train.step",
    "new_optimizer": "hvd_magtag.train.setup",
    "restart_from": "hvd_magtag.train.step",
    "resume_problem": "hvd_magtag.train.setup",
    "run_info": "hvd_magtag.train.setup",
    "runs_root": "hvd_magtag.train.setup",
    "save_weights": "hvd_magtag.train.step",
    "sync_statistics": "hvd_magtag.train.step",
    "train": "hvd_magtag.train.loop",
    "train_batches": "hvd_magtag.train.setup",
    "weights_digest": "hvd_magtag.train.loop",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hvd_magtag.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
