"""Real ``horovodrun -np 2`` training and evaluation against one process on the same global batches."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from multirank.runner import check_ok, run_horovod, wall_clock
from train_fixtures import REFERENCE_STEPS, TINY_SETTINGS, run, tiny_dataset, two_rank_args, weights

from hvd_magtag.rundir import RunDir

SCRIPT = Path(__file__).resolve().parent / "train_cli_script.py"
#: weights of the 2-rank and the 1-rank run agree to this (float32 sums in another order, 6 SGD steps)
WEIGHT_ATOL = 1e-5

pytestmark = [pytest.mark.multirank, pytest.mark.slow, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.getbasetemp())


def _train_args(data, run_dir, *extra, model=True):
    args = ["train", "--data-root", str(data), "--run-dir", str(run_dir)]
    for s in TINY_SETTINGS:
        if model or not s.startswith("model."):
            args += ["--set", s]
    return args + list(extra)


def test_two_ranks_equal_one_rank_on_the_same_global_batches(data, tmp_path, horovodrun):
    common = [
        "--steps",
        "6",
        "--set",
        "model.name=test_plain_conv",
        "--set",
        "train.scale_lr=false",
        "--set",
        "train.validate_every=3",
        "--set",
        "train.checkpoint_every=3",
    ]
    one = run(
        [
            sys.executable,
            str(SCRIPT),
            *_train_args(data, tmp_path / "one", *common, "--set", "train.batch_size=8", model=False),
        ]
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two, seconds = wall_clock(
        run_horovod,
        SCRIPT,
        np=2,
        timeout=400,
        args=_train_args(data, tmp_path / "two", *common, "--set", "train.batch_size=4", model=False),
    )
    check_ok(two)
    print(f"2-rank tiny training: {seconds:.1f} s wall")
    run1, run2 = RunDir(tmp_path / "one"), RunDir(tmp_path / "two")
    assert run2.info["world_size"] == 2 and run1.info["world_size"] == 1
    w1, w2 = weights(run1.last_weights), weights(run2.last_weights)
    assert len(w1) == len(w2) == 6
    for a, b in zip(w1, w2, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=WEIGHT_ATOL)
    # training moved the weights between the checkpoints (not a comparison of two untouched models)
    with (
        np.load(run1.checkpoint_dir / "step-00000003" / "model.npz") as a,
        np.load(run1.checkpoint_dir / "step-00000006" / "model.npz") as b,
    ):
        assert any(np.abs(a[k] - b[k]).max() > 10 * WEIGHT_ATOL for k in a.files)
    # logged losses (mean of per-rank means) and sharded + allgathered validation agree too
    m1, m2 = run1.read_metrics(), run2.read_metrics()
    assert [e["step"] for e in m1] == [e["step"] for e in m2]
    assert m1[-1]["event"] == m2[-1]["event"] == "done" and m2[-1]["world_size"] == 2
    for e1, e2 in zip(m1[:-1], m2[:-1]):
        assert e2["loss"] == pytest.approx(e1["loss"], abs=1e-5)
        if e1["event"] == "valid" and e1["roc_auc"] is not None:
            assert e2["roc_auc"] == pytest.approx(e1["roc_auc"], abs=1e-5)
    # only rank 0 wrote: one events file, logs from rank 0 only
    assert len(list(run2.tensorboard_dir.glob("events.out.tfevents.*"))) == 1
    assert "[rank 1/2] INFO" not in two.stderr + two.stdout


def test_two_rank_run_resumes_and_evaluates(data, tmp_path, horovodrun, two_rank_reference):
    """A finished BN model run on 2 ranks (conftest's reference, copied), extended by 2 steps (resume), then
    evaluated on 2 ranks = 1 process."""
    run_dir = tmp_path / "bn"
    shutil.copytree(two_rank_reference, run_dir)
    extended = REFERENCE_STEPS + 2
    more = run_horovod(
        SCRIPT,
        np=2,
        timeout=400,
        args=two_rank_args(data, run_dir, "--steps", extended, "--set", "train.checkpoint_every=2"),
    )
    check_ok(more)
    assert f"resuming {run_dir} from step {REFERENCE_STEPS}" in more.stderr + more.stdout
    state = json.loads((RunDir(run_dir).checkpoint_dir / f"step-{extended:08d}" / "state.json").read_text())
    assert state["step"] == extended and state["world_size"] == 2
    ev2 = run_horovod(SCRIPT, np=2, timeout=400, args=["evaluate", str(run_dir), "--weights", "last"])
    check_ok(ev2)
    two = RunDir(run_dir).results["test"]
    ev1 = run([sys.executable, str(SCRIPT), "evaluate", str(run_dir), "--weights", "last"])
    assert ev1.returncode == 0, ev1.stderr[-3000:]
    one = RunDir(run_dir).results["test"]
    assert two["world_size"] == 2 and one["world_size"] == 1 and one["n_clips"] == two["n_clips"]
    assert set(one["per_tag"]) == set(two["per_tag"])
    for tag in one["per_tag"]:
        assert two["per_tag"][tag]["roc_auc"] == pytest.approx(one["per_tag"][tag]["roc_auc"], abs=1e-5)
