"""SavedModel export: header sample rates, in-graph decode -> tags, and fidelity to the in-memory model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tag_fixtures as fx
import tensorflow as tf

from hvd_magtag import audio, export
from hvd_magtag.export import export_run
from hvd_magtag.models.names import WINDOW_ENCODER
from hvd_magtag.rundir import RunDir
from hvd_magtag.serving import BATCH_WINDOWS, header_sample_rate, tagging_module

#: export vs in-memory Keras model on the same input: float32 graph vs the same graph reloaded. Both run
#: identical ops on identical weights; the slack covers kernel selection differences only.
EXPORT_ATOL = 1e-5


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return fx.trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = export_run(run_dir, out=tmp_path_factory.mktemp("export") / "export")
    return out, tf.saved_model.load(str(out))


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
@pytest.mark.parametrize("fmt", ["mp3", "wav", "flac", "ogg"])
def test_header_sample_rate_reads_every_format(fmt, rate):
    if fmt == "ogg" and rate < 32000:
        pytest.skip("tensorflow-io's Vorbis encoder rejects rates below 32 kHz")
    data = fx.encode(fx.tone(440.0, 0.2, rate), rate, fmt)
    got = tf.function(header_sample_rate)(tf.constant(data), tf.constant(fmt.upper()))
    assert int(got) == rate


def test_header_sample_rate_skips_an_id3_tag_and_rejects_garbage():
    mp3 = fx.encode(fx.tone(440.0, 0.2, 22050), 22050, "mp3")
    # ID3v2.3 header: "ID3", version 3.0, no flags, syncsafe size 300 (2*128 + 44), then 300 bytes of frames
    # that contain a false sync pattern (0xFF 0xFB ...) which must be skipped with the tag.
    body = (b"\xff\xfb\x90\xc4" + b"\x00" * 96) * 3
    tagged = b"ID3\x03\x00\x00\x00\x00\x02\x2c" + body + mp3
    assert int(header_sample_rate(tf.constant(tagged), tf.constant("mp3"))) == 22050
    with pytest.raises(tf.errors.InvalidArgumentError):
        header_sample_rate(tf.constant(b"\x00" * 4000), tf.constant("mp3"))
    with pytest.raises(tf.errors.InvalidArgumentError):
        header_sample_rate(tf.constant(mp3), tf.constant("aiff"))


def test_export_carries_tags_and_spec(run_dir, exported):
    path, loaded = exported
    run = RunDir(run_dir)
    assert (path / export.SAVED_MODEL_FILE).is_file()
    assert [t.decode() for t in loaded.tags.numpy()] == run.tags
    assert json.loads(loaded.spec_json.numpy().decode()) == run.spec.to_dict()
    meta = loaded.signatures["metadata"]()
    assert [t.decode() for t in meta["tags"].numpy()] == run.tags
    assert set(loaded.signatures) >= {
        "from_bytes",
        "from_waveform",
        "predict_windows",
        "prepare",
        "serving_default",
    }


def test_export_predicts_what_the_in_memory_model_predicts(run_dir, exported):
    _, loaded = exported
    run = RunDir(run_dir)
    model = run.load_model("best")
    memory = tagging_module(model, run.spec, run.tags)
    stereo = np.stack([fx.tone(fx.LOW_HZ, 0.7, 44100), fx.tone(fx.HIGH_HZ, 0.7, 44100, seed=1)], axis=1)
    mp3 = fx.encode(stereo, 44100, "mp3")
    a = memory.from_bytes(tf.constant(mp3), tf.constant("mp3"))
    b = loaded.signatures["from_bytes"](contents=tf.constant(mp3), format=tf.constant("mp3"))
    for key in ("clip", "taggram", "embedding"):
        np.testing.assert_allclose(b[key].numpy(), a[key].numpy(), atol=EXPORT_ATOL, err_msg=key)
    # the windows really are the model's: taggram rows = model(window) on the decoded, resampled audio
    decoded = tf.audio.decode_wav(fx.encode(stereo, 44100, "wav")).audio
    via_waveform = loaded.from_waveform(decoded, tf.constant(44100))
    mono = memory.prepare(decoded, tf.constant(44100))["waveform"]
    windows = audio.tail_padded_windows(mono, run.spec.window)
    np.testing.assert_allclose(
        via_waveform["taggram"].numpy(), model(windows, training=False).numpy(), atol=EXPORT_ATOL
    )
    np.testing.assert_allclose(
        via_waveform["clip"].numpy(), via_waveform["taggram"].numpy().mean(0), atol=1e-6
    )


def test_batched_windows_equal_one_call(run_dir):
    """The graph's batching (BATCH_WINDOWS per model call, padded last batch) changes nothing."""
    run = RunDir(run_dir)
    model = run.load_model("best")
    n = BATCH_WINDOWS * 2 + 3
    windows = np.random.default_rng(0).standard_normal((n, run.spec.window)).astype(np.float32) * 0.3
    out = tagging_module(model, run.spec, run.tags).predict_windows(windows)
    assert out["taggram"].shape == (n, len(run.tags))
    np.testing.assert_allclose(
        out["taggram"].numpy(), model(windows, training=False).numpy(), atol=EXPORT_ATOL
    )


