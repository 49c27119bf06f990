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
    distributed.init()  # Horovod: initialize (rank, size; TensorFlow threads per rank)
    log = distributed.get_logger(setup.LOGGER)

    # Horovod: at each sync rank 0's set-up, weights, optimizer state and step reach every rank; a joining
    # worker runs no other collective before it (see distributed.shared_state)
    job = setup.Job(exp)
    state = distributed.shared_state(
        job.variables,
        share=job.share,
        join=job.join,
        elastic=cfg.elastic,
        step=0,
        best_roc_auc=-1.0,
        best_step=-1,
    )
    loop = Loop(job)

    def on_reset() -> None:  # Horovod: ranks left or joined; the state is back at the last commit
        loop.leave_world(distributed.context())  # learning rate for the new size; data shard dropped
        log.info(
            "elastic: continuing on %d ranks from step %d, learning rate %.3g",
            loop.ctx.size,
            state.step,
            job.schedule.lr(state.step),
        )

    state.register_reset_callbacks([on_reset])

    def run_steps(state) -> None:
        loop.enter_world(distributed.context(), state.step)  # Horovod: this rank's shard from the synced step
        while state.step < cfg.steps:
            lr = loop.learning_rate(state.step)
            x, y = next(loop.batches)
            loss = job.train_step(x, y)  # Horovod: gradients averaged over ranks (allreduce)
            state.step += 1
            loop.monitor.train(state.step, loss, lr)  # Horovod: allreduce of the logged loss
            if job.valid_clips and (state.step % cfg.validate_every == 0 or state.step == cfg.steps):
                loop.validate(state)  # Horovod: BN statistics averaged, predictions allgathered
            if state.step % cfg.checkpoint_every == 0 or state.step == cfg.steps:
                loop.save_checkpoint(state)  # Horovod: BN statistics averaged; rank 0 writes
            if cfg.elastic and (state.step % cfg.commit_every == 0 or state.step == cfg.steps):
                state.commit()  # Horovod: restore point; raises on a membership change (reset, rerun)

    if cfg.elastic:
        distributed.elastic_run(run_steps)(state)  # Horovod: sync, run; after each reset: sync, run again
    else:
        state.sync()  # Horovod: rank 0's set-up, weights and step on every rank
        run_steps(state)
    loop.finish(state)
    distributed.barrier()  # Horovod: no rank leaves before rank 0 has written the last weights
    return job.run


