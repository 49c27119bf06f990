"""Every kind of file a music library holds (tests/fixtures/audio: real lame / ffmpeg / flac / sox / oggenc /
opusenc output): the manifest accepts the usable ones with the decoder the table gives, their decode matches
an independent decoder (ffmpeg, reference numbers in fixtures.json), and the unusable ones get their reason."""

from __future__ import annotations

import audio_fixtures as afx
import numpy as np
import pytest

from hvd_magtag import audio
from hvd_magtag.audio import formats
from hvd_magtag.data import manifest as mf

USABLE = afx.names(usable=True)
UNUSABLE = afx.names(usable=False)

#: Decoded waveform vs ffmpeg's float32 decode of the same file: the excerpt (every 97th frame of the first
#: 19,400, channel mean) and per-channel RMS / peak agree within this, absolute, on a [-1, 1] scale. Lossless
#: files and mp3 agree to float32 / int rounding (~1e-6: different decoders' int->float scaling and
#: mp3 synthesis arithmetic); AAC decoders differ a little more (measured: up to ~1e-5 here).
REFERENCE_ATOL = 1e-4
#: Vorbis and Opus decoders (libvorbis / libopus through libsndfile vs FFmpeg's native ones): measured up to
#: ~3e-4 (Vorbis float synthesis) here.
LOSSY_ATOL = 2e-3
#: Frame counts may differ by the codec priming a decoder trims (Opus pre-skip, AAC priming in an edit list).
FRAME_SLACK = 2048


def _reference(name):
    return afx.catalog()["files"][name]["reference"]


def test_one_table_of_formats():
    """The folder catalog, the manifest and tag read the same suffixes; every format has a Python decoder."""
    from hvd_magtag.data import AUDIO_SUFFIXES
    from hvd_magtag.tag.inputs import extensions

    assert AUDIO_SUFFIXES == formats.AUDIO_SUFFIXES
    assert sorted(s.lstrip(".") for s in AUDIO_SUFFIXES) == extensions()
    assert {".oga", ".opus", ".aiff", ".m4a", ".wav", ".flac", ".mp3"} <= set(AUDIO_SUFFIXES)
    assert all(f.python in formats.PYTHON_DECODERS for f in formats.TABLE)
    assert all(f.graph in ("", *formats.GRAPH_DECODERS) for f in formats.TABLE)
    from hvd_magtag import export, serving  # the one MPEG rate table: audio.formats.MPEG_RATES

    assert not any(hasattr(m, n) for m in (export, serving, mf) for n in ("_MPEG_RATES", "_MP3_RATES"))


@pytest.mark.parametrize("name", USABLE)
def test_usable_files_decode_like_ffmpeg(name):
    ref = _reference(name)
    info = mf.inspect_file(afx.path(name))
    assert info.ok, info.reason
    assert (info.rate, info.channels) == (ref["rate"], ref["channels"])
    entry = formats.BY_SUFFIX[afx.path(name).suffix.lower()]
    assert info.decoder in (entry.graph, entry.python) and info.decoder
    if info.decoder in formats.GRAPH_DECODERS:
        import tensorflow as tf

        x = audio.decode(tf.constant(afx.path(name).read_bytes()), info.decoder).numpy()
    else:
        x, rate = audio.decode_file(afx.path(name), info.decoder)
        assert rate == ref["rate"]
    assert x.dtype == np.float32 and x.shape == (info.samples, ref["channels"])
    assert abs(len(x) - ref["frames"]) <= FRAME_SLACK, (len(x), ref["frames"])
    lossy = entry.name in ("ogg", "opus", "m4a") and "alac" not in name
    tol = LOSSY_ATOL if lossy and entry.name != "m4a" else REFERENCE_ATOL
    if lossy:  # priming/pre-skip handling may shift lossy decodes: compare loudness, not the excerpt
        np.testing.assert_allclose(np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=0)), ref["rms"], atol=tol)
        return
    mono = x.astype(np.float64).mean(axis=1)
    excerpt = mono[: ref["excerpt_step"] * len(ref["excerpt"]) : ref["excerpt_step"]]
    np.testing.assert_allclose(excerpt, ref["excerpt"], atol=tol)
    np.testing.assert_allclose(np.sqrt(np.mean(x.astype(np.float64) ** 2, axis=0)), ref["rms"], atol=tol)
    np.testing.assert_allclose(np.max(np.abs(x), axis=0), ref["peak"], atol=tol)


def test_graph_decoders_take_what_the_table_says():
    """16-bit WAV / FLAC, Vorbis and mp3 decode in the graph; 8/24/32-bit, float, extensible WAV, 24/32-bit
    FLAC, Opus, AIFF and M4A in Python."""
    chosen = {name: mf.inspect_file(afx.path(name)).decoder for name in USABLE}
    assert {n for n, d in chosen.items() if d in formats.GRAPH_DECODERS} == {
        n for n in USABLE
        if n.startswith(("mp3/", "ogg/vorbis"))
        or n in ("wav/pcm16_16k_mono.wav", "wav/pcm16_22k_stereo.wav", "flac/flac16_22k_stereo.flac")
    }  # fmt: skip
    assert (
        chosen["m4a/aac_lc_128k_44k_stereo.m4a"] == "av" and chosen["wav/pcm24_22k_stereo.wav"] == "soundfile"
    )


