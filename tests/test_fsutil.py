"""hvd_magtag.fsutil: the one atomic-write helper (temp file beside the target, fsync, os.replace, cleanup)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from hvd_magtag import fsutil


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(fsutil.TEMP_PREFIX))


def test_text_bytes_and_json_replace_the_target_and_leave_nothing_behind(tmp_path):
    target = tmp_path / "sub" / "results.json"
    fsutil.atomic_write(target, "old\n")  # creates the parent folder
    assert target.read_text() == "old\n"
    fsutil.atomic_write_json(target, {"b": 1, "a": [1, 2]})
    assert target.read_text() == json.dumps({"a": [1, 2], "b": 1}, indent=2) + "\n"
    fsutil.atomic_write(tmp_path / "blob.bin", b"\x00\x01")
    assert (tmp_path / "blob.bin").read_bytes() == b"\x00\x01"
    assert _leftovers(tmp_path) == [] and _leftovers(target.parent) == []


def test_every_write_is_synced_before_the_rename(tmp_path, monkeypatch):
    synced, renamed = [], []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(
        os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")), real_fsync(fd))
    )
    monkeypatch.setattr(
        os, "replace", lambda a, b: (renamed.append((str(a), str(b), len(synced))), real_replace(a, b))
    )
    fsutil.atomic_write(tmp_path / "x.txt", "data")
    ((tmp, dest, synced_before),) = renamed
    assert dest == str(tmp_path / "x.txt") and tmp in synced[:synced_before], (
        "temp file fsynced before rename"
    )
    assert str(tmp_path) in synced[synced_before:], "the folder is fsynced after the rename (durable rename)"


def test_a_failing_writer_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "model.weights.h5"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with fsutil.atomic_path(target) as tmp:
            assert tmp.parent == tmp_path and tmp.name.endswith(".weights.h5")  # writers that need the suffix
            tmp.write_bytes(b"half")
            raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_atomic_path_for_numpy_writers(tmp_path):
    target = tmp_path / "predictions_test.npz"
    with fsutil.atomic_path(target) as tmp:
        np.savez(tmp, scores=np.arange(3))  # tmp ends in .npz: numpy adds no second suffix
    with np.load(target) as z:
        np.testing.assert_array_equal(z["scores"], np.arange(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions_test.npz"]


def test_atomic_dir_swaps_a_whole_folder_or_nothing(tmp_path):
    final = tmp_path / "step-00000002"
    with fsutil.atomic_dir(final) as tmp:
        (tmp / "a.txt").write_text("one")
    with fsutil.atomic_dir(final) as tmp:  # an existing folder is replaced as a whole
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]
    with pytest.raises(OSError):
        with fsutil.atomic_dir(final) as tmp:
            (tmp / "c.txt").write_text("three")
            raise OSError("no space left")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"] and _leftovers(tmp_path) == []


def test_sigkill_mid_write_leaves_the_old_file_and_a_temporary_remove_stale_clears(tmp_path):
    target = tmp_path / "state.json"
    target.write_text('{"step": 1}')
    script = (
        "import os, signal, sys\n"
        "from hvd_magtag import fsutil\n"
        "with fsutil.atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_text('{\"st')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert target.read_text() == '{"step": 1}'
    left = _leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(f"{fsutil.TEMP_PREFIX}state.json-")
    assert fsutil.remove_stale(tmp_path, "other") == []  # only the named destination's temporaries
    assert [p.name for p in fsutil.remove_stale(tmp_path, "state")] == left
    assert _leftovers(tmp_path) == [] and target.read_text() == '{"step": 1}'
