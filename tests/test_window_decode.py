"""MP3 training windows decoded from a slice of the file (``audio.mp3_random_window``, ``data.window_decode``):
exact excerpts of the whole-file decode, spread over the clip, deterministic, with the documented
fallbacks; and the training pipeline using them when the manifest knows the files' lengths."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_io as tfio

from hvd_magtag import audio


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
    window, starts = 16000, []
    for s in range(24):
        w = _window(contents, len(mono), 16000, 16000, window, [7, s])
        start = _locate(mono, w)
        np.testing.assert_array_equal(w, mono[start : start + window])  # bit-identical: no resampling
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
    start = _locate(mono, w)
    np.testing.assert_array_equal(w, mono[start : start + 16000])


def test_training_pipeline_uses_slices_when_the_manifest_knows_lengths(tmp_path):
    from hvd_magtag.data import pipeline
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
    table = pipeline.ClipTable(clips, manifest)
    assert table.samples.numpy().tolist() == [len(wholes[c.path]) for c in clips]

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
        start = _locate(full, row)
        np.testing.assert_array_equal(row, full[start : start + spec.window])
    assert not np.array_equal(x.numpy(), x_whole.numpy())  # a different (equally valid) crop
