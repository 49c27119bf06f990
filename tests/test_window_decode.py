"""MP3 training windows decoded from a slice of the file (``audio.mp3_random_window``, ``data.window_decode``):
exact excerpts of the whole-file decode, spread over the clip, deterministic, with the documented
fallbacks; and the training pipeline using them when the manifest knows the files' lengths."""

from __future__ import annotations

import audio_fixtures as afx
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_io as tfio

from hvd_magtag import audio
from hvd_magtag.data import manifest as mf


def _mp3(
    tmp_path, seconds: float, rate: int, channels: int = 1, seed: int = 0, name: str = "clip", cutoff=None
):
    """(path, whole-file decode [samples, channels]) of a noise-like mp3 (unique cross-correlation peak),
    band-limited to ``cutoff`` Hz when given."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    x = 0.2 * rng.standard_normal((n, channels))
    if cutoff:
        spectrum = np.fft.rfft(x, axis=0)
        spectrum[np.fft.rfftfreq(n, 1 / rate) > cutoff] = 0
        x = np.fft.irfft(spectrum, n, axis=0) * np.sqrt(rate / 2 / cutoff)
    x = x.astype(np.float32)
    path = tmp_path / f"{name}{rate}x{channels}.mp3"
    tf.io.write_file(str(path), tfio.audio.encode_mp3(tf.constant(x), rate=rate))
    return str(path), audio.decode(tf.io.read_file(str(path)), "mp3").numpy()


def _locate(full: np.ndarray, window: np.ndarray) -> int:
    """Start of ``window`` inside ``full`` (both 1-D) by cross-correlation of a 2,000-sample probe."""
    probe = window[1000:3000]
    corr = np.correlate(full, probe, "valid")
    return int(np.argmax(corr)) - 1000


def _window(contents, samples, rate_in, rate_out, window, seed):
    fn = tf.function(audio.mp3_random_window)
    return fn(contents, tf.constant(samples, tf.int64), rate_in, rate_out, window,
              tf.constant(seed, tf.int64)).numpy()  # fmt: skip


def test_sliced_window_is_an_exact_excerpt_of_the_whole_decode_and_spans_the_clip(tmp_path):
    path, full = _mp3(tmp_path, 20.0, 16000)
    mono = full[:, 0]
    contents = tf.io.read_file(path)
    window, starts, index = 16000, [], afx.ExcerptIndex(mono)
    for s in range(24):
        w = _window(contents, len(mono), 16000, 16000, window, [7, s])
        start = index.locate(w)
        assert start >= 0  # bit-identical: no resampling
        starts.append(start)
    starts = np.array(starts) / (len(mono) - window)
    assert starts.min() < 0.25 and starts.max() > 0.75, starts  # windows come from all over the clip
    assert len(set(starts)) > 20
    again = _window(contents, len(mono), 16000, 16000, window, [7, 3])
    np.testing.assert_array_equal(again, _window(contents, len(mono), 16000, 16000, window, [7, 3]))


def test_sliced_window_of_a_resampled_stereo_file_matches_the_whole_file_path(tmp_path):
    # band-limited well below 8 kHz: the 16 kHz resampler then aliases nothing, so the two sample grids
    # differ by a pure fractional delay
    path, full = _mp3(tmp_path, 12.0, 44100, channels=2, cutoff=5000)
    reference = audio.resample(audio.to_mono(tf.constant(full)), 44100, 16000).numpy()
    contents = tf.io.read_file(path)
    for s in range(4):
        w = _window(contents, full.shape[0], 44100, 16000, 8000, [1, s])
        start = _locate(reference, w)
        ref = reference[start : start + 8000]
        # the slice's sample grid is offset from the whole file's by a fraction of a sample (the slice starts
        # at a frame boundary, not at a multiple of 441 input samples): undo the best fractional delay
        spectrum, bins = np.fft.rfft(w), np.fft.rfftfreq(len(w))
        errs = []
        for delay in np.linspace(-0.6, 0.6, 61):
            shifted = np.fft.irfft(spectrum * np.exp(-2j * np.pi * bins * delay), len(w))
            core = slice(1000, 7000)
            errs.append(np.sqrt(np.mean((shifted[core] - ref[core]) ** 2) / np.mean(ref[core] ** 2)))
        assert min(errs) < 0.05, min(errs)


def test_fallbacks_decode_the_whole_file(tmp_path):
    path, full = _mp3(tmp_path, 3.0, 16000)
    mono = full[:, 0]
    contents = tf.io.read_file(path)
    # a window that is most of the clip, and an unknown length: the whole-file crop (start snapped to align)
    for samples in (len(mono), 0):
        w = tf.function(audio.mp3_random_window)(
            contents, tf.constant(samples, tf.int64), 16000, 16000, 32000, tf.constant([0, 5], tf.int64), 256
        ).numpy()
        expected = audio.random_window(tf.constant(mono), 32000, tf.constant([0, 5], tf.int64), 256).numpy()
        np.testing.assert_array_equal(w, expected)
    # a length that claims far more samples than the file has: slices decode too short -> whole file
    w = _window(contents, 20 * len(mono), 16000, 16000, 16000, [0, 1])
    assert afx.ExcerptIndex(mono).locate(w) >= 0


def test_training_pipeline_uses_slices_when_the_manifest_knows_lengths(tmp_path):
    from hvd_magtag.data import examples, pipeline
    from hvd_magtag.data.catalog import Clip
    from hvd_magtag.data.manifest import Manifest, scan
    from hvd_magtag.models.registry import get_spec

    spec = get_spec("samplecnn", n=6)  # 3^7 = 2187-sample windows
    clips, wholes = [], {}
    for i in range(4):
        path, full = _mp3(tmp_path, 6.0, spec.sample_rate, seed=i, name=f"c{i}_")
        clips.append(Clip(f"c{i}", path, np.eye(4, dtype=np.float32)[i], "train"))
        wholes[path] = full[:, 0]
    manifest = Manifest(scan([c.path for c in clips], workers=1))
    table = examples.ClipTable(clips, manifest)
    assert table.samples.numpy().tolist() == [len(wholes[c.path]) for c in clips]
    ranges = [manifest.audio_range(c.path) for c in clips]
    assert list(zip(table.audio_start.numpy(), table.audio_end.numpy())) == ranges
    assert all(0 <= a < b for a, b in ranges)

    def first_batch(**kwargs):
        ds = pipeline.train_dataset(
            clips, spec, batch_size=4, manifest=manifest, deterministic=True, **kwargs
        )
        return next(iter(ds))

    x, y = first_batch()
    x_whole, y_whole = first_batch(window_decode=False)
    np.testing.assert_array_equal(y.numpy(), y_whole.numpy())
    np.testing.assert_array_equal(x.numpy(), first_batch()[0].numpy())  # deterministic
    for row, label in zip(x.numpy(), y.numpy()):
        full = wholes[clips[int(np.argmax(label))].path]
        assert afx.ExcerptIndex(full).locate(row) >= 0
    assert not np.array_equal(x.numpy(), x_whole.numpy())  # a different (equally valid) crop


# -- real encoder output (tests/fixtures/audio: LAME / FFmpeg, Info/Xing frames, ID3 tags, APIC pictures) ----

#: Random seeds per file of the main LAME / FFmpeg cases (Info/Xing frames, with and without ID3 tags, APIC
#: pictures, CBR and VBR): slice decoding must never raise and always give exact excerpts. The other mp3
#: fixtures (MPEG-2/2.5, 320 kbit/s, ABR, no header frame) get SEEDS_OTHER.
SEEDS, SEEDS_OTHER = 5000, 500
MAIN_CASES = (
    "mp3/lame_cbr128_44k_stereo_apic.mp3",
    "mp3/lame_vbr_v2_44k_stereo_apic.mp3",
    "mp3/ffmpeg_cbr32_16k_mono_id3v24.mp3",
    "mp3/ffmpeg_vbr_q4_44k_stereo_apic.mp3",
)
REAL_MP3 = afx.names("mp3/")
#: Window length (samples) of these tests: short windows keep 5,000 slice decodes per file to seconds; the
#: slice logic does not depend on it (slices are sized from it).
WINDOW = 4096


def _windows(contents, info, window, seeds, audio_range=None, check=None):
    """Paths [seeds] of ``audio.mp3_window_and_path`` over seeds ``[9, 0..seeds)`` at the file's own rate,
    through tf.data (2 parallel calls; any error would end the test); each batch of windows goes to
    ``check(first_seed, windows)`` (not kept: 5,000 windows of 59,049 samples are 1.2 GB)."""
    start, end = audio_range if audio_range is not None else (info.audio_start, info.audio_end)

    def one(s):
        return audio.mp3_window_and_path(
            contents, tf.constant(info.samples, tf.int64), info.rate, info.rate, window,
            tf.stack([tf.constant(9, tf.int64), s]), 1, start, end,
        )  # fmt: skip

    ds = tf.data.Dataset.range(seeds).map(one, num_parallel_calls=2, deterministic=True).batch(250)
    paths, first = [], 0
    for windows, batch_paths in ds.as_numpy_iterator():
        if check is not None:
            check(first, windows)
        paths.append(batch_paths)
        first += len(windows)
    return np.concatenate(paths)


class _Excerpts:
    """Checks windows are exact excerpts of ``full`` and keeps their starts."""

    def __init__(self, full):
        self.index, self.starts = afx.ExcerptIndex(full), []

    def __call__(self, first, windows):
        starts = [self.index.locate(w) for w in windows]
        bad = [first + i for i, s in enumerate(starts) if s < 0]
        assert not bad, (
            f"{len(bad)} windows are not exact excerpts of the whole-file decode (seeds {bad[:10]})"
        )
        self.starts += starts


@pytest.mark.parametrize("name", REAL_MP3)
def test_manifest_finds_the_audio_frames_of_real_encodes(name):
    data = afx.path(name).read_bytes()
    info = mf.inspect_file(afx.path(name))
    assert info.ok, info.reason
    layout = mf.mp3_layout(data)
    assert layout.tags_end <= layout.first <= info.audio_start < info.audio_end <= layout.trailing_start
    assert info.audio_start in layout.frames and info.audio_end in layout.frames  # whole frames
    if layout.header in ("Xing", "Info"):
        assert info.audio_start > layout.first  # the header frame is left out
    if "apic" in name:
        assert layout.tags_end > 50_000 and data[10:200].find(b"APIC") >= 0  # the picture precedes the audio
    full = audio.decode(tf.constant(data), "mp3")
    assert info.samples == full.shape[0]
    # the frames of the range decode, after the warm-up, to an exact excerpt of the whole-file decode
    part = audio.decode(tf.constant(data[info.audio_start : info.audio_end]), "mp3")
    mono, part_mono = audio.to_mono(full).numpy(), audio.to_mono(part).numpy()
    tail = part_mono[audio.MP3_WARMUP_SAMPLES :]
    assert afx.ExcerptIndex(mono).locate(tail) >= 0


@pytest.mark.parametrize("name", REAL_MP3)
def test_slice_windows_of_real_encodes_never_raise_and_are_exact_excerpts(name):
    """Thousands of random windows of every LAME / FFmpeg fixture: no error, each bit-identical to a stretch
    of the whole-file decode, nearly all from slices (the fallbacks are whole-file decodes: exact too)."""
    info = mf.inspect_file(afx.path(name))
    contents = tf.constant(afx.path(name).read_bytes())
    full = audio.to_mono(audio.decode(contents, "mp3")).numpy()
    excerpts = _Excerpts(full)
    paths = _windows(contents, info, WINDOW, SEEDS if name in MAIN_CASES else SEEDS_OTHER, check=excerpts)
    assert np.mean(paths == audio.MP3_PATH_SLICE) > 0.97, np.bincount(paths)
    assert not np.any(paths == audio.MP3_PATH_FAILED), np.bincount(paths)
    # the windows cover the clip from the end of the warm-up to its end
    starts = np.array(excerpts.starts)
    assert starts.min() < audio.MP3_WARMUP_SAMPLES + 0.05 * len(full)
    assert starts.max() + WINDOW > 0.95 * len(full)


def test_the_issues_29s_ffmpeg_clip_with_a_samplecnn_window():
    """The issue's case: `mp3_random_window(contents, 464000, 16000, 16000, 59049, seed)` on a 29 s 16 kHz
    mono FFmpeg file (ID3v2.4 tag + Info frame) raised `read 464000 from 0 failed` for slices starting at
    the file's first bytes."""
    name = "mp3/ffmpeg_cbr32_16k_mono_id3v24.mp3"
    info = mf.inspect_file(afx.path(name))
    assert info.samples == 464000
    contents = tf.constant(afx.path(name).read_bytes())
    full = audio.to_mono(audio.decode(contents, "mp3")).numpy()
    paths = _windows(contents, info, 59049, 600, check=_Excerpts(full))
    assert np.all(paths == audio.MP3_PATH_SLICE), np.bincount(paths)


