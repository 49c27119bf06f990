"""Faults: a rank SIGKILLed mid-epoch under ``horovodrun -np 2`` (the job ends non-zero within a timeout,
the checkpoints stay loadable, rerunning resumes from the last one), a process killed inside a checkpoint
write (the previous checkpoint stays the latest and loads), a run directory that cannot be written or a
disk without room (refused before training, one line, exit code 4)."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
import pytest
from multirank.runner import run_horovod
from train_fixtures import REFERENCE_STEPS, TINY_SETTINGS, child_env, tiny_dataset, two_rank_args, weights

from hvd_magtag import checkpoint
from hvd_magtag.cli import EXIT_RUN_DIR, RANK_ENV
from hvd_magtag.rundir import RunDir, RunDirError
from hvd_magtag.train import MIN_FREE_BYTES, check_run_dir

TESTS = Path(__file__).resolve().parent
#: Environment tag marking the processes of one job (to find rank 1 and kill it).
FAULT_TAG_ENV = "HVD_MAGTAG_FAULT_TAG"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.getbasetemp())


def train_args(data: Path, run_dir: Path, *extra: object) -> list[str]:
    args = ["train", "--data-root", str(data), "--run-dir", str(run_dir)]
    for s in TINY_SETTINGS:
        args += ["--set", s]
    return args + [str(e) for e in extra]


# -- kill inside a checkpoint write ----------------------------------------------------------------------


def test_kill_during_checkpoint_write_keeps_the_previous_one(tmp_path):
    import keras
    from multirank import toy

    script = TESTS / "multirank" / "fault_checkpoint_kill.py"
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=300,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    ckpts = tmp_path / "checkpoints"
    partial = [p for p in ckpts.iterdir() if p.name.startswith(".tmp-step-00000002")]
    assert len(partial) == 1 and (partial[0] / "model.npz").is_file(), "the kill did not land mid-write"
    assert not (partial[0] / "state.json").exists()
    assert checkpoint.latest_checkpoint(ckpts) == ckpts / "step-00000001"
    assert [s for s, _ in checkpoint.list_checkpoints(ckpts)] == [1]

    keras.utils.set_random_seed(1)  # other initial weights: the load must overwrite them
    model = toy.conv_model()
    optimizer = keras.optimizers.SGD(learning_rate=0.1, momentum=0.9)
    optimizer.build(model.trainable_variables)
    assert checkpoint.load(ckpts / "step-00000001", model, optimizer)["step"] == 1
    with np.load(tmp_path / "expected.npz") as z:
        expected = [z[f"arr_{i}"] for i in range(len(z.files))]
    for v, e in zip(model.variables, expected, strict=True):
        np.testing.assert_array_equal(v.numpy(), e)
    # the next save clears the dead writer's leftovers
    checkpoint.save(ckpts, model, optimizer, {"step": 3})
    assert sorted(p.name for p in ckpts.iterdir()) == ["step-00000001", "step-00000003"]


def test_a_step_folder_without_state_is_not_a_checkpoint(tmp_path):
    (tmp_path / "step-00000004").mkdir()
    (tmp_path / "step-00000004" / "model.npz").write_bytes(b"half")
    (tmp_path / "step-00000002").mkdir()
    (tmp_path / "step-00000002" / "state.json").write_text('{"step": 2}')
    assert checkpoint.latest_checkpoint(tmp_path) == tmp_path / "step-00000002"


# -- run directory problems --------------------------------------------------------------------------------


def test_full_disk_is_refused_up_front(tmp_path, monkeypatch):
    real = shutil.disk_usage

    def almost_full(path):
        total, used, _ = real(path)
        return type(real(path))(total, used, 10 * 2**20)

    check_run_dir(tmp_path / "run")  # a real, roomy temp folder passes and keeps nothing
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(shutil, "disk_usage", almost_full)
    with pytest.raises(RunDirError, match=r"only 10 MiB free .* at least 256 MiB"):
        check_run_dir(tmp_path / "run")
    assert MIN_FREE_BYTES == 256 * 2**20


def test_full_disk_through_the_command_line(data, tmp_path, monkeypatch):
    """The whole ``train`` entry point (in this process, size 1): exit code 4, one line, no run directory."""
    from hvd_magtag.train import main

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: type(real(p))(1 << 40, 1 << 40, 1 << 20))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(train_args(data, tmp_path / "run", "--steps", 2)[1:])
    assert code == EXIT_RUN_DIR
    errors = [ln for ln in err.getvalue().splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "only 1 MiB free" in errors[0] and "Traceback" not in err.getvalue()
    assert not (tmp_path / "run").exists()


def test_run_dir_where_a_file_is(tmp_path):
    (tmp_path / "taken").write_text("")
    with pytest.raises(RunDirError, match="is a file, not a folder"):
        check_run_dir(tmp_path / "taken")
    with pytest.raises(RunDirError, match="is a file, not a folder"):
        check_run_dir(tmp_path / "taken" / "deeper" / "run")


# -- SIGKILL of one rank under horovodrun -np 2, then resume ----------------------------------------------


def _rank_process(tag: str, rank: int) -> psutil.Process | None:
    for p in psutil.process_iter():
        try:
            env = p.environ()
            if env.get(FAULT_TAG_ENV) != tag or "train_cli_script.py" not in " ".join(p.cmdline()):
                continue
            if any(env.get(k) == str(rank) for k in RANK_ENV):
                return p
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return None


@pytest.mark.multirank
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_sigkill_of_one_rank_stops_the_job_and_resume_ends_like_an_uninterrupted_run(
    data, tmp_path, horovodrun, two_rank_reference
):
    """Rank 1 of a 2-rank job is SIGKILLed after the step-8 checkpoint: the job ends with exit 137 (128+N for
    a rank killed by signal N, as the launch scripts document it), no last weights; rerunning the command resumes
    from the last checkpoint and ends with the weights of the uninterrupted run (conftest's reference)."""
    run_dir, tag = tmp_path / "run", uuid.uuid4().hex
    flag = run_dir / "checkpoints" / "step-00000008" / "state.json"
    killed: list[int] = []

    def kill_rank_1() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not flag.exists():
            time.sleep(0.02)
        victim = _rank_process(tag, 1)
        if victim is not None:
            killed.append(victim.pid)
            victim.send_signal(signal.SIGKILL)

    killer = threading.Thread(target=kill_rank_1, daemon=True)
    killer.start()
    t0 = time.perf_counter()
    first = run_horovod(
        TESTS / "train_cli_script.py",
        np=2,
        args=two_rank_args(data, run_dir),
        timeout=300,  # a hang would raise TimeoutExpired (and the runner kills the job)
        env={FAULT_TAG_ENV: tag},
    )
    killer.join()
    print(f"job with a SIGKILLed rank ended after {time.perf_counter() - t0:.1f} s, exit {first.returncode}")
    assert killed, "rank 1 was never found / the run never reached step 8"
    assert first.returncode == 128 + signal.SIGKILL, (first.returncode, first.stderr[-3000:])
    assert not RunDir(run_dir).last_weights.exists(), "the job must not look finished"
    stopped = [s for s, _ in checkpoint.list_checkpoints(run_dir / "checkpoints")]
    assert stopped and 8 <= stopped[-1] < REFERENCE_STEPS, stopped
    last = stopped[-1]
    assert checkpoint.read_state(checkpoint.latest_checkpoint(run_dir / "checkpoints"))["step"] == last

    second = run_horovod(TESTS / "train_cli_script.py", np=2, args=two_rank_args(data, run_dir), timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert re.search(rf"resuming {re.escape(str(run_dir))} from step {last} ", second.stderr), second.stderr[
        -3000:
    ]
    run, reference = RunDir(run_dir), RunDir(two_rank_reference)
    assert run.info["started_from_step"] == last
    steps = [(e["event"], e["step"]) for e in run.read_metrics()]
    assert steps == [(e["event"], e["step"]) for e in reference.read_metrics()], "each step logged once"
    for a, b in zip(weights(reference.last_weights), weights(run.last_weights), strict=True):
        np.testing.assert_array_equal(a, b)
    done = [e["weights_sha256"] for e in (run.read_metrics()[-1], reference.read_metrics()[-1])]
    assert done[0] == done[1], "the run's recorded digests differ"
