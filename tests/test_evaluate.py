"""hvd_magtag.evaluate: options and one-line errors (full evaluations run in test_train_run / _multirank)."""

import contextlib
import io
import json

from train_fixtures import tiny_dataset

from hvd_magtag.cli import EXIT_RUN_DIR
from hvd_magtag.config import Experiment
from hvd_magtag.evaluate import main


def _main(argv):
    """(exit code, stderr lines), without the warning distributed.init() gives when an earlier test in this
    pytest process already started TensorFlow (a fresh CLI process never sees it)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(argv)
    return code, [
        ln for ln in err.getvalue().strip().splitlines() if "TensorFlow was already running" not in ln
    ]


def test_not_a_run_directory(tmp_path):
    code, lines = _main([str(tmp_path)])
    assert code == EXIT_RUN_DIR and lines == [
        f"error: {tmp_path}: not a run directory (no run.json); train one with hvd_magtag.train"
    ]


def _fake_run(run_dir, data, tags):
    exp = Experiment()
    exp.data.root, exp.data.split = str(data), "directory"
    exp.model.name = "samplecnn"
    exp.model.overrides = {"m": 3, "n": 5, "width": 0.0625}
    run_dir.mkdir()
    exp.save(run_dir / "config.json")
    info = {"model": "samplecnn", "overrides": exp.model.overrides, "spec": {}, "tags": tags}
    (run_dir / "run.json").write_text(json.dumps(info))


def test_other_vocabulary_and_unknown_split_are_refused(tmp_path, tmp_path_factory):
    data = tiny_dataset(tmp_path_factory.getbasetemp())
    _fake_run(tmp_path / "run", data, ["guitar", "piano"])
    code, lines = _main([str(tmp_path / "run")])
    assert code == 2 and len(lines) == 1
    assert "tag vocabulary (50 tags) differs from the run's (2 tags" in lines[0]

    from hvd_magtag.data.mtat import load_top50_tags

    _fake_run(tmp_path / "run50", data, load_top50_tags())
    code, lines = _main([str(tmp_path / "run50"), "--split", "validation"])
    assert code == 2 and lines[0].startswith("error: --split 'validation': no clips in that split")
    code, lines = _main([str(tmp_path / "run50"), "--windows", "none"])
    assert code == 2 and lines[0].startswith("error: --windows 'none'")
    code, lines = _main([str(tmp_path / "run50")])  # no weights yet
    assert code == EXIT_RUN_DIR and "no best weights" in lines[0]