class Loop:
    """What the step loop works with besides the :class:`~hvd_magtag.train.setup.Job`: the current world's
    context, this rank's data shard and the monitor (:meth:`enter_world`, :meth:`leave_world`)."""

    def __init__(self, job: setup.Job) -> None:
        self.job, self.cfg = job, job.exp.train
        self.windows = parse_windows(self.cfg.valid_windows, "train.valid_windows")
        self.ctx = self.monitor = self.batches = self.predict = None
        self.steps_per_epoch = 0

    def enter_world(self, ctx, step: int) -> None:
        """Train from global ``step`` as rank ``ctx.rank`` of ``ctx.size``: this rank's data shard and a
        monitor on rank 0 (made again only after :meth:`leave_world`)."""
        if self.batches is not None:
            return
        first, self.ctx = self.predict is None, ctx
        if first:
            import tensorflow as tf

            model = self.job.model
            self.predict = tf.function(lambda x: model(x, training=False))
        self.batches, self.steps_per_epoch = setup.train_batches(self.job, step, ctx)
        self.monitor = Monitor(self.job.run, ctx, self.cfg, step, self.steps_per_epoch)
        if first:
            self._describe(step)

    def leave_world(self, ctx) -> None:
        """After a reset: the schedule rescaled to ``ctx.size`` (its state kept), shard and monitor dropped."""
        job, self.ctx = self.job, ctx
        kept = job.schedule.state_dict()
        job.schedule = Schedule(self.cfg, ctx.size)
        job.schedule.load_state_dict(kept)
        if self.monitor is not None:
            self.monitor.close()
        self.batches = self.monitor = None

    def learning_rate(self, step: int) -> float:
        """The schedule's rate at ``step``, set on the optimizer (a new stage's optimizer first: staged)."""
        job = self.job
        if step > 0 and job.schedule.optimizer_name(step) != job.schedule.optimizer_name(step - 1):
            job.optimizer, job.train_step = setup.new_optimizer(
                job.model, job.schedule, self.cfg, step, job.loaded
            )
        lr = job.schedule.lr(step)
        job.optimizer.learning_rate.assign(lr)
        return lr

    def _describe(self, step: int) -> None:
        job, ctx, cfg = self.job, self.ctx, self.cfg
        distributed.get_logger(setup.LOGGER).info(
            "training %s (%s parameters) on %d clips x %d ranks, batch %d/rank, steps %d -> %d; run dir %s",
            job.exp.model.name,
            f"{job.model.count_params():,}",
            len(job.train_clips),
            ctx.size,
            cfg.batch_size,
            step,
            cfg.steps,
            job.run.path,
        )

    def validate(self, state) -> None:
        """Score the validation split (sharded over ranks); rank 0 keeps the best weights; a plateau lowers
        the learning rate and restarts every rank from them. Collective."""
        job = self.job
        sync_statistics(job.model)  # Horovod: BN moving statistics averaged over ranks
        result, _ = score_split(  # Horovod: predictions allgathered, the result broadcast
            job.model,
            job.valid_clips,
            job.catalog.tags,
            job.model.spec,
            windows=self.windows,
            batch_size=job.exp.eval.batch_size,
            manifest=job.manifest,
            ctx=self.ctx,
            predict_fn=self.predict,
        )
        improved = bool(np.isfinite(result["roc_auc"]) and result["roc_auc"] > state.best_roc_auc)
        if improved:
            state.best_roc_auc, state.best_step = result["roc_auc"], state.step
            if self.ctx.is_root:
                save_weights(job.model, job.run.best_weights)
        self.monitor.valid(state.step, result, improved)
        if job.schedule.on_validation(improved) and state.best_step > 0:  # plateau: lower lr, restart
            restart_from(job.run.best_weights, job.model, self.ctx)  # Horovod: broadcast of rank 0's
            job.optimizer, job.train_step = setup.new_optimizer(
                job.model, job.schedule, self.cfg, state.step, job.loaded
            )

    def save_checkpoint(self, state) -> None:
        """Rank 0 writes a checkpoint of the (rank-averaged) model, the optimizer and the loop state."""
        job = self.job
        sync_statistics(job.model)  # Horovod: BN moving statistics averaged over ranks
        if not self.ctx.is_root:
            return
        loop_state = {
            "step": state.step,
            "epoch": state.step // self.steps_per_epoch,
            "schedule": job.schedule.state_dict(),
            "best_roc_auc": state.best_roc_auc,
            "best_step": state.best_step,
            "seed": self.cfg.seed,
            "world_size": self.ctx.size,
            "batch_size": self.cfg.batch_size,
        }
        checkpoint.save(
            job.run.checkpoint_dir, job.model, job.optimizer, loop_state, keep=self.cfg.keep_checkpoints
        )

    def finish(self, state) -> None:
        """BN statistics averaged; every rank hashes its weights and every rank checks them equal (allgather:
        a mismatch is an error everywhere); rank 0 saves the last weights and records the digest."""
        job = self.job
        sync_statistics(job.model)  # Horovod: BN moving statistics averaged over ranks
        digest = weights_digest(job.model)
        mine = np.frombuffer(bytes.fromhex(digest), np.uint8)[None]
        digests = distributed.allgather(mine)  # Horovod: every rank's digest on every rank
        differ = [rank for rank, d in enumerate(digests) if not np.array_equal(d, digests[0])]
        if differ:
            raise RuntimeError(
                f"final weights differ between ranks: ranks {differ} do not have rank 0's "
                f"(sha256 {digests[0].tobytes().hex()[:12]})"
            )
        if self.ctx.is_root:
            save_weights(job.model, job.run.last_weights)
        best = {"best_roc_auc": state.best_roc_auc, "best_step": state.best_step}
        self.monitor.done(state.step, best, digest, self.ctx.size)
        self.monitor.close()


def weights_digest(model) -> str:
    """sha256 (hex) of the model's weights, trainable and not (BN statistics; not integer RNG states such as
    dropout's seed generator, which a weights file does not restore): dtype, shape and bytes of each, in
    model order. Equal digests: equal weights, whichever process or run computed them."""
    import hashlib

    h = hashlib.sha256()
    for v in model.variables:
        if "float" not in str(v.dtype):
            continue
        value = np.ascontiguousarray(v.numpy())
        h.update(f"{value.dtype.str}|{value.shape}\n".encode())
        h.update(value.tobytes())
    return h.hexdigest()
