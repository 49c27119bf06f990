"""Evaluate a run on a split: clip-level predictions (window predictions averaged per clip), per-tag and
macro ROC-AUC / PR-AUC, written into the run directory.

    python -m hvd_magtag.evaluate RUN_DIR [--split test] [--windows 10|all] [--weights best|last]
    horovodrun -np 2 python -m hvd_magtag.evaluate RUN_DIR         # each rank scores its shard

Writes (rank 0) ``RUN_DIR/per_tag_<split>.csv``, ``RUN_DIR/predictions_<split>.npz`` (clip scores, labels, ids)
and ``RUN_DIR/results.json``, which maps a split name to
``{"roc_auc", "pr_auc", "n_clips", "n_tags_scored", "per_tag": {tag: {roc_auc, pr_auc, positives}},
"skipped": {tag: reason}, "windows", "weights", "seconds", "world_size"}`` (other splits are kept), and
prints the per-tag table. Every rank runs the same collectives: predictions are allgathered, rank 0 scores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from hvd_magtag import cli, distributed, fsutil, metrics
from hvd_magtag.config import parse_windows
from hvd_magtag.errors import ConfigError
from hvd_magtag.pretrained import resolve_model
from hvd_magtag.rundir import RunDir


def predict_clips(
    model, clips, spec, *, windows, batch_size, manifest, ctx, predict_fn=None
) -> np.ndarray | None:
    """Clip-level scores [len(clips), n_tags] on rank 0 (None on other ranks).

    Each rank scores its shard of ``clips`` (``pipeline.eval_dataset``: window rows with their clip index),
    the window scores and indices are allgathered and rank 0 averages them per clip. Collective: every rank
    must call it with the same clips. ``predict_fn(x) -> probabilities`` defaults to a compiled
    ``model(x, training=False)``.
    """
    import tensorflow as tf

    from hvd_magtag.data import pipeline

    if predict_fn is None:
        predict_fn = tf.function(lambda x: model(x, training=False))
    n_tags = int(model.output_shape[-1])
    ds = pipeline.eval_dataset(
        clips, spec, windows=windows, batch_size=batch_size, manifest=manifest, rank=ctx.rank, size=ctx.size
    )
    scores, index = [np.zeros((0, n_tags), np.float32)], [np.zeros((0,), np.int32)]
    for x, _, clip_index in ds:
        scores.append(np.asarray(predict_fn(x), np.float32))
        index.append(clip_index.numpy().astype(np.int32))
    all_scores = distributed.allgather(np.concatenate(scores))
    all_index = distributed.allgather(np.concatenate(index))
    if not ctx.is_root:
        return None
    return metrics.aggregate_windows(all_scores, all_index, len(clips))


def score_split(model, clips, tags, spec, *, windows, batch_size, manifest, ctx, predict_fn=None):
    """``(metrics.tag_aucs result + "loss" (clip-level binary cross-entropy), clip scores)`` on rank 0,
    broadcast to every rank (scores stay None off rank 0). Collective."""

    scores = predict_clips(
        model,
        clips,
        spec,
        windows=windows,
        batch_size=batch_size,
        manifest=manifest,
        ctx=ctx,
        predict_fn=predict_fn,
    )
    result = None
    if ctx.is_root:
        labels = np.stack([c.labels for c in clips]).astype(np.float32)
        result = metrics.tag_aucs(labels, scores, tags)
        p = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
        result["loss"] = float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))
    return distributed.broadcast_object(result), scores


def save_predictions(path: Path, clips, scores: np.ndarray, tags: list[str]) -> None:
    """Clip-level ``scores`` [n_clips, n_tags] with ``labels``, ``clip_ids``, ``paths`` and ``tags`` (npz,
    written atomically): what ROC/PR curves and confusion analyses (notebooks/report.ipynb) are drawn from."""
    with fsutil.atomic_path(path) as tmp:
        np.savez_compressed(
            tmp,
            scores=np.asarray(scores, np.float32),
            labels=np.stack([c.labels for c in clips]).astype(np.float32),
            clip_ids=np.array([c.clip_id for c in clips]),
            paths=np.array([c.path for c in clips]),
            tags=np.array(tags),
        )


def load_split(run, data_cfg, split: str):
    """(clips of ``split``, manifest) for a run's dataset, checking the vocabulary matches the run's.
    Rank 0 validates the files (the manifest is cached beside the data), every rank receives the result.
    Collective."""
    from hvd_magtag.data import load_catalog
    from hvd_magtag.data.manifest import validate

    catalog, manifest = distributed.from_root(lambda: validate(load_catalog(data_cfg)))
    if list(catalog.tags) != run.tags:
        raise ConfigError(
            f"{data_cfg.root or data_cfg.dataset}: its tag vocabulary ({catalog.n_tags} tags) differs from the "
            f"run's ({len(run.tags)} tags in {run.run_info_path}); evaluate on the dataset the run was trained on"
        )
    clips = catalog.split(split)
    if not clips:
        known = ", ".join(sorted(catalog.split_counts()))
        raise ConfigError(f"--split {split!r}: no clips in that split of {catalog.root} (splits: {known})")
    return clips, manifest


def evaluate(run_dir, *, split="test", windows=None, weights="best", batch_size=None, data_root=None):
    """Evaluate ``run_dir`` (collective under horovodrun); returns the result dict on every rank."""
    from hvd_magtag.models.weights import load_weights

    run = RunDir(resolve_model(run_dir))  # a run directory or a pretrained name (MTT_musicnn)
    model_name = run.info["model"]  # "not a run directory" before anything else
    exp = run.config
    if data_root:
        exp.data.root = str(data_root)
    if windows is not None:
        windows = parse_windows(windows, "--windows")
    else:
        windows = parse_windows(exp.eval.windows, f"eval.windows (in {run.config_path})")
    ctx = distributed.init()  # after the option checks, before any TensorFlow op
    log = distributed.get_logger("hvd_magtag.evaluate")
    batch_size = batch_size or exp.eval.batch_size
    clips, manifest = load_split(run, exp.data, split)

    model = run.build_model()
    # one reader of the weights, then broadcast; a missing file stops every rank
    distributed.from_root(lambda: load_weights(model, run.weights_path(weights)))
    distributed.broadcast_variables(model.variables)

    started = time.perf_counter()
    result, scores = score_split(
        model, clips, run.tags, run.spec, windows=windows, batch_size=batch_size, manifest=manifest, ctx=ctx
    )
    seconds = time.perf_counter() - started
    result.update(windows=windows, weights=str(weights), seconds=round(seconds, 2), world_size=ctx.size)
    if ctx.is_root:
        metrics.per_tag_csv(result, run.path / f"per_tag_{split}.csv")
        save_predictions(run.path / f"predictions_{split}.npz", clips, scores, run.tags)
        all_results: dict[str, Any] = run.results if run.results_path.is_file() else {}
        all_results[split] = result
        fsutil.atomic_write_json(run.results_path, metrics.json_safe(all_results))
        title = (
            f"{model_name} on {split} ({result['n_clips']} clips, {windows} windows/clip, {weights} weights)"
        )
        print(metrics.format_table(result, title=title), flush=True)  # the product of this command (rank 0)
        log.info("results: %s and %s", run.results_path, run.path / f"per_tag_{split}.csv")
    return result


def build_parser() -> argparse.ArgumentParser:
    p = cli.OneLineParser(
        prog="python -m hvd_magtag.evaluate",
        description="Score a trained run on a split: per-tag and macro ROC-AUC / PR-AUC over clips "
        "(window predictions averaged per clip). Run under horovodrun to shard the work.",
        epilog=cli.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        debug_flag=True,
    )
    p.add_argument("run_dir", help="run directory written by hvd_magtag.train")
    p.add_argument("--split", default="test", help="train | valid | test (default: test)")
    p.add_argument(
        "--windows", default=None, help="windows per clip: N evenly spaced, or 'all' (default: eval.windows)"
    )
    p.add_argument("--weights", default="best", help="best | last | path to a .weights.h5 (default: best)")
    p.add_argument(
        "--batch-size", type=int, default=None, help="windows per batch per rank (default: eval.batch_size)"
    )
    p.add_argument("--data-root", default=None, help="dataset folder, if it moved since training")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_cli(
        lambda: evaluate(
            args.run_dir,
            split=args.split,
            windows=args.windows,
            weights=args.weights,
            batch_size=args.batch_size,
            data_root=args.data_root,
        ),
        debug=args.debug,
    )


if __name__ == "__main__":
    sys.exit(main())
