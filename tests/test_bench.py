"""Smoke tests of the ``train`` and ``scaling`` benchmark sections at ``--quick`` settings.

They check that every case runs and emits well-formed rows (names, units, finite values, targets next to
ratios) through the real dispatcher, and that the JSON file matches the printed rows. No timing asserts:
speed targets are printed by the benchmarks, never tested.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from hvd_magtag.bench import __main__ as bench_main

ROW_KEYS = {"bench", "case", "metric", "value", "spread", "unit"}


def _check_rows(rows: list[dict], bench: str) -> None:
    assert rows, "no rows"
    for r in rows:
        assert ROW_KEYS <= set(r), r
        assert r["bench"] == bench
        assert isinstance(r["case"], str) and r["case"]
        assert math.isfinite(r["value"]) and math.isfinite(r["spread"]), r
        assert r["spread"] >= 0, r
        if "target" in r and r["target"] is not None:
            assert r["meets_target"] == (
                r["value"] <= r["target"] if r["unit"] == "GiB" else r["value"] >= r["target"]
            ), r


def _run_section(argv: list[str], tmp_path, capsys) -> tuple[list[dict], str]:
    assert bench_main.main([*argv, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((tmp_path / f"{argv[0]}.json").read_text())
    assert saved["machine"]["cpu_count"] >= 1
    return saved["rows"], printed


def _find(rows: list[dict], case: str, metric: str) -> dict:
    found = [r for r in rows if r["case"].startswith(case) and r["metric"] == metric]
    assert len(found) == 1, (
        f"expected one {case!r}/{metric!r} row, found {len(found)}: {[r['case'] for r in rows]}"
    )
    return found[0]


@pytest.mark.slow
def test_train_section_quick(tmp_path, capsys):
    rows, printed = _run_section(["train", "--quick", "--variants", "fp32,bf16"], tmp_path, capsys)
    _check_rows(rows, "train")
    assert "== train ==" in printed and "matmul fp32" in printed

    peak = _find(rows, "matmul fp32", "fp32 peak")
    assert peak["value"] > 0 and peak["unit"] == "GFLOP/s"
    for case in ("hvd_magtag fp32", "hvd_magtag bf16", "reference"):
        rate = _find(rows, case, "train throughput")
        step = _find(rows, case, "step time")
        assert rate["unit"] == "samples/s" and rate["batch"] == 4
        # throughput and step time are two views of one measurement
        assert rate["value"] == pytest.approx(rate["batch"] / (step["value"] / 1e3), rel=1e-6)
        fraction = _find(rows, case, "of fp32 matmul peak")
        assert fraction["target"] == 0.60
        achieved = _find(rows, case, "achieved")
        assert fraction["value"] == pytest.approx(achieved["value"] / peak["value"], rel=1e-6)
        assert "load1" in rate
    for variant in ("fp32", "bf16"):
        ratio = _find(rows, f"hvd_magtag {variant} / reference", "speed-up")
        ours, ref = (
            _find(rows, f"hvd_magtag {variant}", "train throughput"),
            _find(rows, "reference", "train throughput"),
        )
        assert ratio["value"] == pytest.approx(ours["value"] / ref["value"], rel=1e-6)
        assert ratio["target"] == 1.15

    mem, mp3 = (
        _find(rows, "fed from memory", "train throughput"),
        _find(rows, "fed from mp3", "train throughput"),
    )
    tfr = _find(rows, "fed from tfrecord (raw)", "train throughput")
    for source, fed in (("mp3", mp3), ("tfrecord (raw)", tfr)):
        feed = _find(rows, f"fed from {source} / fed from memory", "ratio")
        assert feed["value"] == pytest.approx(fed["value"] / mem["value"], rel=1e-6)
        assert feed["target"] == 0.95
    for case in ("eval mp3 -> clip scores, 3 windows/clip", "eval model only (memory), 3 windows/clip"):
        ev = _find(rows, case, "eval throughput")
        assert ev["unit"] == "clips/s" and ev["windows"] == 3 and ev["value"] > 0


def test_train_reference_matches_registry_model():
    """The plain-Keras reference is the same network as the registry SampleCNN (parameter count per layer
    kind), at the full 3^9 size: the bench's speed-up is between equal models."""
    import numpy as np

    from hvd_magtag.bench.train import reference_samplecnn
    from hvd_magtag.models import create_model
    from hvd_magtag.models.raw import SAMPLECNN_3_9_PARAMS_50_TAGS
    from hvd_magtag.models.registry import get_spec

    ref = reference_samplecnn(get_spec("samplecnn"), 50, 3, 9, 1.0)
    ours = create_model("samplecnn", n_tags=50)
    count = lambda m: int(sum(np.prod(v.shape) for v in m.trainable_variables))  # noqa: E731
    assert count(ref) == SAMPLECNN_3_9_PARAMS_50_TAGS == count(ours)
    assert ref.input_shape == ours.input_shape and ref.output_shape == ours.output_shape
    conv_shapes = lambda m: [tuple(v.shape) for v in m.trainable_variables if len(v.shape) == 3]  # noqa: E731
    assert conv_shapes(ref) == conv_shapes(ours)