def _offsets(info, size, window, seeds, audio_range):
    """The byte offset of the slice each seed ``[9, s]`` cuts (``audio.mp3_slice_plan``)."""

    def one(s):
        return audio.mp3_slice_plan(
            size, info.samples, info.rate, info.rate, window, tf.stack([tf.constant(9, tf.int64), s]), *audio_range
        )[1]  # fmt: skip

    return np.concatenate(list(tf.data.Dataset.range(seeds).map(one).batch(4096).as_numpy_iterator()))


@pytest.mark.parametrize(
    "name", ["mp3/lame_cbr128_44k_stereo_apic.mp3", "mp3/ffmpeg_cbr32_16k_mono_id3v24.mp3"]
)
def test_slice_decoder_errors_fall_back_to_the_whole_file(name):
    """Without the manifest's audio range (the old behaviour: the whole file is the range) slices that start
    inside the APIC picture (`invalid mp3 with channel == 0`) or carry the Info frame (`read N from 0
    failed`) make the decoder raise: those examples come from the whole file instead."""
    info = mf.inspect_file(afx.path(name))
    data = afx.path(name).read_bytes()
    contents = tf.constant(data)
    full = audio.to_mono(audio.decode(contents, "mp3")).numpy()
    offsets = _offsets(info, len(data), WINDOW, 40000, (0, 0))  # cheap: no decoding
    # slices starting inside the tag or at the header frame: they hold no audio frame or the Info frame
    doomed = np.flatnonzero(offsets <= mf.mp3_layout(data).first)[:40]
    assert doomed.size >= 2

    def one(s):
        return audio.mp3_window_and_path(
            contents, tf.constant(info.samples, tf.int64), info.rate, info.rate, WINDOW,
            tf.stack([tf.constant(9, tf.int64), s]), 1, 0, 0,
        )  # fmt: skip

    ds = tf.data.Dataset.from_tensor_slices(doomed.astype(np.int64)).map(one).batch(len(doomed))
    windows, paths = next(ds.as_numpy_iterator())
    assert np.all(paths == audio.MP3_PATH_FAILED), paths  # the decoder did raise ...
    for seed, w in zip(doomed, windows):  # ... and the windows are the whole-file crop of the seed
        expected = audio.random_window(
            tf.constant(full), WINDOW, tf.constant([9, int(seed)], tf.int64)
        ).numpy()
        np.testing.assert_array_equal(w, expected)


