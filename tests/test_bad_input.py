"""Wrong invocations of every command-line tool: each must exit with its documented code
(``hvd_magtag.cli.EXIT_CODES_HELP``: 2 usage/config, 3 data, 4 run directory), print exactly ONE
``error: ...`` line on stderr naming the culprit, and no traceback (``--debug`` brings the traceback back).

Option errors are caught before TensorFlow is imported (those processes take well under a second); the
data cases use the session's tiny synthetic dataset (``train_fixtures.tiny_dataset``) or a 4-file folder
dataset written here.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from train_fixtures import TINY_SETTINGS, run, tiny_dataset, train_command

from hvd_magtag.cli import EXIT_DATA, EXIT_RUN_DIR, EXIT_USAGE

PY = sys.executable
TESTS = Path(__file__).resolve().parent


def assert_one_line_error(proc, code: int, *needles: str) -> str:
    """``proc`` exited with ``code``, its stderr holds exactly one ``error:`` line (the last line), containing
    every needle, and no traceback. Returns that line."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error:" in ln]
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and lines[-1] == errors[0], proc.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], f"{needle!r} not in {errors[0]!r}"
    return errors[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_dataset(tmp_path_factory.getbasetemp())


def folder_dataset(root: Path, splits: list[str], corrupt: bool = False) -> Path:
    """A ``folder`` dataset: one 1-s 16 kHz WAV (or garbage bytes) per entry of ``splits``, tags.csv."""
    root.mkdir(parents=True, exist_ok=True)
    rows = ["path,tags,split"]
    rng = np.random.default_rng(0)
    for i, split in enumerate(splits):
        path = root / f"clip{i}.wav"
        if corrupt:
            path.write_bytes(b"this is not audio " * 20)
        else:
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(16000)
                w.writeframes((rng.standard_normal(16000) * 3000).astype("<i2").tobytes())
        rows.append(f"clip{i}.wav,rock;piano,{split}")
    (root / "tags.csv").write_text("\n".join(rows) + "\n")
    return root


def _folder_command(root: Path, run_dir: Path, *extra: str) -> list[str]:
    """train_command for a folder dataset (no MTAT split rule)."""
    cmd = [PY, "-m", "hvd_magtag.train", "--data-root", str(root), "--run-dir", str(run_dir)]
    for s in TINY_SETTINGS:
        if not s.startswith("data.split"):
            cmd += ["--set", s]
    return cmd + ["--dataset", "folder", "--steps", "2", *extra]


# -- option errors: no data read, no TensorFlow imported ---------------------------------------------------


@pytest.mark.parametrize(
    "extra, needles",
    [
        (["--model", "nosuchnet"], ["model.name 'nosuchnet'", "choose one of", "samplecnn"]),
        (["--steps", "many"], ["--steps", "invalid int value: 'many'"]),
        (["--set", "train.steps=many"], ["train.steps", "expects int", "'many'"]),
        (["--set", "train.batch_size=[4]"], ["train.batch_size", "expects int"]),
        (["--set", "train.nosuch=1"], ["unknown option 'train.nosuch'", "known:"]),
        (["--set", "nosection.x=1"], ["unknown option 'nosection'"]),
        (["--set", "train.lr"], ["expected section.key=value"]),
        (["--set", "train.optimizer=adagrad"], ["train.optimizer", "adagrad"]),
        (["--elastic", "--set", "train.schedule=plateau"], ["train.schedule 'plateau' cannot run elastic"]),
        (["--set", "train.commit_every=0"], ["train.commit_every=0", "positive"]),
        # every closed set of the Experiment tree names the option and its choices (config.Experiment.validate)
        (["--dataset", "nosuchdata"], ["data.dataset 'nosuchdata'", "synthetic, mtat, jamendo, fma, folder"]),
        (["--schedule", "sometimes"], ["train.schedule 'sometimes'", "constant, cosine, plateau, staged"]),
        (["--optimizer", "rmsprop"], ["train.optimizer 'rmsprop'", "sgd, adam, adamw"]),
        (["--set", "train.precision=fp8"], ["train.precision 'fp8'", "float32, mixed_bfloat16"]),
        (["--set", "eval.split=dev"], ["eval.split 'dev'", "train, valid, test"]),
        (["--set", "eval.windows=ten"], ["eval.windows 'ten'", "or 'all'"]),
        (["--set", "train.valid_windows=0"], ["train.valid_windows '0'", "or 'all'"]),
        (["--set", "train.batch_size=0"], ["train.batch_size=0", "positive"]),
        (["--set", "train.stages=adam:1e-4@0"], ["train.stages", "train.schedule=staged"]),
    ],
)
def test_option_errors(tmp_path, extra, needles):
    cmd = [
        PY,
        "-m",
        "hvd_magtag.train",
        "--data-root",
        str(tmp_path / "no_data"),
        "--run-dir",
        str(tmp_path / "run"),
    ]
    proc = run(cmd + extra, timeout=120)
    assert_one_line_error(proc, EXIT_USAGE, *needles)
    assert not (tmp_path / "run").exists()


def test_bad_yaml(tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("train:\n  steps: [1, 2\n")
    proc = run([PY, "-m", "hvd_magtag.train", "--config", str(cfg)], timeout=120)
    assert_one_line_error(proc, EXIT_USAGE, str(cfg), "invalid YAML")


def test_missing_config_file(tmp_path):
    proc = run([PY, "-m", "hvd_magtag.train", "--config", str(tmp_path / "nope.yaml")], timeout=120)
    assert_one_line_error(proc, EXIT_USAGE, "nope.yaml", "cannot read config file")


def test_debug_shows_the_traceback(tmp_path):
    proc = run([PY, "-m", "hvd_magtag.train", "--model", "nosuchnet", "--debug"], timeout=120)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "ConfigError" in proc.stderr


# -- data errors ------------------------------------------------------------------------------------------


def test_missing_dataset_folder(tmp_path):
    proc = run(train_command(tmp_path / "no_such_dataset", tmp_path / "run"))
    assert_one_line_error(proc, EXIT_DATA, "no_such_dataset")
    assert not (tmp_path / "run").exists(), "a failed start must not leave a run directory behind"


def test_empty_train_split(tmp_path):
    root = folder_dataset(tmp_path / "data", ["test", "test", "valid"])
    proc = run(_folder_command(root, tmp_path / "run"))
    assert_one_line_error(proc, EXIT_DATA, str(root), "no clips in the train split")


def test_every_file_corrupt(tmp_path):
    root = folder_dataset(tmp_path / "data", ["train"] * 4, corrupt=True)
    proc = run(_folder_command(root, tmp_path / "run"))
    assert_one_line_error(proc, EXIT_DATA, "no clips in the train split", "4 unreadable files excluded")


def test_fewer_clips_than_one_batch(tmp_path):
    root = folder_dataset(tmp_path / "data", ["train", "valid"])
    proc = run(_folder_command(root, tmp_path / "run", "--batch-size", "4"))
    assert_one_line_error(proc, EXIT_DATA, "1 training clips are fewer than train.batch_size x ranks = 4 x 1")


# -- model overrides, run directories, resume mismatches --------------------------------------------------


def test_invalid_model_override(data, tmp_path):
    """shortchunk_cnn's pooling stack needs >= 2^7 frames: a 1000-sample window is refused in one line."""
    cmd = [PY, "-m", "hvd_magtag.train", "--data-root", str(data), "--run-dir", str(tmp_path / "run")]
    cmd += [
        "--set",
        "data.split=directory",
        "--model",
        "shortchunk_cnn",
        "--set",
        "model.overrides.window=1000",
    ]
    proc = run(cmd)
    assert_one_line_error(proc, EXIT_USAGE, "shortchunk_cnn", "window", "too small")


def test_unknown_model_override_key(data, tmp_path):
    proc = run(train_command(data, tmp_path / "run", "--set", "model.overrides.kernel_sizez=3"))
    assert_one_line_error(proc, EXIT_USAGE, "samplecnn", "kernel_sizez")


def test_run_dir_below_a_file(data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run(train_command(data, blocker / "run"))
    assert_one_line_error(proc, EXIT_RUN_DIR, str(blocker), "is a file, not a folder")


def test_unwritable_run_dir(data, tmp_path):
    """A location where even root cannot create files (sysfs refuses; chmod 555 would not stop root)."""
    target = Path("/sys/hvd_magtag_probe")
    if not Path("/sys").is_dir() or _writable(Path("/sys")):
        pytest.skip("/sys is writable or absent here")
    proc = run(train_command(data, target / "run"))
    assert_one_line_error(proc, EXIT_RUN_DIR, str(target / "run"), "cannot write in /sys")


def _writable(folder: Path) -> bool:
    import tempfile

    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def finished_run(data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("bad_input") / "run"
    proc = run(train_command(data, run_dir, "--steps", "2", "--set", "train.checkpoint_every=2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def test_resume_with_another_architecture(data, finished_run):
    before = (finished_run / "run.json").read_text()
    proc = run(train_command(data, finished_run, "--steps", "4", "--set", "model.overrides.n=4"))
    assert_one_line_error(
        proc, EXIT_USAGE, str(finished_run), "was trained as model 'samplecnn'", "new --run-dir"
    )
    assert (finished_run / "run.json").read_text() == before


def test_resume_with_another_tag_vocabulary(data, finished_run):
    proc = run(train_command(data, finished_run, "--steps", "4", "--set", "data.vocabulary=top10"))
    assert_one_line_error(proc, EXIT_USAGE, "50-tag vocabulary", "10 different tags")


# -- the other tools --------------------------------------------------------------------------------------


def test_evaluate_on_a_folder_that_is_no_run(tmp_path):
    proc = run([PY, "-m", "hvd_magtag.evaluate", str(tmp_path)])
    assert_one_line_error(proc, EXIT_RUN_DIR, str(tmp_path), "not a run directory")


def test_tag_with_a_missing_model(tmp_path, data):
    proc = run([PY, "-m", "hvd_magtag.tag", "--model", str(tmp_path / "nomodel"), str(data)])
    assert_one_line_error(proc, EXIT_RUN_DIR, "nomodel", "model not found")


def test_tag_with_no_audio_in_the_inputs(tmp_path, finished_run):
    (tmp_path / "empty").mkdir()
    proc = run([PY, "-m", "hvd_magtag.tag", "--model", str(finished_run), str(tmp_path / "empty")])
    assert_one_line_error(proc, EXIT_DATA, "no audio files", "empty")


def test_analysis_on_a_folder_that_is_no_run(tmp_path):
    proc = run([PY, "-m", "hvd_magtag.analysis", "filters", str(tmp_path), "--out", str(tmp_path / "f")])
    assert_one_line_error(proc, EXIT_RUN_DIR, str(tmp_path))


def test_analysis_on_a_missing_clip(finished_run, tmp_path):
    missing = tmp_path / "nosuch.mp3"
    cmd = [PY, "-m", "hvd_magtag.analysis", "featuremaps", str(finished_run), "--clip", str(missing)]
    proc = run(cmd + ["--out", str(tmp_path / "maps")])
    assert_one_line_error(proc, EXIT_USAGE, str(missing), "not a file and not a clip id")


def test_unknown_notebook_parameter(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text("base:\n  model: samplecnn\n  stepz: 5\n")
    proc = run(
        [PY, "-m", "hvd_magtag.experiments", "run", str(grid), "--out", str(tmp_path / "x"), "--dry-run"]
    )
    assert_one_line_error(proc, EXIT_USAGE, "unknown notebook parameter", "stepz", "known:")


# -- more ranks than clips: a clear error on rank 0, no hang ----------------------------------------------


@pytest.mark.multirank
@pytest.mark.timeout(600)
def test_two_ranks_one_training_clip(tmp_path, horovodrun):
    from multirank.runner import run_horovod

    root = folder_dataset(tmp_path / "data", ["train", "valid"])
    args = ["train", *_folder_command(root, tmp_path / "run", "--set", "train.batch_size=1")[3:]]
    proc = run_horovod(TESTS / "train_cli_script.py", np=2, args=args, timeout=300)
    assert proc.returncode != 0
    errors = [ln for ln in proc.stderr.splitlines() if "error:" in ln]
    assert len(errors) == 1, proc.stderr[-3000:]  # rank 0 only
    assert "1 training clips are fewer than train.batch_size x ranks = 1 x 2" in errors[0]
    assert "Traceback" not in proc.stderr
