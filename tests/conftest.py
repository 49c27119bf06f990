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
