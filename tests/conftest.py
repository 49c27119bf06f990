"""Shared pytest setup, kept minimal: quiet TensorFlow, make ``tests/`` importable, locate horovodrun.

Multi-rank helpers live in ``tests/multirank`` (``from multirank.runner import run_horovod, check_ok``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before any test module imports TensorFlow

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))


@pytest.fixture(scope="session")
def horovodrun() -> Path:
    """Path of the venv's ``horovodrun`` (next to ``sys.executable``). Missing = a broken install: fail."""
    from multirank.runner import horovodrun_path

    path = horovodrun_path()
    if not path.exists():
        pytest.fail(f"{path} not found: multi-rank tests need Horovod in this venv; run `make install`")
    return path


@pytest.fixture(scope="session")
def two_rank_reference(tmp_path_factory, horovodrun) -> Path:
    """Run directory of an uninterrupted ``horovodrun -np 2`` run of the tiny config (train_fixtures
    ``two_rank_args``): what a killed and resumed 2-rank run must end equal to (test_faults), and a finished
    run to extend (test_train_multirank). Trained once per session; copy it before changing it."""
    from multirank.runner import check_ok, run_horovod
    from train_fixtures import tiny_dataset, two_rank_args

    run_dir = tmp_path_factory.mktemp("two_rank_reference") / "run"
    data = tiny_dataset(tmp_path_factory.getbasetemp())
    proc = run_horovod(
        TESTS_DIR / "train_cli_script.py", np=2, args=two_rank_args(data, run_dir), timeout=400
    )
    check_ok(proc)
    return run_dir
