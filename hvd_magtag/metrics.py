"""Tagging metrics: window -> clip aggregation, per-tag and macro ROC-AUC / PR-AUC (scikit-learn).

The evaluation protocol behind published MTAT numbers: every clip is cut into windows, window predictions
are averaged per clip, and the macro average over tags of ROC-AUC and PR-AUC (average precision) is
reported. A tag without a positive (or without a negative) clip in the split has no AUC: it is skipped and
named in the result, never a crash.

Pure numpy + scikit-learn: no TensorFlow, safe to import anywhere.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from hvd_magtag import fsutil


def aggregate_windows(preds: np.ndarray, clip_index: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean of window predictions per clip.

    preds:      [n_windows_total, n_tags] scores (probabilities) of every window.
    clip_index: [n_windows_total] int, which clip (0 .. n_clips-1) each window belongs to; any order.
    Returns [n_clips, n_tags] float32. Raises ValueError if an index is out of range or a clip has no
    window (a sharding bug upstream: every clip must be scored).
    """
    preds = np.asarray(preds, dtype=np.float64)
    clip_index = np.asarray(clip_index).astype(np.int64).reshape(-1)
    if preds.ndim != 2 or preds.shape[0] != clip_index.shape[0]:
        raise ValueError(
            f"aggregate_windows: preds {preds.shape} and clip_index {clip_index.shape} must be "
            "[n_windows, n_tags] and [n_windows]"
        )
    if clip_index.size and (clip_index.min() < 0 or clip_index.max() >= n_clips):
        raise ValueError(f"aggregate_windows: clip_index outside 0..{n_clips - 1}")
    sums = np.zeros((n_clips, preds.shape[1]), np.float64)
    np.add.at(sums, clip_index, preds)
    counts = np.bincount(clip_index, minlength=n_clips)
    missing = np.flatnonzero(counts == 0)
    if missing.size:
        raise ValueError(
            f"aggregate_windows: {missing.size} of {n_clips} clips have no window (first: index {missing[0]})"
        )
    return (sums / counts[:, None]).astype(np.float32)


def tag_aucs(y_true: np.ndarray, y_score: np.ndarray, tags: list[str]) -> dict[str, Any]:
    """Per-tag and macro ROC-AUC and PR-AUC (average precision).

    y_true:  [n_clips, n_tags] multi-hot (0/1).
    y_score: [n_clips, n_tags] scores (any monotone score; probabilities in practice).
    tags:    the n_tags names, in column order.

    Returns ``{"roc_auc": macro, "pr_auc": macro, "n_clips": int, "n_tags_scored": int,
    "per_tag": {tag: {"roc_auc", "pr_auc", "positives"}}, "skipped": {tag: reason}}``. Macros average
    the scored tags only (NaN when none can be scored). Values are plain Python floats (JSON-ready).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 2:
        raise ValueError(
            f"tag_aucs: y_true {y_true.shape} and y_score {y_score.shape} must both be [n_clips, n_tags]"
        )
    if y_true.shape[1] != len(tags):
        raise ValueError(f"tag_aucs: {y_true.shape[1]} label columns but {len(tags)} tag names")
    if not np.all(np.isfinite(y_score)):
        raise ValueError("tag_aucs: y_score holds NaN or inf (did training diverge?)")
    y_true = (y_true > 0.5).astype(np.int32)

    per_tag: dict[str, dict[str, float | int]] = {}
    skipped: dict[str, str] = {}
    for j, tag in enumerate(tags):
        positives = int(y_true[:, j].sum())
        if positives == 0:
            skipped[tag] = "no positive clip"
            continue
        if positives == y_true.shape[0]:
            skipped[tag] = "no negative clip"
            continue
        per_tag[tag] = {
            "roc_auc": float(roc_auc_score(y_true[:, j], y_score[:, j])),
            "pr_auc": float(average_precision_score(y_true[:, j], y_score[:, j])),
            "positives": positives,
        }

    def macro(key: str) -> float:
        vals = [v[key] for v in per_tag.values()]
        return float(np.mean(vals)) if vals else math.nan

    return {
        "roc_auc": macro("roc_auc"),
        "pr_auc": macro("pr_auc"),
        "n_clips": int(y_true.shape[0]),
        "n_tags_scored": len(per_tag),
        "per_tag": per_tag,
        "skipped": skipped,
    }


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (a NaN macro when no tag could be scored) replaced by None, so
    it serialises as strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def per_tag_csv(result: dict[str, Any], path: str | Path | None = None) -> str:
    """``tag,positives,roc_auc,pr_auc`` rows (skipped tags with empty AUCs and the reason); writes ``path``
    atomically when given and returns the CSV text."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["tag", "positives", "roc_auc", "pr_auc", "note"])
    for tag, v in result["per_tag"].items():
        writer.writerow([tag, v["positives"], f"{v['roc_auc']:.6f}", f"{v['pr_auc']:.6f}", ""])
    for tag, reason in result["skipped"].items():
        writer.writerow([tag, "", "", "", f"skipped: {reason}"])
    text = buf.getvalue()
    if path is not None:
        fsutil.atomic_write(path, text)
    return text


def format_number(value: float | None) -> str:
    """4 decimals, or "n/a" for a macro that could not be computed (NaN, or None after :func:`json_safe`)."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def format_table(result: dict[str, Any], title: str = "") -> str:
    """A fixed-width per-tag table (sorted by ROC-AUC, best first) ending with the macro averages."""
    rows = sorted(result["per_tag"].items(), key=lambda kv: -kv[1]["roc_auc"])
    width = max([len("tag")] + [len(t) for t in result["per_tag"]] + [len(t) for t in result["skipped"]])
    lines = [title] if title else []
    lines.append(f"{'tag':<{width}}  {'pos':>5}  {'ROC-AUC':>7}  {'PR-AUC':>7}")
    lines.append("-" * (width + 25))
    for tag, v in rows:
        lines.append(f"{tag:<{width}}  {v['positives']:>5d}  {v['roc_auc']:>7.4f}  {v['pr_auc']:>7.4f}")
    lines.append("-" * (width + 25))
    lines.append(
        f"{'macro':<{width}}  {'':>5}  {format_number(result['roc_auc']):>7}  {format_number(result['pr_auc']):>7}"
        f"   ({result['n_tags_scored']} tags, {result['n_clips']} clips)"
    )
    if result["skipped"]:
        names = ", ".join(f"{t} ({r})" for t, r in result["skipped"].items())
        lines.append(f"skipped {len(result['skipped'])} tag(s) without an AUC: {names}")
    return "\n".join(lines)
