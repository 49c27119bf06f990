"""The training loop, shaped like Horovod's ``examples/elastic/tensorflow2/tensorflow2_mnist_elastic.py``:
init, set-up on rank 0 shared with every rank, the learning rate scaled by the world size, an identical start
(broadcast), a step loop under ``elastic_run`` that commits its state every ``train.commit_every`` steps, and
a reset callback that follows a new world (rank, size, learning rate, data shard, monitor). Every line that
talks to the other ranks says ``# Horovod:``; without ``train.elastic`` the same loop runs once, uncommitted.
"""

from __future__ import annotations

import numpy as np

from hvd_magtag import checkpoint, distributed
from hvd_magtag.config import Experiment, parse_windows
from hvd_magtag.evaluate import score_split
from hvd_magtag.schedules import Schedule
from hvd_magtag.train import setup
from hvd_magtag.train.monitor import Monitor
from hvd_magtag.train.step import restart_from, save_weights, sync_statistics


def train(exp: Experiment):
    """Train ``exp`` (collective under horovodrun); returns the RunDir. Resumes from the run directory's
    latest checkpoint when there is one."""
    cfg = exp.validate().train  # every option and rule, before any process group, data or TensorFlow work
    ctx = distributed.init()  # Horovod: initialize (rank, size; TensorFlow threads per rank)
    log = distributed.get_logger(setup.LOGGER)

    job = setup.prepare(exp, ctx)  # Horovod: rank 0 reads data, run dir and checkpoint; all ranks get them
    schedule = Schedule(cfg, ctx.size)  # Horovod: learning rate scaled by the world size
    schedule.load_state_dict(job.start.get("schedule", {}))
    optimizer, train_step = setup.new_optimizer(job.model, schedule, cfg, max(job.step - 1, 0), job.loaded)
    if ctx.is_root and job.latest is not None:
        checkpoint.load(job.latest, job.model, optimizer)
        log.info("resuming %s from step %d (%s)", job.run.path, job.step, job.latest.name)
    distributed.broadcast_model_and_optimizer(job.model, optimizer)  # Horovod: identical start on every rank

    loop = Loop(job, schedule, optimizer, train_step)
    loop.enter_world(ctx, job.step)
    best = {"best_roc_auc": job.start.get("best_roc_auc", -1.0), "best_step": job.start.get("best_step", -1)}
    if cfg.elastic:  # Horovod: model and optimizer variables, the global step and the best result
        state = distributed.elastic_state(job.model, optimizer, step=job.step, **best)
    else:
        state = distributed.LocalElasticState(step=job.step, **best)

    def on_reset() -> None:  # Horovod: ranks left or joined; the state is back at the last commit
        loop.enter_world(distributed.context(), state.step)  # rank, size: learning rate, data shard
        log.info(
            "elastic: continuing on %d ranks from step %d, learning rate %.3g",
            loop.ctx.size,
            state.step,
            loop.schedule.lr(state.step),
        )

    state.register_reset_callbacks([on_reset])

    def run_steps(state) -> None:
        while state.step < cfg.steps:
            loop.next_stage(state.step)
            lr = loop.schedule.lr(state.step)
            loop.optimizer.learning_rate.assign(lr)
            x, y = next(loop.batches)
            loss = loop.train_step(x, y)  # Horovod: gradients averaged over ranks (allreduce)
            state.step += 1
            loop.monitor.train(state.step, loss, lr)  # Horovod: allreduce of the logged loss
            if loop.valid_clips and (state.step % cfg.validate_every == 0 or state.step == cfg.steps):
                loop.validate(state)  # Horovod: BN statistics averaged, predictions allgathered
            if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps:
                loop.save_checkpoint(state)  # Horovod: BN statistics averaged; rank 0 writes
            if cfg.elastic and (state.step % cfg.commit_every == 0 or state.step == cfg.steps):
                state.commit()  # Horovod: restore point; raises on a membership change (reset, rerun)

    if cfg.elastic:
        distributed.elastic_run(run_steps)(state)  # Horovod: rerun from the last commit after each reset
    else:
        run_steps(state)
    loop.finish(state)
    distributed.barrier()  # Horovod: no rank leaves before rank 0 has written the last weights
    return job.run


