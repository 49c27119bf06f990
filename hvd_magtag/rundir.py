"""A run directory is the unit of record: everything to resume, evaluate, tag, analyse or compare a run.

Layout (written by rank 0 only)::

    RUN_DIR/
      config.json          the resolved Experiment (hvd_magtag.config)
      run.json             model name, overrides, ModelSpec, tag vocabulary, dataset, world size, versions
      metrics.jsonl        one JSON object per logged event (train / valid)
      checkpoints/         training state (model + optimizer + step + data position), last N kept
      best/model.weights.h5  weights of the best validation ROC-AUC
      last/model.weights.h5  weights at the end of training
      tensorboard/         TensorBoard event files
      export/              SavedModel for tagging (hvd_magtag.tag)
      results.json         evaluation results (hvd_magtag.evaluate)
      per_tag_<split>.csv  per-tag ROC-AUC / PR-AUC
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hvd_magtag import fsutil
from hvd_magtag.config import Experiment
from hvd_magtag.errors import RunDirError
from hvd_magtag.models.registry import ModelSpec, create_model


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()

    # -- paths ---------------------------------------------------------------------------------------
    config_path = property(lambda self: self.path / "config.json")
    run_info_path = property(lambda self: self.path / "run.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    checkpoint_dir = property(lambda self: self.path / "checkpoints")
    best_weights = property(lambda self: self.path / "best" / "model.weights.h5")
    last_weights = property(lambda self: self.path / "last" / "model.weights.h5")
    tensorboard_dir = property(lambda self: self.path / "tensorboard")
    export_dir = property(lambda self: self.path / "export")
    results_path = property(lambda self: self.path / "results.json")

    def exists(self) -> bool:
        return self.run_info_path.is_file()

    # -- metadata ------------------------------------------------------------------------------------
    def write_run_info(self, info: dict[str, Any]) -> None:
        fsutil.atomic_write_json(self.run_info_path, info)

    @property
    def info(self) -> dict[str, Any]:
        if not self.run_info_path.is_file():
            raise RunDirError(
                f"{self.path}: not a run directory (no run.json); train one with hvd_magtag.train"
            )
        return json.loads(self.run_info_path.read_text())

    @property
    def config(self):

        return Experiment.load(self.config_path)

    @property
    def tags(self) -> list[str]:
        return list(self.info["tags"])

    @property
    def spec(self):

        return ModelSpec.from_dict(self.info["spec"])

    def build_model(self):
        """The run's architecture, freshly initialised (no weights loaded)."""

        info = self.info
        return create_model(info["model"], n_tags=len(info["tags"]), **info.get("overrides", {}))

    def weights_path(self, which: str = "best") -> Path:
        """``best`` (falls back to ``last``), ``last``, or an explicit .weights.h5 path."""
        if which not in ("best", "last"):
            return Path(which)
        order = [self.best_weights, self.last_weights] if which == "best" else [self.last_weights]
        for p in order:
            if p.is_file():
                return p
        raise RunDirError(f"{self.path}: no {which} weights ({order[0]} missing); has training finished?")

    def load_model(self, which: str = "best"):
        """The run's model with ``which`` weights loaded (see :meth:`weights_path`)."""
        from hvd_magtag.models.weights import load_weights

        model = self.build_model()
        load_weights(model, self.weights_path(which))
        return model

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.is_file():
            return []
        return [json.loads(line) for line in self.metrics_path.read_text().splitlines() if line.strip()]

    @property
    def results(self) -> dict[str, Any]:
        if not self.results_path.is_file():
            raise RunDirError(f"{self.path}: no results.json; run python -m hvd_magtag.evaluate {self.path}")
        return json.loads(self.results_path.read_text())