#: What the manifest must say about each unusable fixture (its reason, in part).
UNUSABLE_REASONS = {
    "bad/aac_renamed.mp3": "garbage: named .mp3 but the bytes are AAC (ADTS); rename it to .aac",
    "bad/empty.flac": "empty: 0 bytes",
    "bad/encrypted_aac.m4a": "garbage: encrypted (DRM-protected) audio",
    "bad/garbage.ogg": "garbage: no Ogg page at the start",
    "bad/html.m4a": "garbage: ",
    "bad/id3_only.mp3": "garbage: no MPEG audio frames found",
    "bad/rate_changes.mp3": "garbage: sample rate changes from 16000 Hz to 44100 Hz",
    "bad/truncated.flac": "truncated: ",
    "bad/truncated.mp3": "truncated: last MP3 frame is cut",
}


@pytest.mark.parametrize("name", UNUSABLE)
def test_unusable_files_get_a_one_line_reason(name):
    info = mf.inspect_file(afx.path(name))
    assert not info.ok
    assert info.status == afx.catalog()["files"][name]["bad"]
    assert info.reason.startswith(UNUSABLE_REASONS[name]), info.reason
    assert "\n" not in info.reason and len(info.reason) < 200


def test_training_and_evaluation_read_every_usable_kind():
    """One pipeline over all usable fixtures (graph- and Python-decoded files mixed): training batches and a
    full evaluation pass; a Python-decoded clip's waveform is its ``decode_file`` decode resampled."""
    import tensorflow as tf

    from hvd_magtag.data import pipeline
    from hvd_magtag.data.catalog import Clip
    from hvd_magtag.models.registry import get_spec

    spec = get_spec("samplecnn", n=6)  # 2187-sample windows at 16 kHz
    paths = [str(afx.path(n)) for n in USABLE]
    manifest = mf.Manifest(mf.scan(paths, workers=2))
    clips = [Clip(f"c{i}", p, np.eye(2, dtype=np.float32)[i % 2], "train") for i, p in enumerate(paths)]
    ds = pipeline.train_dataset(clips, spec, batch_size=8, manifest=manifest, threads=2)
    for x, _ in ds.take(2 * pipeline.steps_per_epoch(len(clips), 8)):
        assert x.shape == (8, *spec.input_shape()) and np.all(np.isfinite(x.numpy()))
    seen = set()
    for x, _, index in pipeline.eval_dataset(clips, spec, windows=2, batch_size=16, manifest=manifest):
        assert np.all(np.isfinite(x.numpy()))
        seen.update(index.numpy().tolist())
    assert seen == set(range(len(clips)))
    table = pipeline.ClipTable(clips, manifest)
    i = paths.index(str(afx.path("m4a/alac_24bit_48k_stereo.m4a")))
    samples, rate = audio.decode_file(paths[i])
    expected = audio.resample(audio.to_mono(samples), rate, spec.sample_rate).numpy()
    np.testing.assert_array_equal(
        table.waveform(tf.constant(i, tf.int64), spec.sample_rate).numpy(), expected
    )


#: mp3 fixtures whose length libsndfile cannot know in advance (a CBR stream without a Xing/Info header:
#: it estimates from the file size), so ``decode_mp3_fast`` hands them to the in-graph decoder.
MP3_NO_LENGTH_HEADER = {"mp3/ffmpeg_cbr128_44k_stereo_plain.mp3"}


@pytest.mark.parametrize("name", afx.names("mp3/"))
def test_fast_mp3_decode_gives_the_in_graph_decoders_samples_or_declines(name):
    """``audio.decode_mp3_fast`` (libsndfile's mpg123, what ``tag`` uses for whole mp3 files) returns the same
    number of samples as tensorflow-io's minimp3 and the same samples within 1e-6 on every LAME / FFmpeg
    fixture, or None (then the graph decodes) where the file's frames and libsndfile's count disagree."""
    import tensorflow as tf

    data = afx.path(name).read_bytes()
    graph = audio.decode(tf.constant(data), "mp3").numpy()
    fast = audio.decode_mp3_fast(afx.path(name), data)
    if name in MP3_NO_LENGTH_HEADER:
        assert fast is None
        return
    assert fast is not None, "mpg123's samples were not taken"
    x, rate = fast
    assert rate == mf.mp3_layout(data).rate and x.dtype == np.float32
    assert x.shape == graph.shape
    np.testing.assert_allclose(x, graph, rtol=0, atol=1e-6)


def test_fast_mp3_decode_declines_a_vbr_stream_without_a_xing_header(tmp_path):
    """libsndfile reads such a stream short (it estimates the length from the first frame's bit rate): the
    frame count disagrees, so the fast path declines rather than return a truncated clip."""
    import tensorflow as tf
    import tensorflow_io as tfio

    x = np.random.default_rng(0).uniform(-0.3, 0.3, (16000 * 5, 1)).astype(np.float32)
    path = tmp_path / "vbr.mp3"
    path.write_bytes(tfio.audio.encode_mp3(tf.constant(x), rate=16000).numpy())
    data = path.read_bytes()
    import soundfile as sf

    assert sf.info(str(path)).frames != audio.decode(tf.constant(data), "mp3").shape[0]  # the trap is real
    assert audio.decode_mp3_fast(path, data) is None