class Loop:
    """What the step loop works with: the job, the current world's context, schedule, data shard and
    monitor (:meth:`enter_world`), the optimizer and compiled step (:meth:`next_stage`, plateau restarts)."""

    def __init__(self, job: setup.Job, schedule: Schedule, optimizer, train_step) -> None:
        import tensorflow as tf

        self.job, self.cfg, self.run, self.model = job, job.exp.train, job.run, job.model
        self.valid_clips = job.valid_clips
        self.schedule, self.optimizer, self.train_step = schedule, optimizer, train_step
        self.predict = tf.function(lambda x: self.model(x, training=False))
        self.windows = parse_windows(self.cfg.valid_windows, "train.valid_windows")
        self.ctx = self.monitor = self.batches = None
        self.steps_per_epoch = 0

    def enter_world(self, ctx, step: int) -> None:
        """Train from global ``step`` as rank ``ctx.rank`` of ``ctx.size``: the learning rate follows the
        world size (schedule state kept), this rank's data shard, a monitor on the (maybe new) rank 0."""
        first = self.ctx is None
        if not first:
            state = self.schedule.state_dict()
            self.schedule = Schedule(self.cfg, ctx.size)
            self.schedule.load_state_dict(state)
            self.monitor.close()
        self.ctx = ctx
        self.batches, self.steps_per_epoch = setup.train_batches(self.job, step, ctx)
        self.monitor = Monitor(self.run, ctx, self.cfg, step, self.steps_per_epoch)
        if first:
            self._describe(step)

    def _describe(self, step: int) -> None:
        job, ctx, cfg = self.job, self.ctx, self.cfg
        distributed.get_logger(setup.LOGGER).info(
            "training %s (%s parameters) on %d clips x %d ranks, batch %d/rank, steps %d -> %d; run dir %s",
            job.exp.model.name,
            f"{job.info['n_params']:,}",
            len(job.train_clips),
            ctx.size,
            cfg.batch_size,
            step,
            cfg.steps,
            self.run.path,
        )

    def next_stage(self, step: int) -> None:
        """Staged schedules: the next stage's optimizer, with fresh state on every rank."""
        if step > 0 and self.schedule.optimizer_name(step) != self.schedule.optimizer_name(step - 1):
            self.optimizer, self.train_step = setup.new_optimizer(
                self.model, self.schedule, self.cfg, step, self.job.loaded
            )

    def validate(self, state) -> None:
        """Score the validation split (sharded over ranks); rank 0 keeps the best weights; a plateau lowers
        the learning rate and restarts every rank from them. Collective."""
        sync_statistics(self.model)  # Horovod: BN moving statistics averaged over ranks
        result, _ = score_split(  # Horovod: predictions allgathered, the result broadcast
            self.model,
            self.valid_clips,
            self.job.catalog.tags,
            self.model.spec,
            windows=self.windows,
            batch_size=self.job.exp.eval.batch_size,
            manifest=self.job.manifest,
            ctx=self.ctx,
            predict_fn=self.predict,
        )
        improved = bool(np.isfinite(result["roc_auc"]) and result["roc_auc"] > state.best_roc_auc)
        if improved:
            state.best_roc_auc, state.best_step = result["roc_auc"], state.step
            if self.ctx.is_root:
                save_weights(self.model, self.run.best_weights)
        self.monitor.valid(state.step, result, improved)
        if self.schedule.on_validation(improved) and state.best_step > 0:  # plateau: lower lr, restart
            restart_from(self.run.best_weights, self.model, self.ctx)  # Horovod: broadcast of rank 0's
            self.optimizer, self.train_step = setup.new_optimizer(
                self.model, self.schedule, self.cfg, state.step, self.job.loaded
            )

    def save_checkpoint(self, state) -> None:
        """Rank 0 writes a checkpoint of the (rank-averaged) model, the optimizer and the loop state."""
        sync_statistics(self.model)  # Horovod: BN moving statistics averaged over ranks
        if not self.ctx.is_root:
            return
        loop_state = {
            "step": state.step,
            "epoch": state.step // self.steps_per_epoch,
            "schedule": self.schedule.state_dict(),
            "best_roc_auc": state.best_roc_auc,
            "best_step": state.best_step,
            "seed": self.cfg.seed,
            "world_size": self.ctx.size,
            "batch_size": self.cfg.batch_size,
        }
        checkpoint.save(
            self.run.checkpoint_dir, self.model, self.optimizer, loop_state, keep=self.cfg.keep_checkpoints
        )

    def finish(self, state) -> None:
        """Rank 0 saves the last weights (BN statistics averaged first) and says how it went."""
        self.monitor.close()
        sync_statistics(self.model)  # Horovod: BN moving statistics averaged over ranks
        if self.ctx.is_root:
            save_weights(self.model, self.run.last_weights)
            distributed.get_logger(setup.LOGGER).info(
                "done: %d steps, best validation ROC-AUC %.4f at step %d; run dir %s",
                state.step,
                state.best_roc_auc,
                state.best_step,
                self.run.path,
            )
