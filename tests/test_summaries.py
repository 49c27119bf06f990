"""TensorBoard after a resume: every step once, read back with TensorBoard's own event reader."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from train_fixtures import child_env, run, tiny_dataset, train_command

from hvd_magtag import checkpoint
from hvd_magtag.summaries import event_files, trim_events


def points(logdir: Path) -> Counter:
    """(tag, step) -> how many times TensorBoard's EventAccumulator reads it (orphan purging off: raw truth)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logdir), size_guidance={"tensors": 0, "scalars": 0}, purge_orphaned_data=False)
    acc.Reload()
    out: Counter = Counter()
    for tag in acc.Tags()["tensors"]:
        out.update((tag, e.step) for e in acc.Tensors(tag))
    for tag in acc.Tags()["scalars"]:
        out.update((tag, e.step) for e in acc.Scalars(tag))
    return out


def write_scalars(logdir: Path, steps) -> None:
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for step in steps:
            tf.summary.scalar("train/loss", 1.0 / step, step=step)
            if step % 2 == 0:
                tf.summary.scalar("valid/roc_auc", 0.5 + step / 100, step=step)
    writer.close()


def test_trim_then_rewrite_gives_each_step_once(tmp_path):
    write_scalars(tmp_path, range(1, 7))  # the killed run: steps 1-6, its last checkpoint at 4
    before = points(tmp_path)
    assert before[("train/loss", 5)] == 1
    (first,) = event_files(tmp_path)
    untouched = first.stat().st_mtime_ns
    assert trim_events(tmp_path, 6) == {} and first.stat().st_mtime_ns == untouched  # nothing past 6

    assert trim_events(tmp_path, 4) == {first: 3}  # train 5, 6 and valid 6
    time.sleep(0.01)  # a distinct file name (its time stamp) for the resumed writer
    write_scalars(tmp_path, range(5, 9))  # the resumed run redoes 5 and 6, then goes on
    after = points(tmp_path)
    assert set(after.values()) == {1}, [k for k, n in after.items() if n > 1]
    assert sorted(s for t, s in after if t == "train/loss") == list(range(1, 9))
    assert sorted(s for t, s in after if t == "valid/roc_auc") == [2, 4, 6, 8]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary left behind"


def test_untrimmed_resume_would_duplicate(tmp_path):
    """The failure the trim prevents (so the test above can fail): TensorBoard keeps both copies."""
    write_scalars(tmp_path, range(1, 7))
    time.sleep(0.01)
    write_scalars(tmp_path, range(5, 9))
    assert points(tmp_path)[("train/loss", 5)] == 2


def test_a_torn_last_record_is_cut_off(tmp_path):
    write_scalars(tmp_path, range(1, 7))
    (path,) = event_files(tmp_path)
    path.write_bytes(path.read_bytes()[:-7])  # killed inside the last write
    trim_events(tmp_path, 4)
    assert sorted(s for t, s in points(tmp_path) if t == "train/loss") == [1, 2, 3, 4]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkilled_run_resumes_without_duplicate_points(tmp_path_factory, tmp_path):
    """A real run SIGKILLed after it logged steps past its last checkpoint, then resumed by the same command."""
    data = tiny_dataset(tmp_path_factory.getbasetemp())
    run_dir = tmp_path / "run"
    cmd = train_command(data, run_dir, "--steps", "24")
    cmd += [
        "--set",
        "train.checkpoint_every=8",
        "--set",
        "train.validate_every=8",
        "--set",
        "train.log_every=1",
    ]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env())
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 600

    def logged_past_first_checkpoint() -> bool:
        if not (run_dir / "checkpoints" / "step-00000008" / "state.json").exists() or not metrics.exists():
            return False
        return '"step": 10,' in metrics.read_text()

    while child.poll() is None and time.monotonic() < deadline and not logged_past_first_checkpoint():
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    last_checkpoint = max(s for s, _ in checkpoint.list_checkpoints(run_dir / "checkpoints"))
    logged = max(s for _, s in points(run_dir / "tensorboard"))
    assert logged > last_checkpoint, f"the kill came too late (logged {logged}, checkpoint {last_checkpoint})"

    resumed = run(cmd)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming {run_dir}" in resumed.stderr
    after = points(run_dir / "tensorboard")
    assert not [k for k, n in after.items() if n > 1], "a step appears twice"
    assert sorted(s for t, s in after if t == "train/loss") == list(range(1, 25))
    assert sorted({s for t, s in after if t.startswith("valid/")}) == [8, 16, 24]
