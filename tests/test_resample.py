"""The in-graph polyphase resampler (``hvd_magtag.audio.resample``): scipy parity, anti-aliasing, the
tensor-rate and SavedModel paths, channel independence and the segment-shift property ``tag`` relies on."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf
from pipeline_audio_fixtures import peak_frequency
from scipy.signal import resample_poly

from hvd_magtag import audio

#: Max abs difference from ``scipy.signal.resample_poly`` (float64 inside) on signals within [-1, 1]: the
#: same filter and alignment, so float32 rounding only (measured <= 1e-6).
SCIPY_ATOL = 1e-5
#: Two runs of the same float32 arithmetic through different graph paths (static vs tensor rates).
PATH_ATOL = 1e-6
#: Required attenuation (dB) of a tone above the output Nyquist frequency (its alias must be this far down).
ALIAS_REJECTION_DB = 40.0
#: Passband gain error (dB) allowed for a 1 kHz tone.
PASSBAND_DB = 0.1
#: 8 -> 16 kHz of a 1 kHz sine vs the sine sampled at 16 kHz (passband ripple; measured 4e-4 at amplitude 0.5).
UPSAMPLE_ATOL = 1e-3
#: FFT peak tolerance (Hz) for a 1 s tone (peak_frequency interpolates to 1/8 Hz bins).
FREQ_TOLERANCE_HZ = 1.0

#: (rate_in, rate_out) pairs: the common downsamplings to 16 kHz, upsamplings, and a coprime pair whose
#: polyphase weights are too big for the convolution (the chunked gather path).
RATE_PAIRS = [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000), (16000, 44100), (44101, 16000)]


def band_limited(n: int, rate: int, channels: int, seed: int, max_hz: float) -> np.ndarray:
    """float32 ``[n, channels]`` random noise with no energy above ``max_hz``, peak-normalised to 0.9."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal((n, channels)), axis=0)
    spectrum[np.fft.rfftfreq(n, 1.0 / rate) > max_hz] = 0.0
    x = np.fft.irfft(spectrum, n=n, axis=0)
    return (0.9 * x / np.abs(x).max()).astype(np.float32)


def sine(freq: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def factors(rate_in: int, rate_out: int) -> tuple[int, int]:
    g = math.gcd(rate_in, rate_out)
    return rate_out // g, rate_in // g


def db(ratio: float) -> float:
    return 20.0 * math.log10(ratio)


@pytest.mark.parametrize("rate_in,rate_out", RATE_PAIRS)
def test_matches_scipy_resample_poly(rate_in, rate_out):
    up, down = factors(rate_in, rate_out)
    x = band_limited(int(0.2 * rate_in) + 3, rate_in, 2, seed=1, max_hz=0.45 * min(rate_in, rate_out))
    want = resample_poly(x.astype(np.float64), up, down, axis=0)
    got = audio.resample(tf.constant(x), rate_in, rate_out).numpy()
    assert got.shape == want.shape == (math.ceil(x.shape[0] * up / down), 2)
    np.testing.assert_allclose(got, want, atol=SCIPY_ATOL, rtol=0)
    mono = audio.resample(tf.constant(x[:, 0]), rate_in, rate_out).numpy()
    np.testing.assert_allclose(mono, want[:, 0], atol=SCIPY_ATOL, rtol=0)


@pytest.mark.parametrize("n", [0, 1, 2, 440, 441, 442])
@pytest.mark.parametrize("rate_in", [44100, 44101])
def test_output_length_is_the_ceiling_of_the_exact_ratio(n, rate_in):
    up, down = factors(rate_in, 16000)
    x = tf.ones([n])
    assert audio.resample(x, rate_in, 16000).shape[0] == math.ceil(n * up / down)
    assert audio.resample(x, tf.constant(rate_in), 16000).shape[0] == math.ceil(n * up / down)


def test_tone_keeps_its_frequency_and_level_and_high_tones_are_filtered_out():
    x = sine(1000.0, 1.0, 44100)
    y = audio.resample(tf.constant(x), 44100, 16000).numpy()
    assert abs(peak_frequency(y, 16000) - 1000.0) < FREQ_TOLERANCE_HZ
    inner = slice(1000, -1000)  # away from the zero-padded ends
    assert abs(db(y[inner].std() / x.std())) < PASSBAND_DB
    # 10 kHz is above 16 kHz's Nyquist frequency: without a low-pass it would alias to 6 kHz at full level
    high = sine(10000.0, 1.0, 44100)
    aliased = audio.resample(tf.constant(high), 44100, 16000).numpy()
    assert db(aliased[inner].std() / high.std()) < -ALIAS_REJECTION_DB


def test_upsampling_interpolates_the_underlying_sine():
    x = sine(1000.0, 0.5, 8000)
    y = audio.resample(tf.constant(x), 8000, 16000).numpy()
    assert y.shape == (2 * x.size,)
    truth = 0.5 * np.sin(2 * np.pi * 1000.0 * np.arange(y.size) / 16000)
    np.testing.assert_allclose(y[200:-200], truth[200:-200], atol=UPSAMPLE_ATOL)  # the same sine at 16 kHz
    assert abs(peak_frequency(y, 16000) - 1000.0) < FREQ_TOLERANCE_HZ


def test_identity_when_rates_match():
    x = tf.constant(band_limited(500, 16000, 2, seed=2, max_hz=7000))
    assert audio.resample(x, 16000, 16000) is x
    np.testing.assert_array_equal(audio.resample(x, tf.constant(16000), 16000).numpy(), x.numpy())
    np.testing.assert_array_equal(audio.resample(x, tf.constant(16000, tf.int64), tf.constant(16000)), x)


@pytest.mark.parametrize("rate_in", [44100, 48000, 44101, 16000])
def test_tensor_rates_in_a_tf_function_equal_the_static_path(rate_in):
    fn = tf.function(
        lambda x, r: audio.resample(x, r, 16000),
        input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([], tf.int32)],
    )
    x = band_limited(int(0.15 * rate_in), rate_in, 2, seed=3, max_hz=7000)
    got = fn(tf.constant(x), tf.constant(rate_in)).numpy()
    want = audio.resample(tf.constant(x), rate_in, 16000).numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=PATH_ATOL, rtol=0)