def test_first_success_returns_the_attempt_or_the_fallback():
    @tf.function
    def pick(x):
        def attempt():
            tf.debugging.assert_positive(x, message="not positive")
            return x * 2.0

        return audio.first_success(attempt, lambda: tf.constant(-1.0))

    assert float(pick(tf.constant(3.0))) == 6.0
    assert float(pick(tf.constant(-3.0))) == -1.0


def test_training_batches_from_real_encodes_with_tags_and_header_frames():
    """The issue's crash: a training pipeline over LAME / FFmpeg files with ID3v2 pictures and Info/Xing
    frames (16 / 22.05 / 44.1 / 8 kHz, resampled to 16 kHz) runs epochs without an error."""
    from hvd_magtag.data import pipeline
    from hvd_magtag.data.catalog import Clip
    from hvd_magtag.data.manifest import Manifest, scan
    from hvd_magtag.models.registry import get_spec

    spec = get_spec("samplecnn", n=6)
    paths = [str(afx.path(n)) for n in REAL_MP3]
    manifest = Manifest(scan(paths, workers=2))
    assert all(manifest.info(p).ok for p in paths)
    clips = [Clip(f"c{i}", p, np.ones(2, np.float32), "train") for i, p in enumerate(paths)]
    ds = pipeline.train_dataset(clips, spec, batch_size=4, manifest=manifest, threads=2)
    for x, _ in ds.take(3 * pipeline.steps_per_epoch(len(clips), 4)):
        assert x.shape == (4, *spec.input_shape()) and np.all(np.isfinite(x.numpy()))
