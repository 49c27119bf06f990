"""A user's mixed music folder end to end: a real 2-rank ``horovodrun`` training run over every usable kind of
file and the unusable ones (tests/fixtures/audio) finishes every step and names the unusable files; ``tag``
on the folder tags every usable file and names the others (exit 1 for those only)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import audio_fixtures as afx
import pytest
from multirank.runner import check_ok, run_horovod
from train_fixtures import TINY_SETTINGS, child_env

from hvd_magtag.data import manifest as mf

pytestmark = [pytest.mark.multirank, pytest.mark.slow, pytest.mark.timeout(1800)]

SCRIPT = afx.FIXTURES.parents[1] / "train_cli_script.py"
STEPS = 4


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """The fixtures copied into one folder with a tags.csv (two tags; splits train / valid / test)."""
    root = tmp_path_factory.mktemp("library")
    rows = ["path,tags,split"]
    names = afx.names(usable=None)
    for i, name in enumerate(names):
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(afx.path(name), dest)
        split = "valid" if i % 7 == 3 else "test" if i % 7 == 5 else "train"
        rows.append(f"{name},{'bright' if i % 2 else 'dark'},{split}")
    (root / "tags.csv").write_text("\n".join(rows) + "\n")
    return root


def test_two_rank_training_over_every_kind_of_file_names_the_unusable_ones(library, tmp_path, horovodrun):
    run_dir = tmp_path / "run"
    args = ["train", "--data-root", str(library), "--run-dir", str(run_dir), "--steps", str(STEPS)]
    for s in TINY_SETTINGS:
        args += ["--set", s]
    args += ["--set", "data.dataset=folder", "--set", "data.split=", "--set", "train.batch_size=2",
             "--set", "train.validate_every=2", "--set", "data.vocabulary=top2"]  # fmt: skip
    proc = run_horovod(SCRIPT, np=2, timeout=900, args=args)
    check_ok(proc)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output
    report = (library / mf.REPORT_NAME).read_text()
    unusable = afx.names(usable=False)
    listed = {line.split("\t")[0] for line in report.splitlines()[2:]}
    assert listed == set(unusable), report
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert max(m.get("step", 0) for m in metrics) == STEPS

    # tag the folder with the trained run: every usable file tagged, the others named (exit 1)
    tagged = subprocess.run(
        [sys.executable, "-m", "hvd_magtag.tag", str(library), "--model", str(run_dir), "--format", "json",
         "--quiet", "--top-k", "2"],
        capture_output=True, text=True, env=child_env(), timeout=900,
    )  # fmt: skip
    assert tagged.returncode == 1, tagged.stderr[-3000:]
    assert "Traceback" not in tagged.stderr
    files = {str(p["path"]): p for p in json.loads(tagged.stdout)["files"]}
    for name in afx.names(usable=True):
        entry = files[str(library / name)]
        assert entry["error"] is None and len(entry["top"]) == 2, (name, entry)
    for name in unusable:
        entry = files[str(library / name)]
        assert entry["error"] and "\n" not in entry["error"], (name, entry)
    assert f"{len(unusable)} of {len(files)} file(s) failed" in tagged.stderr