def test_per_element_rates_inside_tf_data():
    """The training pipeline's case: one dataset, files at different rates, the rate a tensor per element."""
    rates = [44100, 48000, 22050]
    clips = [sine(700.0, 0.3, r) for r in rates]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(zip(clips, rates)),
        output_signature=(tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int64)),
    ).map(lambda x, r: audio.resample(x, r, 16000))
    for got, x, rate in zip(ds.as_numpy_iterator(), clips, rates):
        np.testing.assert_allclose(got, audio.resample(tf.constant(x), rate, 16000).numpy(), atol=PATH_ATOL)


def test_survives_a_savedmodel_round_trip_without_python_ops(tmp_path):
    class Resampler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([], tf.int32)])
        def __call__(self, x, rate):
            return {"waveform": audio.resample(audio.to_mono(x), rate, 16000)}

    tf.saved_model.save(Resampler(), str(tmp_path / "m"))
    graph = (tmp_path / "m" / "saved_model.pb").read_bytes()
    assert b"PyFunc" not in graph and b"EagerPyFunc" not in graph  # pure TensorFlow: servable anywhere
    loaded = tf.saved_model.load(str(tmp_path / "m"))
    for rate in (44100, 48000, 16000):
        x = band_limited(int(0.1 * rate), rate, 2, seed=4, max_hz=7000)
        got = loaded(tf.constant(x), tf.constant(rate))["waveform"].numpy()
        want = audio.resample(tf.constant(x.mean(axis=1)), rate, 16000).numpy()
        np.testing.assert_allclose(got, want, atol=PATH_ATOL, rtol=0)


def test_stereo_channels_are_resampled_independently():
    left, right = sine(440.0, 0.2, 44100), sine(3000.0, 0.2, 44100, amplitude=0.2)
    both = audio.resample(tf.constant(np.stack([left, right], axis=1)), 44100, 16000).numpy()
    alone = audio.resample(tf.constant(np.stack([left, np.zeros_like(right)], axis=1)), 44100, 16000).numpy()
    np.testing.assert_array_equal(both[:, 0], alone[:, 0])  # the other channel has no influence
    assert np.all(alone[:, 1] == 0)
    np.testing.assert_allclose(both[:, 1], audio.resample(tf.constant(right), 44100, 16000), atol=PATH_ATOL)


@pytest.mark.parametrize("rate_in", [44100, 22050])
def test_shifting_the_input_by_down_samples_shifts_the_output_by_up(rate_in):
    """What ``tag`` relies on to stitch segments: a segment starting ``k * down`` samples in, resampled on
    its own, equals the whole-file output from ``k * up`` on, once the filter's left edge is past."""
    up, down = factors(rate_in, 16000)
    x = band_limited(int(0.3 * rate_in), rate_in, 1, seed=5, max_hz=7000)[:, 0]
    whole = audio.resample(tf.constant(x), rate_in, 16000).numpy()
    k = 5
    part = audio.resample(tf.constant(x[k * down :]), rate_in, 16000).numpy()
    assert part.size == whole.size - k * up
    settled = 100  # output samples: more than the filter's half-length (28 input samples at 44.1 kHz)
    np.testing.assert_allclose(part[settled:], whole[k * up + settled :], atol=PATH_ATOL, rtol=0)
    assert np.abs(part[:settled] - whole[k * up : k * up + settled]).max() > 1e-3  # the edge really differs


def test_gather_path_in_several_chunks_equals_the_convolution(monkeypatch):
    x = band_limited(3000, 44100, 2, seed=6, max_hz=7000)
    conv = audio.resample(tf.constant(x), 44100, 16000).numpy()
    monkeypatch.setattr(audio.resampling, "RESAMPLE_MAX_CONV_WEIGHTS", 0)  # force the gather resampler ...
    monkeypatch.setattr(
        audio.resampling, "_GATHER_CHUNK_ELEMENTS", 56 * 100
    )  # ... in chunks of 100 output samples
    gathered = audio.resample(tf.constant(x), 44100, 16000).numpy()
    dynamic = tf.function(lambda v, r: audio.resample(v, r, 16000))(tf.constant(x), tf.constant(44100))
    assert gathered.shape == conv.shape == dynamic.shape
    np.testing.assert_allclose(gathered, conv, atol=PATH_ATOL, rtol=0)
    np.testing.assert_allclose(dynamic.numpy(), conv, atol=PATH_ATOL, rtol=0)


def test_invalid_rates_are_rejected():
    x = tf.zeros([100])
    with pytest.raises(ValueError, match="rates must be > 0"):
        audio.resample(x, 0, 16000)
    with pytest.raises(tf.errors.InvalidArgumentError, match="rate_in must be > 0"):
        audio.resample(x, tf.constant(-44100), 16000)
