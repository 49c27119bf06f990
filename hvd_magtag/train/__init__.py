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
"""

from hvd_magtag.train.command import build_parser, experiment_from_args, main
from hvd_magtag.train.loop import Loop, train, weights_digest
from hvd_magtag.train.monitor import DONE_LINE, Monitor
from hvd_magtag.train.setup import (
    MIN_FREE_BYTES,
    Job,
    _versions,
    build_model,
    check_run_dir,
    create_model,
    create_run_dir,
    make_optimizer,
    new_optimizer,
    resume_problem,
    run_info,
    runs_root,
    train_batches,
)
from hvd_magtag.train.step import make_train_step, restart_from, save_weights, sync_statistics

__all__ = [
    "_versions",  # pretrained.musicnn records the same versions
    "DONE_LINE",
    "MIN_FREE_BYTES",
    "Job",
    "Loop",
    "Monitor",
    "build_model",
    "build_parser",
    "check_run_dir",
    "create_model",
    "create_run_dir",
    "experiment_from_args",
    "main",
    "make_optimizer",
    "make_train_step",
    "new_optimizer",
    "restart_from",
    "resume_problem",
    "run_info",
    "runs_root",
    "save_weights",
    "sync_statistics",
    "train",
    "train_batches",
    "weights_digest",
]
