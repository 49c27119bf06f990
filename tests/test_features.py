"""The in-graph log-mel filterbank against python_speech_features (the reference)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from pipeline_audio_fixtures import write_audio
from python_speech_features import get_filterbanks
from python_speech_features import logfbank as psf_logfbank

from hvd_magtag import audio
from hvd_magtag.features import REFERENCE_TOLERANCE, features_for, logfbank, mel_filterbank
from hvd_magtag.models.registry import FbankSpec, ModelSpec

SPECS = [
    FbankSpec(),  # 96 mels, 512/256
    FbankSpec(n_mels=128, n_fft=1024, win_length=1024, hop_length=160, fmin=20.0, fmax=7000.0, preemph=0.0),
    FbankSpec(n_mels=40, n_fft=512, win_length=400, hop_length=160),  # frame shorter than the FFT
]


@pytest.fixture(scope="module")
def music_like(tmp_path_factory) -> np.ndarray:
    """A decoded mp3 (3 s, 16 kHz): a vibrato melody over a bass line and noise, with a silent start."""
    rate = 16000
    t = np.arange(3 * rate) / rate
    rng = np.random.default_rng(0)
    melody = 0.25 * np.sin(2 * np.pi * (440 + 30 * np.sin(2 * np.pi * 5 * t)) * t)
    bass = 0.2 * np.sin(2 * np.pi * 110 * t) * (t % 0.5 < 0.3)
    x = (melody + bass + 0.03 * rng.standard_normal(t.size)).astype(np.float32)
    x[:4000] = 0.0  # digital silence: exercises the log floor
    path = write_audio(tmp_path_factory.mktemp("fb") / "m.mp3", x[:, None], rate)
    return audio.to_mono(audio.decode(tf.io.read_file(path), "mp3")).numpy()


@pytest.mark.parametrize("fb", SPECS)
def test_filterbank_matrix_is_the_reference_one(fb):
    ref = get_filterbanks(fb.n_mels, fb.n_fft, 16000, fb.fmin, fb.fmax)
    np.testing.assert_array_equal(mel_filterbank(fb, 16000).T, ref)


@pytest.mark.parametrize("fb", SPECS)
@pytest.mark.parametrize("n_samples", [None, 16000, 1000, 300])  # None = the whole clip
def test_logfbank_matches_python_speech_features(music_like, fb, n_samples):
    x = music_like[:n_samples]
    ref = psf_logfbank(
        x.astype(np.float64), 16000, fb.win_length / 16000, fb.hop_length / 16000,
        fb.n_mels, fb.n_fft, fb.fmin, fb.fmax, fb.preemph,
    )  # fmt: skip
    got = logfbank(tf.constant(x), fb, 16000).numpy()
    assert got.shape == ref.shape == (fb.n_frames(len(x)), fb.n_mels)
    assert np.abs(got - ref).max() < REFERENCE_TOLERANCE


def test_silence_hits_the_reference_log_floor():
    got = logfbank(tf.zeros([2000]), FbankSpec(), 16000).numpy()
    np.testing.assert_allclose(got, np.log(np.finfo(np.float64).eps), rtol=1e-6)


def test_batched_input_equals_one_by_one(music_like):
    fb = FbankSpec(n_mels=40, win_length=400, hop_length=160)
    batch = np.stack([music_like[:8000], music_like[8000:16000], music_like[16000:24000]])
    together = logfbank(tf.constant(batch[None]), fb, 16000).numpy()  # [1, 3, frames, mels]
    assert together.shape == (1, 3, fb.n_frames(8000), 40)
    for i in range(3):
        np.testing.assert_allclose(
            together[0, i], logfbank(tf.constant(batch[i]), fb, 16000).numpy(), atol=1e-5
        )


def test_features_for_follows_the_spec():
    raw, spectral = ModelSpec(window=2000), ModelSpec(input="fbank", window=4096)
    w = tf.random.stateless_uniform([2, 4096], seed=[0, 1], minval=-1, maxval=1)
    np.testing.assert_array_equal(features_for(raw)(w[:, :2000]).numpy(), w[:, :2000].numpy())
    out = features_for(spectral)(w)
    assert tuple(out.shape) == (2, *spectral.window_shape())


def test_fmax_above_nyquist_is_rejected():
    with pytest.raises(ValueError, match="fmax"):
        mel_filterbank(FbankSpec(fmax=9000.0), 16000)
