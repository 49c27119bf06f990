"""hvd_magtag.metrics against scikit-learn and by hand."""

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from hvd_magtag import metrics


def _random_labels(rng, n_clips, n_tags):
    y = (rng.random((n_clips, n_tags)) < 0.3).astype(np.float32)
    y[0] = 1  # every tag has a positive ...
    y[1] = 0  # ... and a negative
    return y


def test_tag_aucs_equal_sklearn():
    rng = np.random.default_rng(3)
    y = _random_labels(rng, 40, 5)
    score = rng.random((40, 5)) + 0.5 * y  # informative but imperfect
    tags = [f"t{i}" for i in range(5)]
    res = metrics.tag_aucs(y, score, tags)
    for j, tag in enumerate(tags):
        assert res["per_tag"][tag]["roc_auc"] == pytest.approx(roc_auc_score(y[:, j], score[:, j]), abs=1e-12)
        assert res["per_tag"][tag]["pr_auc"] == pytest.approx(
            average_precision_score(y[:, j], score[:, j]), abs=1e-12
        )
        assert res["per_tag"][tag]["positives"] == int(y[:, j].sum())
    assert res["roc_auc"] == pytest.approx(roc_auc_score(y, score, average="macro"), abs=1e-12)
    assert res["pr_auc"] == pytest.approx(average_precision_score(y, score, average="macro"), abs=1e-12)
    assert res["skipped"] == {} and res["n_tags_scored"] == 5 and res["n_clips"] == 40


def test_tag_without_positives_is_skipped_and_named():
    rng = np.random.default_rng(0)
    y = _random_labels(rng, 30, 4)
    y[:, 2] = 0  # no positive
    y[:, 3] = 1  # no negative
    score = rng.random((30, 4))
    res = metrics.tag_aucs(y, score, ["a", "b", "empty", "full"])
    assert set(res["per_tag"]) == {"a", "b"}
    assert res["skipped"] == {"empty": "no positive clip", "full": "no negative clip"}
    expected = np.mean([roc_auc_score(y[:, j], score[:, j]) for j in (0, 1)])
    assert res["roc_auc"] == pytest.approx(expected)
    table = metrics.format_table(res)
    assert "empty (no positive clip)" in table and "macro" in table
    csv_text = metrics.per_tag_csv(res)
    assert "empty,,,,skipped: no positive clip" in csv_text


def test_no_scorable_tag_gives_nan_macro():
    res = metrics.tag_aucs(np.zeros((3, 2)), np.zeros((3, 2)), ["a", "b"])
    assert math.isnan(res["roc_auc"]) and res["n_tags_scored"] == 0
    assert "n/a" in metrics.format_table(res)
    safe = metrics.json_safe(res)
    assert safe["roc_auc"] is None and "n/a" in metrics.format_table(safe)  # as read back from results.json


def test_tag_aucs_rejects_bad_input():
    with pytest.raises(ValueError, match="tag names"):
        metrics.tag_aucs(np.zeros((3, 2)), np.zeros((3, 2)), ["a"])
    with pytest.raises(ValueError, match="NaN"):
        metrics.tag_aucs(np.eye(2), np.array([[np.nan, 0], [0, 1]]), ["a", "b"])


def test_aggregate_windows_means_per_clip_in_any_order():
    preds = np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.4], [0.4, 0.0]], np.float32)
    clip_index = np.array([2, 0, 2, 1, 0])
    out = metrics.aggregate_windows(preds, clip_index, 3)
    np.testing.assert_allclose(out, [[0.7, 0.0], [0.2, 0.4], [0.25, 0.75]], rtol=1e-6)
    assert out.dtype == np.float32


def test_aggregate_windows_refuses_missing_clip_and_bad_index():
    with pytest.raises(ValueError, match="no window"):
        metrics.aggregate_windows(np.ones((2, 1)), np.array([0, 2]), 3)
    with pytest.raises(ValueError, match="outside"):
        metrics.aggregate_windows(np.ones((2, 1)), np.array([0, 3]), 3)
