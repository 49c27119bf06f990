"""The librosa recipe of the in-graph filterbank (musicnn's front end) against librosa itself.

librosa is a test-only dependency (the ``dev`` extra); the clips are the real recordings of
tests/fixtures/musicnn. Stated tolerances: :data:`hvd_magtag.features.LIBROSA_TOLERANCE` on
``log10(1 + 10000 x)`` against librosa's float32 power; musicnn's float16 cast adds up to ~2e-4 (measured here).
"""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import tensorflow as tf
from musicnn_fixtures import arrays, clip_names, clip_samples

from hvd_magtag.features import LIBROSA_TOLERANCE, logfbank, mel_centres_hz, mel_filterbank
from hvd_magtag.models.musicnn import MUSICNN_FBANK, MUSICNN_FRAMES, MUSICNN_SPEC
from hvd_magtag.models.registry import FbankSpec

RATE = 16000
#: musicnn's float16 cast of the mel power moves log10(1 + 1e4 x) by at most this much (measured bound + margin)
FLOAT16_TOLERANCE = 3e-4


def librosa_mel(y: np.ndarray, fb: FbankSpec = MUSICNN_FBANK) -> np.ndarray:
    """librosa.feature.melspectrogram with ``fb``'s settings: power [frames, n_mels] float32."""
    return librosa.feature.melspectrogram(
        y=y, sr=RATE, n_fft=fb.n_fft, hop_length=fb.hop_length, win_length=fb.win_length,
        n_mels=fb.n_mels, fmin=fb.fmin, fmax=fb.fmax, htk=fb.mel_scale == "htk",
        norm="slaney" if fb.mel_norm == "slaney" else None,
    ).T  # fmt: skip


LIBROSA_SPECS = [
    MUSICNN_FBANK,
    FbankSpec(n_mels=64, win_length=400, hop_length=160, n_fft=512, preemph=0.0, filters="librosa",
              window_fn="hann", center=True, mel_scale="htk", mel_norm="none", log="log10_1p",
              fmin=50.0, fmax=7600.0),
]  # fmt: skip


@pytest.mark.parametrize("fb", LIBROSA_SPECS)
def test_filterbank_matrix_is_librosas(fb):
    ref = librosa.filters.mel(
        sr=RATE, n_fft=fb.n_fft, n_mels=fb.n_mels, fmin=fb.fmin, fmax=fb.fmax, htk=fb.mel_scale == "htk",
        norm="slaney" if fb.mel_norm == "slaney" else None, dtype=np.float64,
    )  # fmt: skip
    np.testing.assert_allclose(mel_filterbank(fb, RATE).T, ref, rtol=1e-10, atol=1e-12)
    centres = librosa.mel_frequencies(
        fb.n_mels + 2, fmin=fb.fmin, fmax=fb.fmax or RATE / 2, htk=fb.mel_scale == "htk"
    )
    np.testing.assert_allclose(mel_centres_hz(fb, RATE), centres[1:-1], rtol=1e-10)


@pytest.mark.parametrize("fb", LIBROSA_SPECS)
@pytest.mark.parametrize("clip", clip_names())
def test_whole_clip_matches_librosa(fb, clip):
    y = clip_samples(clip)
    ref = np.log10(1 + fb.log_gain * librosa_mel(y, fb).astype(np.float64))
    got = logfbank(tf.constant(y), fb, RATE).numpy()
    # librosa frames 1 + n // hop (the last one centred on the end); a window owns ceil(n / hop)
    assert got.shape == (fb.n_frames(y.size), fb.n_mels) and got.shape[0] in (ref.shape[0], ref.shape[0] - 1)
    err = np.abs(got - ref[: got.shape[0]]).max()
    assert err < LIBROSA_TOLERANCE, f"{clip}: max abs diff {err:.2e}"


@pytest.mark.parametrize("clip", clip_names())
def test_against_the_committed_reference_and_musicnns_float16(clip):
    """The npz reference (librosa 0.11 in musicnn's scratch venv) agrees with the live librosa and with us;
    musicnn's own front end (float16 cast) stays within FLOAT16_TOLERANCE of ours."""
    y = clip_samples(clip)
    mel = arrays()[f"{clip}/mel"]
    np.testing.assert_allclose(mel, librosa_mel(y), rtol=1e-5, atol=1e-9)
    got = logfbank(tf.constant(y), MUSICNN_FBANK, RATE).numpy()
    ours_vs_ref = np.abs(got - np.log10(1 + 1e4 * mel[: got.shape[0]].astype(np.float64))).max()
    musicnn_input = np.log10(10000 * mel.astype(np.float16) + 1)  # musicnn.extractor.batch_data
    ours_vs_musicnn = np.abs(got - musicnn_input[: got.shape[0]].astype(np.float64)).max()
    assert ours_vs_ref < LIBROSA_TOLERANCE and ours_vs_musicnn < FLOAT16_TOLERANCE, (
        ours_vs_ref,
        ours_vs_musicnn,
    )


@pytest.mark.parametrize("clip", clip_names())
def test_consecutive_windows_tile_the_clip_frame_grid(clip):
    """Windows of 187 hops give musicnn's 187-frame patches: equal frames but each window's first, whose
    left half is zeros here and the previous window's audio in the whole-clip spectrogram."""
    y = clip_samples(clip)
    window = MUSICNN_SPEC.window
    k = y.size // window
    windows = logfbank(tf.constant(y[: k * window].reshape(k, window)), MUSICNN_FBANK, RATE).numpy()
    whole = logfbank(tf.constant(y), MUSICNN_FBANK, RATE).numpy()
    assert windows.shape == (k, MUSICNN_FRAMES, 96)
    patches = whole[: k * MUSICNN_FRAMES].reshape(k, MUSICNN_FRAMES, 96)
    np.testing.assert_allclose(windows[:, 1:], patches[:, 1:], atol=1e-5)
    np.testing.assert_allclose(windows[0], patches[0], atol=1e-5)  # the clip starts with zeros too
    assert np.abs(windows[1:, 0] - patches[1:, 0]).max() > 1e-3  # the documented difference is real


def test_fbank_choices_are_validated():
    with pytest.raises(ValueError, match="mel_scale"):
        FbankSpec(mel_scale="bark")
    with pytest.raises(ValueError, match="filters='librosa'"):
        FbankSpec(mel_scale="slaney")  # psf's integer-bin triangles are HTK only
    assert FbankSpec() == FbankSpec(filters="psf", window_fn="rect", center=False, log="ln")  # psf defaults