def test_train_mixed_variant_computes_in_bfloat16_with_float32_output():
    import argparse

    import numpy as np

    from hvd_magtag.bench.train import _settings, add_arguments, build_variant

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    s = _settings(parser.parse_args(["--quick"]))
    model, step = build_variant(s, "bf16")
    x = np.zeros((2, *model.spec.input_shape()), np.float32)
    assert model(x).dtype == "float32"
    assert model.get_layer("conv0").compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in model.trainable_variables)  # float32 master weights
    loss = float(step(x, np.zeros((2, s.n_tags), np.float32)))
    assert np.isfinite(loss)


def test_train_rejects_unknown_variant(capsys):
    assert bench_main.main(["train", "--quick", "--variants", "fp32,fp8"]) == 2  # EXIT_USAGE, one line
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --variants/--feed-variant: unknown fp8"), err


@pytest.mark.multirank
def test_scaling_section_quick(tmp_path, capsys):
    rows, printed = _run_section(["scaling", "--quick", "--repeats", "1"], tmp_path, capsys)
    _check_rows(rows, "scaling")
    assert "== scaling ==" in printed
    one = _find(rows, "train np=1", "throughput (all ranks)")
    two = _find(rows, "train np=2", "throughput (all ranks)")
    assert one["np"] == 1 and two["np"] == 2 and two["threads_per_rank"] == 1
    assert one["rounds"] == two["rounds"] == 1 * 2  # --repeats 1 x quick's 2 timed rounds
    assert _find(rows, "train np=2", "throughput per rank")["value"] == pytest.approx(two["value"] / 2)
    speedup = _find(rows, "scaling np=2 / np=1", "speed-up")
    assert speedup["value"] == pytest.approx(two["value"] / one["value"], rel=1e-6)
    assert speedup["target"] == 1.8
    rss = _find(rows, "train np=2", "peak RSS per rank")
    assert 0.05 < rss["value"] < 64 and rss["target"] == 3.0  # a TF process: tens of MiB at least
    for compression in ("none", "fp16"):
        latency = _find(rows, f"allreduce gradients np=2, compression={compression}", "latency")
        bw = _find(rows, f"allreduce gradients np=2, compression={compression}", "algbw")
        assert latency["value"] > 0 and latency["tensors"] >= 2
        assert bw["value"] == pytest.approx(bw["payload_bytes"] / 1e6 / (latency["value"] / 1e3), rel=1e-6)


def test_scaling_worker_needs_settings():
    """The worker entry point (what horovodrun starts) fails with a usage error, not a traceback."""
    proc = subprocess.run(
        [sys.executable, "-m", "hvd_magtag.bench.scaling"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and "--worker" in proc.stderr


def test_tag_library_rows_alternate_jobs_and_compare_the_means(tmp_path, monkeypatch):
    """bench tag's library case: ``repeats`` rounds of a 1-rank job, a 2-rank job and the pair of independent
    processes (half the files each), files/s = tagged / (scan + tag) per job, mean ± std per kind, speed-ups
    = ratios of the means (stand-in jobs, no TensorFlow); the halves hold every file once."""
    from hvd_magtag.bench import tag as bench_tag

    order, seconds = [], iter([(2.0, 6.0), (1.0, 3.0), (2.0, 10.0), (1.0, 5.0)])
    pair_rates = iter([9.0, 7.0])
    written = []
    monkeypatch.setattr(bench_tag, "write_mp3", lambda path, samples, rate: written.append(path))
    monkeypatch.setattr(bench_tag, "music_like", lambda *a, **k: None)

    def job(model, library, out, np_ranks):
        order.append(np_ranks)
        scan, tag = next(seconds)
        return {"tagged": 48, "scan_seconds": scan, "tag_seconds": tag, "wall_seconds": scan + tag + 4,
                "startup_seconds": 4.0, "peak_rss_mb_per_rank": [800.0] * np_ranks}  # fmt: skip

    def pair(model, halves, outs):
        order.append("pair")
        assert len(halves) == 2 and len(set(outs)) == 2
        return next(pair_rates)

    monkeypatch.setattr(bench_tag, "library_job", job)
    monkeypatch.setattr(bench_tag, "pair_job", pair)
    rows = bench_tag.scaling_rows(tmp_path / "model", tmp_path, 3, {}, repeats=2)
    assert order == [1, 2, "pair", 1, 2, "pair"]
    assert sorted(p.parent.name for p in written) == ["a", "a", "b"] and len(set(written)) == 3
    one = _find(rows, "library 3 files np=1 x 1 thread", "files/s")
    two = _find(rows, "library 3 files np=2 x 1 thread", "files/s")
    assert one["value"] == pytest.approx((6 + 4) / 2) and one["spread"] == pytest.approx(1.0)
    assert two["value"] == pytest.approx((12 + 8) / 2) and two["jobs"] == 2
    assert two["peak_rss_mb_per_rank"] == [800.0, 800.0] and two["tag_s"] == 5.0  # the last job's
    speedup = _find(rows, "library np=2 / np=1 (1 thread/rank)", "speed-up")
    assert speedup["value"] == pytest.approx(2.0) and speedup["meets_target"] is True
    ceiling = _find(rows, "library 2 independent processes / np=1", "speed-up")
    assert ceiling["value"] == pytest.approx(8.0 / 5.0)
    assert _find(rows, "library np=2 / 2 independent processes", "ratio")["value"] == pytest.approx(
        10.0 / 8.0
    )