def test_superpool_export_windows_and_groups(tmp_path):
    run_dir = fx.make_run(
        tmp_path / "sp", model="samplecnn_superpool", overrides={"m": 3, "n": 4, "width": 0.05}, train_steps=0
    )
    run = RunDir(run_dir)
    spec, model = run.spec, run.load_model()
    g = spec.n_windows
    windows = np.random.default_rng(1).standard_normal((g + 2, spec.window)).astype(np.float32) * 0.3
    loaded = tf.saved_model.load(str(export_run(run_dir)))
    out = {k: v.numpy() for k, v in loaded.predict_windows(windows).items()}
    # clip: mean over groups of n_windows consecutive windows; the last group topped up from the start
    groups = np.stack([windows[:g], windows[np.arange(g, 2 * g) % len(windows)]])
    np.testing.assert_allclose(out["clip"], model(groups, training=False).numpy().mean(0), atol=EXPORT_ATOL)
    # taggram row i: the model on window i alone (repeated n_windows times: pooling of identical embeddings)
    alone = np.repeat(windows[:2, None], g, axis=1)
    np.testing.assert_allclose(out["taggram"][:2], model(alone, training=False).numpy(), atol=EXPORT_ATOL)
    encoder = model.get_layer(WINDOW_ENCODER)
    np.testing.assert_allclose(out["embedding"], encoder(windows, training=False).numpy(), atol=EXPORT_ATOL)
    # the Python Tagger on a file (one chunk of whole groups) gives the exported from_bytes result
    from hvd_magtag.tag import Tagger

    tagger = Tagger(run_dir)
    assert tagger.chunk_windows % g == 0
    wav = fx.write(tmp_path / "sp.wav", fx.tone(fx.LOW_HZ, (2 * g + 3) * spec.window / 16000, 16000), 16000)
    got = tagger.tag(wav)
    want = loaded.from_bytes(tf.constant(wav.read_bytes()), tf.constant("wav"))
    assert got.taggram.shape == (2 * g + 3, len(run.tags))
    np.testing.assert_allclose(got.clip, want["clip"].numpy(), atol=EXPORT_ATOL)


def test_fbank_model_export_computes_features_in_graph(tmp_path):
    # shortchunk_cnn pools 2x2 seven times: >= 128 frames of hop 256 -> 33024 samples (2.06 s at 16 kHz)
    run_dir = fx.make_run(tmp_path / "fb", model="shortchunk_cnn", overrides={"window": 33024, "width": 0.05})
    run = RunDir(run_dir)
    model = run.load_model()
    loaded = tf.saved_model.load(str(export_run(run_dir, weights="best")))
    wave = fx.tone(fx.LOW_HZ, 2.5, 16000)
    out = loaded.from_waveform(wave[:, None], tf.constant(16000))
    assert out["taggram"].shape == (2, len(run.tags))  # 2.5 s -> 2 windows of 2.06 s, the second padded
    from hvd_magtag.features import features_for

    windows = audio.tail_padded_windows(tf.constant(wave), run.spec.window)
    expected = model(features_for(run.spec)(windows), training=False).numpy()
    np.testing.assert_allclose(out["taggram"].numpy(), expected, atol=EXPORT_ATOL)


def test_export_cli_errors_are_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "hvd_magtag.export", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 4  # not a run directory (hvd_magtag.cli.EXIT_RUN_DIR)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "nope" in lines[0], proc.stderr
