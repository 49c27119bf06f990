"""Tagging a library into a results folder: one process and real 2-rank jobs, bad files, resume, refusals.

The model is the untrained fixture SampleCNN (2187-sample windows): what is compared is the bookkeeping
(one record per file, the same probabilities however the files were spread over ranks or runs), not tags.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import tag_fixtures as fx

from hvd_magtag import jobs
from hvd_magtag.tag import main
from hvd_magtag.tag.library import balanced_shards
from hvd_magtag.tag.results_dir import MERGED_CSV, MERGED_JSONL, MERGED_PARQUET, load_arrays

#: Probabilities of one file tagged in different jobs (other ranks, other batch neighbours, a resumed run):
#: the same float32 graph on the same windows; batch composition may change the kernels' summation order.
SAME_PROBS_ATOL = 1e-5
#: Seconds a job may take on a loaded 2-core machine.
JOB_TIMEOUT = 600


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return fx.make_run(tmp_path_factory.mktemp("library_model") / "run")


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    """12 good files (mp3/flac/wav/ogg, 16-44.1 kHz, mono/stereo, 0.5-3 s), one streamed long wav (> 4 MiB,
    140 s), and a corrupt mp3, an empty flac, an m4a with a header and no stream, and a text file."""
    root = tmp_path_factory.mktemp("library")
    (root / "a" / "b").mkdir(parents=True)
    kinds = [("mp3", 16000), ("flac", 22050), ("wav", 44100), ("ogg", 44100)]
    for i in range(12):
        fmt, rate = kinds[i % 4]
        x = fx.tone(200.0 + 150 * i, 0.5 + 0.25 * i, rate, seed=i)
        x = np.stack([x, 0.5 * x], axis=1) if i % 3 == 0 else x
        fx.write(root / ("a" if i % 2 else "a/b") / f"song{i:02d}.{fmt}", x, rate)
    fx.write(root / "long.wav", fx.tone(fx.LOW_HZ, 140.0, 16000), 16000)  # 4.5 MB: streamed in segments
    (root / "a" / "corrupt.mp3").write_bytes(b"<html>not found</html>" * 50)
    (root / "empty.flac").write_bytes(b"")
    (root / "a" / "b" / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + b"\x00" * 200)
    (root / "cover.txt").write_text("not audio")
    return root


BAD = {"corrupt.mp3": "garbage", "empty.flac": "empty", "song.m4a": "garbage"}


def records(out) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / MERGED_JSONL).read_text().splitlines()]
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)), "a file has two records"
    return {r["path"]: r for r in rows}


def assert_same_results(a: dict[str, dict], b: dict[str, dict]) -> None:
    assert sorted(a) == sorted(b)
    for path in a:
        assert (a[path]["error"] is None) == (b[path]["error"] is None), path
        if a[path]["error"] is None:
            assert a[path]["n_windows"] == b[path]["n_windows"], path
            np.testing.assert_allclose(a[path]["probs"], b[path]["probs"], atol=SAME_PROBS_ATOL, err_msg=path)


def tag_cmd(library, model, out, *extra) -> list[str]:
    return [sys.executable, "-m", "hvd_magtag.tag", str(library), "--model", str(model), "--out", str(out),
            "--quiet", *map(str, extra)]  # fmt: skip


@pytest.fixture(scope="module")
def one_process(library, model, tmp_path_factory):
    """The reference: the library tagged by one process (in this pytest process), with arrays."""
    out = tmp_path_factory.mktemp("one_process") / "results"
    code = main([str(library), "--model", str(model), "--out", str(out), "--quiet", "--taggrams", "--embeddings",
                 "--commit-files", "3"])  # fmt: skip
    return code, out


def test_balanced_shards_spread_the_audio():
    shards = balanced_shards([10, 1, 1, 1, 5, 5, 2], 2)
    assert sorted(i for s in shards for i in s) == list(range(7))
    assert [sum([10, 1, 1, 1, 5, 5, 2][i] for i in s) for s in shards] == [13, 12]
    assert balanced_shards([3.0], 4) == [[0], [], [], []]


def test_one_process_tags_the_library_and_names_the_bad_files(one_process, library):
    code, out = one_process
    assert code == 1  # three files failed, named below; the others are tagged
    rows = records(out)
    names = {p.split("/")[-1]: r for p, r in rows.items()}
    assert "cover.txt" not in names and len(rows) == 16
    for name, status in BAD.items():
        assert names[name]["error"].startswith(status), names[name]["error"]
    good = {n: r for n, r in names.items() if n not in BAD}
    assert len(good) == 13 and all(r["error"] is None for r in good.values())
    assert good["long.wav"]["duration_s"] == pytest.approx(140.0) and good["long.wav"]["n_windows"] == 1025
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["files"], summary["tagged"], summary["failed"]) == (16, 13, 3)
    assert sorted(f["path"].split("/")[-1] for f in summary["failures"]) == sorted(BAD)
    assert summary["hours_of_audio"] == pytest.approx(
        sum(r["duration_s"] for r in good.values()) / 3600, abs=1e-4
    )
    assert summary["this_run"]["wall_seconds"] > 0 and len(summary["this_run"]["peak_rss_mb_per_rank"]) == 1
    # the tables: one row per file, every tag's probability
    table = pq.read_table(out / MERGED_PARQUET).to_pandas()
    assert len(table) == 16 and list(table.columns[-3:]) == fx.TAGS
    assert (out / MERGED_CSV).read_text().count("\n") == 17
    row = table.set_index("path").loc[str(library / "long.wav")]
    np.testing.assert_allclose(row[fx.TAGS].to_numpy(float), good["long.wav"]["probs"], atol=1e-6)
    # arrays per window, consistent with the probabilities
    arrays = load_arrays(out)
    assert sorted(arrays) == sorted(p for p, r in rows.items() if r["error"] is None)
    long_arrays = arrays[str(library / "long.wav")]
    assert long_arrays["taggram"].shape == (1025, 3) and long_arrays["embedding"].shape[0] == 1025
    np.testing.assert_allclose(long_arrays["taggram"].mean(0), good["long.wav"]["probs"], atol=1e-5)


def test_rerun_skips_finished_files_and_refuses_other_options(one_process, library, model, tmp_path, capsys):
    code, out = one_process
    before = records(out)
    parts = sorted((out / "parts").iterdir())
    assert (
        main(
            [str(library), "--model", str(model), "--out", str(out), "--quiet", "--taggrams", "--embeddings"]
        )
        == 1
    )
    assert sorted((out / "parts").iterdir()) == parts  # nothing left to do: no new part
    assert records(out) == before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["this_run"]["already_done"] == 16 and summary["this_run"]["run"] == 2
    capsys.readouterr()
    assert main([str(library), "--model", str(model), "--out", str(out), "--quiet", "--top-k", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "top_k" in err[0], err
    other = fx.make_run(tmp_path / "other", seed=1)  # same architecture, other weights
    assert (
        main(
            [str(library), "--model", str(other), "--out", str(out), "--quiet", "--taggrams", "--embeddings"]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another model" in err[0] and "weights_sha256" in err[0], err
    assert records(out) == before


@pytest.mark.multirank
def test_two_ranks_give_the_one_process_rows(one_process, library, model, tmp_path):
    _, reference = one_process
    out = tmp_path / "two_ranks"
    proc = jobs.run(
        [*jobs.horovodrun(2), *tag_cmd(library, model, out, "--commit-files", 2)], timeout=JOB_TIMEOUT
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr  # the three bad files
    assert_same_results(records(out), records(reference))
    ranks = {r["rank"] for r in records(out).values()}
    assert ranks == {0, 1}  # both ranks tagged
    assert json.loads((out / "summary.json").read_text())["this_run"]["ranks"] == 2


def _rank_process(job_id: str, rank: int):
    import psutil

    for p in jobs.job_processes(job_id):
        try:
            env = p.environ()
        except psutil.Error:
            continue
        if env.get("OMPI_COMM_WORLD_RANK", env.get("HOROVOD_RANK")) == str(rank) and "python" in p.name():
            return p
    return None


@pytest.mark.multirank
def test_kill_9_of_a_rank_then_rerun_gives_one_row_per_file(one_process, library, model, tmp_path):
    _, reference = one_process
    out = tmp_path / "killed"
    cmd = [*jobs.horovodrun(2), *tag_cmd(library, model, out, "--commit-files", 1, "--workers", 1)]
    job = jobs.start(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + JOB_TIMEOUT
        while not list((out / "parts").glob("part-run0001-rank0001-*.jsonl")):  # rank 1 has committed a part
            assert job.proc.poll() is None and time.monotonic() < deadline, (
                "the job ended before rank 1 committed"
            )
            time.sleep(0.02)
        victim = _rank_process(job.job_id, 1)
        assert victim is not None, "rank 1's process not found"
        victim.send_signal(signal.SIGKILL)
        job.proc.wait(timeout=JOB_TIMEOUT)
    finally:
        job.kill()
    assert job.proc.returncode != 0
    assert not (out / MERGED_JSONL).exists()  # killed before the merge
    partial = {
        json.loads(line)["path"]
        for p in (out / "parts").glob("*.jsonl")
        for line in p.read_text().splitlines()
    }
    assert 0 < len(partial) < 16, f"the kill was not mid-job ({len(partial)} of 16 files done)"

    proc = jobs.run([*jobs.horovodrun(2), *tag_cmd(library, model, out)], timeout=JOB_TIMEOUT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["this_run"]["already_done"] == len(partial) and summary["files"] == 16
    lines = [json.loads(line) for p in (out / "parts").glob("*.jsonl") for line in p.read_text().splitlines()]
    assert sorted(r["path"] for r in lines) == sorted(records(reference)), "parts hold a duplicate or a hole"
    assert_same_results(records(out), records(reference))
