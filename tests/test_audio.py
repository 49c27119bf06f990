"""In-graph audio ops: decoding by format, downmix, resampling, windowing."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from pipeline_audio_fixtures import peak_frequency, tone, write_audio

from hvd_magtag import audio

#: FFT peak tolerance (Hz) for a 1 s tone after mp3 + resampling: the bin spacing (1 Hz) plus slack.
FREQ_TOLERANCE_HZ = 3.0


def test_format_of_maps_extensions_and_rejects_unknown():
    assert audio.format_of("/a/b/Song.MP3") == "mp3"
    assert audio.format_of("x.oga") == "ogg"
    assert audio.format_of("x.aiff") == "aiff" and audio.format_of("y.M4A") == "m4a"
    with pytest.raises(ValueError, match="x.mid"):
        audio.format_of("x.mid")


def test_wav_decode_is_pcm_exact_and_graph_switch_matches(tmp_path):
    x = tone(440.0, 0.25, 16000, channels=2)
    path = write_audio(tmp_path / "t.wav", x, 16000)
    contents = tf.io.read_file(path)
    direct = audio.decode(contents, "wav").numpy()
    switched = audio.decode(contents, tf.constant("WAV")).numpy()
    assert direct.shape == (x.shape[0], 2)
    np.testing.assert_allclose(direct, x, atol=1.0 / 32768 + 1e-7)  # 16-bit quantisation
    np.testing.assert_array_equal(direct, switched)


def test_mp3_decode_through_graph_switch_equals_direct(tmp_path):
    path = write_audio(tmp_path / "t.mp3", tone(440.0, 0.5, 16000), 16000)
    contents = tf.io.read_file(path)
    np.testing.assert_array_equal(
        audio.decode(contents, "mp3").numpy(), audio.decode(contents, tf.constant("mp3")).numpy()
    )
    with pytest.raises(tf.errors.InvalidArgumentError):
        audio.decode(contents, tf.constant("aiff"))


def test_flac_and_ogg_decoders_return_float_frames():
    import tensorflow_io as tfio

    x = tone(500.0, 0.25, 16000)
    pcm = tf.constant(np.round(x * 32767).astype(np.int16))
    flac = audio.decode(tfio.audio.encode_flac(pcm, rate=16000), "flac").numpy()
    np.testing.assert_allclose(flac, x, atol=2.0 / 32768)  # flac is lossless on 16-bit PCM
    stereo = tone(500.0, 0.25, 16000, channels=2)  # libvorbis here refuses 16 kHz mono at default quality
    ogg = audio.decode(tfio.audio.encode_vorbis(tf.constant(stereo), rate=16000), "ogg").numpy()
    assert ogg.dtype == np.float32 and ogg.shape[1] == 2
    assert abs(peak_frequency(ogg[:, 0], 16000) - 500.0) < FREQ_TOLERANCE_HZ


def test_44k_stereo_mp3_comes_out_16k_mono_at_the_right_frequency(tmp_path):
    freq, seconds = 1234.0, 1.0
    path = write_audio(tmp_path / "song.mp3", tone(freq, seconds, 44100, channels=2), 44100)
    decoded = audio.decode(tf.io.read_file(path), "mp3")
    assert decoded.shape[1] == 2
    x = audio.load(tf.constant(path), "mp3", tf.constant(44100, tf.int64), 16000).numpy()
    assert x.ndim == 1
    # mp3 adds encoder/decoder delay (~1-2k samples at 44.1 kHz): length within 10% of 1 s at 16 kHz
    assert abs(len(x) - seconds * 16000) < 0.1 * 16000
    assert abs(peak_frequency(x, 16000) - freq) < FREQ_TOLERANCE_HZ
    # the python-int rate path builds the same graph result
    np.testing.assert_allclose(audio.load(tf.constant(path), "mp3", 44100, 16000).numpy(), x)


def test_to_mono_averages_channels():
    x = tf.constant([[1.0, 3.0], [-2.0, 0.0]])
    np.testing.assert_allclose(audio.to_mono(x).numpy(), [2.0, -1.0])
    assert audio.to_mono(tf.constant([1.0, 2.0])).shape == (2,)


def test_resample_is_identity_when_rates_match():
    x = tf.random.stateless_normal([1000], seed=[1, 2])
    np.testing.assert_array_equal(audio.resample(x, 16000, 16000).numpy(), x.numpy())
    np.testing.assert_array_equal(audio.resample(x, tf.constant(16000), 16000).numpy(), x.numpy())


def _ramp(n: int) -> tf.Tensor:
    return tf.range(n, dtype=tf.float32) + 1.0  # sample value = position + 1 (0 marks padding)


def test_random_window_is_a_seeded_slice():
    x = _ramp(1000)
    w = audio.random_window(x, 100, seed=tf.constant([3, 4])).numpy()
    assert w.shape == (100,)
    np.testing.assert_array_equal(np.diff(w), 1.0)  # a contiguous slice
    np.testing.assert_array_equal(audio.random_window(x, 100, seed=tf.constant([3, 4])).numpy(), w)
    starts = {int(audio.random_window(x, 100, seed=tf.constant([3, s])).numpy()[0]) for s in range(20)}
    assert len(starts) > 10  # seeds move the crop
    aligned = {
        int(audio.random_window(x, 100, seed=tf.constant([3, s]), align=64).numpy()[0]) - 1 for s in range(20)
    }
    assert all(s % 64 == 0 for s in aligned)


def test_even_windows_span_the_clip():
    x = _ramp(1000)
    w = audio.even_windows(x, 100, 4).numpy()
    assert w.shape == (4, 100)
    assert w[0, 0] == 1.0 and w[-1, -1] == 1000.0  # first starts at 0, last ends at the clip end
    np.testing.assert_array_equal(w[:, 0] - 1, [0, 300, 600, 900])


def test_all_windows_are_consecutive_and_drop_the_tail():
    x = _ramp(1050)
    w = audio.all_windows(x, 100).numpy()
    assert w.shape == (10, 100)
    np.testing.assert_array_equal(w.reshape(-1), np.arange(1, 1001))


def test_tail_padded_windows_keep_the_tail_zero_padded():
    x = tf.range(1, 11, dtype=tf.float32)  # 10 samples
    w = audio.tail_padded_windows(x, 4).numpy()
    np.testing.assert_array_equal(w, [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 0, 0]])
    assert audio.tail_padded_windows(tf.ones([3]), 4).numpy().tolist() == [[1, 1, 1, 0]]
    assert audio.tail_padded_windows(tf.ones([8]), 4).shape == (2, 4)
    assert audio.tail_padded_windows(tf.zeros([0]), 4).numpy().tolist() == [[0, 0, 0, 0]]  # at least one
    with_context = audio.tail_padded_windows(
        x, 4, context=2
    ).numpy()  # each window after its 2 samples before
    np.testing.assert_array_equal(with_context, [[0, 0, 1, 2, 3, 4], [3, 4, 5, 6, 7, 8], [7, 8, 9, 10, 0, 0]])
    ramp = np.arange(1, 1051, dtype=np.float32)  # numpy in, the same windows as all_windows plus the tail
    w = audio.tail_padded_windows(ramp, 100).numpy()
    assert w.shape == (11, 100) and w.dtype == np.float32
    np.testing.assert_array_equal(w[:10], audio.all_windows(ramp, 100).numpy())
    np.testing.assert_array_equal(w[10], np.r_[np.arange(1001, 1051), np.zeros(50)])

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
    def in_graph(x):
        return audio.tail_padded_windows(x, 100)

    assert in_graph.get_concrete_function().structured_outputs.shape.as_list() == [None, 100]
    np.testing.assert_array_equal(in_graph(ramp).numpy(), w)


def test_tail_padded_windows_of_a_stream_cut_in_pieces_equal_the_whole_clips():
    """A stream cut piece by piece (each piece a whole number of windows, ``before`` = the last ``context``
    samples so far) gives the windows of the whole clip at once, tail included."""
    ramp = np.arange(1, 1051, dtype=np.float32)
    whole = audio.tail_padded_windows(ramp, 100, context=30).numpy()
    before, parts = np.zeros(30, np.float32), []
    for lo, hi in ((0, 300), (300, 1000), (1000, 1050)):
        parts.append(audio.tail_padded_windows(ramp[lo:hi], 100, 30, before).numpy())
        before = np.concatenate([before, ramp[lo:hi]])[-30:]
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    with pytest.raises((ValueError, tf.errors.InvalidArgumentError)):
        audio.tail_padded_windows(ramp, 100, 30, np.zeros(29, np.float32))  # before must hold `context`


def test_short_clip_is_zero_padded_in_every_mode():
    x = _ramp(60)
    for w in (
        audio.random_window(x, 100, seed=tf.constant([0, 0]))[None],
        audio.even_windows(x, 100, 3),
        audio.all_windows(x, 100),
    ):
        w = w.numpy()
        assert w.shape[1] == 100
        np.testing.assert_array_equal(w[0, :60], np.arange(1, 61))
        np.testing.assert_array_equal(w[:, 60:], 0.0)
    assert audio.all_windows(x, 100).shape[0] == 1
