"""The rank-0 training monitor: TensorBoard scalars, metrics.jsonl and progress lines."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from hvd_magtag import distributed, fsutil
from hvd_magtag.train.setup import LOGGER

#: The log line of a finished run (rank 0), after every rank's final weights were hashed and compared.
DONE_LINE = "final weights identical on {ranks} ranks (sha256 {digest})"


class Monitor:
    """Rank-0 TensorBoard scalars, metrics.jsonl and progress (tqdm on a terminal, log lines otherwise).
    ``train`` is collective (the logged loss is averaged over ranks)."""

    def __init__(self, run, ctx, cfg, start_step: int, steps_per_epoch: int):
        import tensorflow as tf

        self.run, self.ctx, self.cfg, self.steps_per_epoch = run, ctx, cfg, steps_per_epoch
        self.log = logging.getLogger(LOGGER)
        self.t0 = self.t_last = time.perf_counter()
        self.step_last, self.losses = start_step, []
        self.writer = tf.summary.create_file_writer(str(run.tensorboard_dir)) if ctx.is_root else None
        self.bar = None
        if ctx.is_root and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=cfg.steps, initial=start_step, unit="step", dynamic_ncols=True)
        if ctx.is_root:  # drop records past the checkpoint we resume from (redone) and the last run's "done"
            kept = [m for m in run.read_metrics() if m.get("step", 0) <= start_step and m["event"] != "done"]
            fsutil.atomic_write(run.metrics_path, "".join(json.dumps(m) + "\n" for m in kept))
            from hvd_magtag.summaries import trim_events

            trim_events(run.tensorboard_dir, start_step)  # and TensorBoard's points past it

    def _record(self, event: dict[str, Any], scalars: dict[str, float]) -> None:
        import tensorflow as tf

        from hvd_magtag.metrics import json_safe

        event["elapsed"] = round(time.perf_counter() - self.t0, 3)
        with open(self.run.metrics_path, "a") as f:
            f.write(json.dumps(json_safe(event)) + "\n")
        with self.writer.as_default(step=event["step"]):
            for name, value in scalars.items():
                if value == value:  # NaN (no tag scorable) is left out of TensorBoard
                    tf.summary.scalar(name, value)
        self.writer.flush()

    def train(self, step: int, loss, lr: float) -> None:
        self.losses.append(loss)
        if step % self.cfg.log_every and step != self.cfg.steps:
            return
        import numpy as np

        mean_loss = float(distributed.allreduce(np.float32(np.mean([float(v) for v in self.losses]))))
        self.losses = []
        if not self.ctx.is_root:
            return
        now = time.perf_counter()
        rate = (step - self.step_last) * self.cfg.batch_size * self.ctx.size / max(now - self.t_last, 1e-9)
        eta = (self.cfg.steps - step) * (now - self.t_last) / max(step - self.step_last, 1)
        self.t_last, self.step_last = now, step
        epoch = step / self.steps_per_epoch
        self._record(
            {
                "event": "train",
                "step": step,
                "epoch": round(epoch, 3),
                "loss": mean_loss,
                "lr": lr,
                "samples_per_sec": round(rate, 2),
            },
            {"train/loss": mean_loss, "train/lr": lr, "train/samples_per_sec": rate},
        )
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2g}", samples_s=f"{rate:.0f}")
        else:
            self.log.info(
                "step %d/%d  epoch %.2f  loss %.4f  lr %.3g  %.1f samples/s  ETA %s",
                step,
                self.cfg.steps,
                epoch,
                mean_loss,
                lr,
                rate,
                time.strftime("%H:%M:%S", time.gmtime(eta)),
            )

    def valid(self, step: int, result: dict[str, Any], improved: bool) -> None:
        if not self.ctx.is_root:
            return
        self._record(
            {
                "event": "valid",
                "step": step,
                "roc_auc": result["roc_auc"],
                "pr_auc": result["pr_auc"],
                "loss": result["loss"],
                "best": improved,
                "skipped": sorted(result["skipped"]),
            },
            {
                "valid/roc_auc": result["roc_auc"],
                "valid/pr_auc": result["pr_auc"],
                "valid/loss": result["loss"],
            },
        )
        names = list(result["skipped"])
        more = " ..." if len(names) > 5 else ""
        skipped = f"  ({len(names)} tags without an AUC: {', '.join(names[:5])}{more})" if names else ""
        msg = (
            f"valid @ {step}: ROC-AUC {result['roc_auc']:.4f}  PR-AUC {result['pr_auc']:.4f}  "
            f"loss {result['loss']:.4f}{'  *best*' if improved else ''}{skipped}"
        )
        (self.bar.write if self.bar is not None else self.log.info)(msg)

    def done(self, step: int, best: dict[str, Any], digest: str, ranks: int) -> None:
        """Rank 0: the run's last record, ``{"event": "done", "step", "world_size", "best_roc_auc",
        "best_step", "weights_sha256", "elapsed"}`` (:data:`DONE_LINE` in the log: the weights' digest that
        every rank's weights were checked to share)."""
        if not self.ctx.is_root:
            return
        from hvd_magtag.metrics import json_safe

        event = {"event": "done", "step": step, "world_size": ranks, **best, "weights_sha256": digest}
        event["elapsed"] = round(time.perf_counter() - self.t0, 3)
        with open(self.run.metrics_path, "a") as f:
            f.write(json.dumps(json_safe(event)) + "\n")
        say = self.bar.write if self.bar is not None else self.log.info
        say(DONE_LINE.format(ranks=ranks, digest=digest[:12]))
        say(
            f"done: {step} steps, best validation ROC-AUC {best['best_roc_auc']:.4f} at step "
            f"{best['best_step']}; run dir {self.run.path}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
