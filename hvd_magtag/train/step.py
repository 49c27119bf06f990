"""The compiled training step (gradients averaged over ranks by Horovod's allreduce) and what keeps the
ranks' models equal outside it: BatchNorm statistics, plateau restarts, the weights rank 0 saves."""

from __future__ import annotations

import logging
from pathlib import Path

from hvd_magtag import distributed, finetune, fsutil

#: the training package's logger (setup.LOGGER is the same name): step imports nothing from setup
LOGGER = __package__


def make_train_step(model, optimizer, cfg):
    """A compiled step ``(x [B, ...], y [B, n_tags]) -> local mean binary cross-entropy``: gradients
    averaged across ranks (optionally fp16 on the wire), clipped by global norm, applied."""
    import keras
    import tensorflow as tf

    bce = keras.losses.BinaryCrossentropy()
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    compression = "fp16" if cfg.fp16_allreduce else "none"

    @tf.function(jit_compile=cfg.jit_compile)
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = bce(y, tf.cast(model(x, training=True), tf.float32))
            target = optimizer.scale_loss(loss) if scaled else loss
        averaged = distributed.DistributedGradientTape(tape, compression=compression)
        grads = averaged.gradient(target, model.trainable_variables)
        if cfg.clip_norm > 0:
            grads, _ = tf.clip_by_global_norm(grads, cfg.clip_norm)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return train_step


def sync_statistics(model) -> None:
    """Average BatchNorm moving statistics over ranks (each rank updates them from its own batches) so that
    validation, checkpoints and saved weights see one model. Collective; no-op at size 1."""
    fixed = {id(v) for v in finetune.frozen_variables(model)}  # frozen layers: equal everywhere, left alone
    statistics = [v for v in model.non_trainable_variables if "float" in str(v.dtype) and id(v) not in fixed]
    distributed.average_variables(statistics)


def restart_from(weights: Path, model, ctx) -> None:
    """Load ``weights`` on rank 0 and broadcast them (plateau restarts). Collective."""
    if ctx.is_root:
        from hvd_magtag.models.weights import load_weights

        load_weights(model, weights)
        logging.getLogger(LOGGER).info("plateau: learning rate lowered, restarting from %s", weights)
    distributed.broadcast_variables(model.variables)


def save_weights(model, path: Path) -> None:
    """``model.save_weights`` atomically (hvd_magtag.fsutil)."""
    with fsutil.atomic_path(path) as tmp:
        model.save_weights(str(tmp))
