"""Tagging files: the Python API, the CLI (JSON/CSV/table, folders, failures, exit codes), streaming, formats."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import tag_fixtures as fx
import tensorflow as tf
import tensorflow_io as tfio

import hvd_magtag
from hvd_magtag.audio import tail_padded_windows
from hvd_magtag.export import export_run
from hvd_magtag.tag import FileFailure, Tagger, TaggerError, main

#: A 44.1 kHz stereo mp3 vs the 16 kHz mono wav it was made from: clip probabilities agree within this
#: (mp3 coding + two resamplings; measured ~0.015 with the fixture model), and the top-3 order is the same.
CROSS_FORMAT_ATOL = 0.05
#: Streaming (segments resampled with a margin, windows in chunks) vs the whole clip at once: the same ops on
#: the same samples, so float32 rounding only.
STREAM_ATOL = 1e-5
#: bfloat16 inference (8-bit mantissa in convolutions and dense layers, float32 weights and output layer) vs
#: float32 on the fixture model: measured max |difference| 1.1e-3 on clip and 3.4e-3 on window probabilities
#: (4 files, 16/44.1 kHz); the tolerances leave ~10x / ~6x room, and the tag order must not change.
BF16_CLIP_ATOL, BF16_WINDOW_ATOL = 0.01, 0.02


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return fx.trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def tagger(run_dir):
    return Tagger(run_dir)


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """A folder of fixture songs (nested), a corrupt mp3, an empty wav and a text file."""
    root = tmp_path_factory.mktemp("songs")
    (root / "sub").mkdir()
    low, high = fx.tone(fx.LOW_HZ, 1.2, 16000, seed=3), fx.tone(fx.HIGH_HZ, 0.9, 16000, seed=4)
    high32k = fx.tone(fx.HIGH_HZ, 0.9, 32000, seed=4)  # Vorbis encodes >= 32 kHz only
    files = {
        "low": fx.write(root / "low.mp3", low, 16000),
        "high": fx.write(root / "sub" / "high.flac", high, 16000),
        "high_ogg": fx.write(root / "sub" / "high.ogg", np.stack([high32k, high32k], 1), 32000),
    }
    (root / "sub" / "corrupt.mp3").write_bytes(b"this is not an mp3 file at all" * 40)
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.txt").write_text("not audio")
    return root, files


def test_stereo_44k_mp3_gets_the_tags_of_its_16k_mono_version(tagger, tmp_path):
    mono = fx.tone(fx.LOW_HZ, 1.5, 16000, seed=5)
    up = tfio.audio.resample(mono[:, None], 16000, 44100).numpy()[:, 0]
    side = fx.tone(1000.0, up.size / 44100, 44100, amplitude=0.1, noise=0.0)[: up.size]
    stereo = np.stack([up + side, up - side], axis=1)  # channels differ; their mean is the mono signal
    ref = tagger.tag(fx.write(tmp_path / "mono16k.wav", mono, 16000))
    got = tagger.tag(fx.write(tmp_path / "stereo44k.mp3", stereo, 44100))
    np.testing.assert_allclose(got.clip, ref.clip, atol=CROSS_FORMAT_ATOL)
    assert [t for t, _ in got.top(3)] == [t for t, _ in ref.top(3)]
    assert ref.top(1)[0][0] == "low"  # and the model really hears the tone (the fixture is trained)
    high = tagger.tag(fx.write(tmp_path / "high.wav", fx.tone(fx.HIGH_HZ, 1.0, 16000), 16000))
    assert high.top(1)[0][0] == "high"


@pytest.mark.parametrize("rate", [16000, 22050, 44100])
def test_streaming_equals_the_whole_clip_at_once(run_dir, tmp_path, rate):
    """Streamed segments of 0.3 s (resampled with a margin), chunks of 4 windows, the whole-file decode and
    the exported from_waveform on the whole clip all give the same windows and tags."""
    stereo = np.stack([fx.tone(fx.LOW_HZ, 2.0, rate), fx.tone(fx.HIGH_HZ, 2.0, rate, seed=1)], axis=1)
    path = fx.write(tmp_path / f"s{rate}.wav", stereo, rate)
    streamed = Tagger(run_dir, segment_seconds=0.3, chunk_windows=4, whole_file_max_bytes=0).tag(path)
    whole_file = Tagger(run_dir).tag(path)
    whole = Tagger(run_dir).tag_waveform(tf.audio.decode_wav(path.read_bytes()).audio.numpy(), rate)
    pcm16 = np.frombuffer(path.read_bytes()[44:], np.int16).reshape(-1, 2)  # canonical 44-byte wav header
    np.testing.assert_allclose(Tagger(run_dir).tag_waveform(pcm16, rate).clip, whole.clip, atol=STREAM_ATOL)
    for result in (streamed, whole_file):
        assert result.taggram.shape == whole.taggram.shape
        np.testing.assert_allclose(result.taggram, whole.taggram, atol=STREAM_ATOL)
        np.testing.assert_allclose(result.embedding, whole.embedding, atol=STREAM_ATOL)
        np.testing.assert_allclose(result.clip, whole.clip, atol=STREAM_ATOL)
        assert result.duration == pytest.approx(2.0, abs=1e-6)


def test_parallel_streaming_readers_do_not_mix_files(run_dir, songs):
    """tensorflow-io misreads with two AudioIOTensors alive at once: streamed files in parallel workers must
    still each get their own samples (the Tagger serialises streamed readers)."""
    root, files = songs
    paths = [files["low"], files["high"], files["high_ogg"]] * 3
    tagger = Tagger(run_dir, segment_seconds=0.2, chunk_windows=2, whole_file_max_bytes=0)
    expected = [tagger.tag(p).taggram for p in paths[:3]] * 3
    for result, want in zip(tagger.tag_many(paths, workers=3), expected):
        np.testing.assert_allclose(result.taggram, want, atol=STREAM_ATOL)


def test_window_count_covers_the_whole_file(tagger, tmp_path):
    window = tagger.spec.window
    short = tagger.tag(fx.write(tmp_path / "short.wav", fx.tone(fx.LOW_HZ, 0.05, 16000), 16000))
    assert short.taggram.shape == (1, len(tagger.tags))  # 800 samples < one 2187-sample window: zero-padded
    n = int(2.5 * window)
    longer = tagger.tag(fx.write(tmp_path / "long.wav", fx.tone(fx.LOW_HZ, n / 16000, 16000), 16000))
    assert longer.taggram.shape[0] == 3 == longer.embedding.shape[0]
    exact = fx.write(tmp_path / "exact.wav", fx.tone(fx.LOW_HZ, 4 * window / 16000, 16000), 16000)
    for chunk in (2, 3, 4, 32):  # chunk boundaries at, before and after the end of the file: no extra window
        assert (
            Tagger.from_keras(*_model_and_tags(tagger), chunk_windows=chunk).tag(exact).taggram.shape[0] == 4
        )
    # the padded last window is the file's tail followed by zeros
    decoded = tf.audio.decode_wav((tmp_path / "long.wav").read_bytes()).audio.numpy()[:, 0]
    last = tail_padded_windows(decoded, window).numpy()[-1]
    assert np.all(last[n - 2 * window :] == 0) and np.any(last[: n - 2 * window] != 0)


@pytest.mark.parametrize("context", [0, 256])
def test_streamed_window_chunks_carry_each_windows_context(tagger, context):
    """The streamed cutter (pieces of any length, windows with the ``context`` samples before each, as
    musicnn's tagger reads them) gives the windows of the whole clip at once (audio.tail_padded_windows)."""
    from hvd_magtag.tag.stream import Reader

    reader = Reader(tagger.module, tagger.spec, segment_seconds=1, whole_file_max_bytes=0, chunk_windows=3)
    reader.context = context
    window = tagger.spec.window
    x = np.random.default_rng(0).standard_normal(7 * window + 123).astype(np.float32)
    bounds = [0, 100, 100, 2 * window + 7, 5 * window, x.size]  # pieces shorter, longer, empty, exact
    pieces = ((x[lo:hi], (hi - lo) / 16000) for lo, hi in zip(bounds, bounds[1:]))
    chunks = list(reader._chunks_of(pieces))
    assert [len(w) for w, _ in chunks] == [3, 3, 2]
    assert sum(s for _, s in chunks) == pytest.approx(x.size / 16000)
    whole = tail_padded_windows(x, window, context).numpy()
    np.testing.assert_array_equal(np.concatenate([w for w, _ in chunks]), whole)


def _model_and_tags(tagger: Tagger):
    return tagger.module.model, tagger.tags


def test_every_format_gives_the_same_tags(tagger, tmp_path):
    x = fx.tone(fx.HIGH_HZ, 1.0, 44100)
    clips = {
        fmt: tagger.tag(fx.write(tmp_path / f"x.{fmt}", x, 44100)).clip
        for fmt in ("mp3", "wav", "flac", "ogg")
    }
    for fmt, clip in clips.items():
        np.testing.assert_allclose(clip, clips["wav"], atol=CROSS_FORMAT_ATOL, err_msg=fmt)


def test_python_api_mirrors_the_cli(run_dir, songs, capsys):
    root, files = songs
    top = hvd_magtag.top_tags(files["low"], model=run_dir, top_k=2)
    assert len(top) == 2 and top[0][1] >= top[1][1] and all(0.0 <= p <= 1.0 for _, p in top)
    assert main([str(files["low"]), "--model", str(run_dir), "--top-k", "2", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(t["tag"], t["prob"]) for t in doc["files"][0]["top"]] == [(t, round(p, 6)) for t, p in top]
    tags, grid = hvd_magtag.taggram(files["low"], model=run_dir)
    assert tags == fx.TAGS and grid.shape[1] == len(fx.TAGS) and grid.shape[0] >= 8  # 1.2 s / 0.137 s windows
    emb = hvd_magtag.embed(files["low"], model=run_dir)
    assert emb["windows"].shape[0] == grid.shape[0] and emb["clip"].shape == emb["windows"].shape[1:]
    np.testing.assert_allclose(emb["clip"], emb["windows"].mean(0), atol=1e-6)


def test_cli_json_schema_and_a_corrupt_file_in_a_folder(run_dir, songs, tmp_path, capsys):
    root, files = songs
    out = tmp_path / "tags.json"
    code = main([str(root), "--model", str(run_dir), "--top-k", "3", "--format", "json", "--out", str(out)])
    assert code == 1  # corrupt.mp3 and empty.wav failed, the others were tagged
    doc = json.loads(out.read_text())
    assert set(doc) == {"schema", "model", "tags", "top_k", "files"}
    assert doc["schema"] == 1 and doc["tags"] == fx.TAGS and doc["top_k"] == 3
    assert doc["model"] == str(run_dir)
    by_name = {entry["path"].split("/")[-1]: entry for entry in doc["files"]}
    assert sorted(by_name) == ["corrupt.mp3", "empty.wav", "high.flac", "high.ogg", "low.mp3"]  # no notes.txt
    for entry in doc["files"]:
        assert set(entry) == {"path", "duration", "top", "error"}
    for name in ("low.mp3", "high.flac", "high.ogg"):
        entry = by_name[name]
        assert entry["error"] is None and len(entry["top"]) == 3 and entry["duration"] > 0.8
        probs = [t["prob"] for t in entry["top"]]
        assert probs == sorted(probs, reverse=True) and all(0 <= p <= 1 for p in probs)
        assert {t["tag"] for t in entry["top"]} == set(fx.TAGS)
    assert by_name["low.mp3"]["top"][0]["tag"] == "low" and by_name["high.flac"]["top"][0]["tag"] == "high"
    for bad in ("corrupt.mp3", "empty.wav"):
        assert by_name[bad]["top"] == [] and by_name[bad]["duration"] is None
        assert isinstance(by_name[bad]["error"], str) and "\n" not in by_name[bad]["error"]
    # the reason, not TF's graph context
    assert by_name["corrupt.mp3"]["error"].endswith(  # the manifest's reason (audio.file_problem)
        "corrupt.mp3: garbage: no MPEG audio frames found"
    )
    assert "empty file" in by_name["empty.wav"]["error"]
    err = capsys.readouterr().err
    assert "corrupt.mp3" in err and "empty.wav" in err and "2 of 5" in err


def test_cli_csv_and_table(run_dir, songs, capsys):
    root, files = songs
    bad = root / "sub" / "corrupt.mp3"
    assert (
        main([str(files["low"]), str(bad), "--model", str(run_dir), "--top-k", "2", "--format", "csv"]) == 1
    )
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["rank"] for r in rows] == ["1", "2", ""]
    assert rows[0]["path"] == str(files["low"]) and rows[0]["tag"] == "low" and rows[0]["error"] == ""
    assert rows[2]["path"] == str(bad) and rows[2]["error"]
    assert main([str(files["low"]), "--model", str(run_dir), "--top-k", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith(str(files["low"])) and table[1].split()[0] == "low" and len(table) == 3


def test_missing_model_no_audio_and_bad_options_exit_with_the_documented_codes(songs, tmp_path, capsys):
    root, files = songs
    assert main([str(files["low"]), "--model", str(tmp_path / "no_such_run")]) == 4  # not a run directory
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_run" in err[0] and "model not found" in err[0]
    (tmp_path / "plain").mkdir()
    assert main([str(files["low"]), "--model", str(tmp_path / "plain")]) == 4
    assert "run.json" in capsys.readouterr().err
    assert main([str(tmp_path / "plain"), "--model", str(tmp_path / "plain")]) == 3  # no audio files in there
    with pytest.raises(SystemExit) as exc:
        main([str(files["low"])])  # --model missing
    assert exc.value.code == 2
    with pytest.raises(TaggerError, match="no_such_run"):
        Tagger(tmp_path / "no_such_run")


def test_missing_input_file_is_a_failure_not_a_crash(tagger, songs, tmp_path):
    root, files = songs
    results = tagger.tag_many([tmp_path / "gone.mp3", files["low"]], workers=2)
    assert isinstance(results[0], FileFailure) and "gone.mp3" in results[0].path and results[0].error
    assert results[1].top(1)[0][0] == "low"


def test_tag_many_shares_model_calls_and_matches_single_files(run_dir, songs):
    root, files = songs
    paths = [files["low"], files["high"], files["high_ogg"], files["low"]]
    tagger = Tagger(run_dir, chunk_windows=64)  # several files' windows in one model call
    many = tagger.tag_many(paths, workers=3)
    for path, result in zip(paths, many):
        single = tagger.tag(path)
        assert result.path == str(path)
        np.testing.assert_allclose(result.clip, single.clip, atol=STREAM_ATOL)
        np.testing.assert_allclose(result.taggram, single.taggram, atol=STREAM_ATOL)
        assert result.duration == pytest.approx(single.duration)


def test_export_dir_and_run_dir_tag_alike(run_dir, songs, tmp_path):
    root, files = songs
    exported = Tagger(export_run(run_dir, out=tmp_path / "export"))
    assert exported.backend == "savedmodel" and exported.tags == fx.TAGS
    a, b = exported.tag(files["low"]), Tagger(run_dir).tag(files["low"])
    np.testing.assert_allclose(a.taggram, b.taggram, atol=STREAM_ATOL)
    np.testing.assert_allclose(a.embedding, b.embedding, atol=STREAM_ATOL)


def test_python_m_cli_end_to_end(run_dir, songs):
    """The real entry point: a folder with a corrupt file -> exit 1, the others tagged, progress on stderr."""
    root, files = songs
    proc = subprocess.run(
        [sys.executable, "-m", "hvd_magtag.tag", str(root), "--model", str(run_dir), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert sum(entry["error"] is None for entry in doc["files"]) == 3
    assert "corrupt.mp3" in proc.stderr


def test_bfloat16_inference_equals_float32_within_tolerance(run_dir, tagger, songs, tmp_path):
    root, files = songs
    bf16 = Tagger(run_dir, precision="bfloat16")
    assert bf16.precision == "bfloat16" and bf16.module.model.dtype_policy.compute_dtype == "bfloat16"
    for name in ("low", "high", "high_ogg"):
        want, got = tagger.tag(files[name]), bf16.tag(files[name])
        np.testing.assert_allclose(got.clip, want.clip, atol=BF16_CLIP_ATOL, err_msg=name)
        np.testing.assert_allclose(got.taggram, want.taggram, atol=BF16_WINDOW_ATOL, err_msg=name)
        assert [t for t, _ in got.top(3)] == [t for t, _ in want.top(3)], name
        assert not np.array_equal(got.taggram, want.taggram)  # it really ran in bfloat16
    exported = export_run(run_dir, out=tmp_path / "export")
    with pytest.raises(TaggerError, match="needs a run directory"):
        Tagger(exported, precision="bfloat16")


def test_import_hvd_magtag_does_not_import_tensorflow():
    code = (
        "import sys, hvd_magtag; f = hvd_magtag.top_tags; "
        "assert callable(f) and callable(hvd_magtag.embed) and callable(hvd_magtag.taggram); "
        "assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
