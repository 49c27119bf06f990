"""hvd_magtag.analysis: kernel responses, transfer estimates, sonification, and both commands end to end.

Models here are tiny Keras graphs whose conv kernels are set to known filters, so every expected number
(peak frequency, rate, duration) follows from the construction, not from a previous run.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from hvd_magtag.analysis import extract, filters, introspect, sonify, stats
from hvd_magtag.analysis import featuremaps as fm
from hvd_magtag.models import names
from hvd_magtag.models.registry import FbankSpec, ModelSpec

RATE = 16000


def windowed_sine(freq_hz: float, rate_hz: float, taps: int) -> np.ndarray:
    """A Hann-windowed cosine of ``taps`` samples: a band-pass kernel centred on ``freq_hz``."""
    t = np.arange(taps) - (taps - 1) / 2
    return (np.hanning(taps) * np.cos(2 * np.pi * freq_hz * t / rate_hz)).astype(np.float32)


def lowpass(cutoff_hz: float, rate_hz: float, taps: int) -> np.ndarray:
    t = np.arange(taps) - (taps - 1) / 2
    return (np.hamming(taps) * 2 * cutoff_hz / rate_hz * np.sinc(2 * cutoff_hz / rate_hz * t)).astype(
        np.float32
    )


def write_clip(path, seconds: float, freq_hz: float = 440.0, seed: int = 0) -> np.ndarray:
    from scipy.io import wavfile

    n = int(seconds * RATE)
    rng = np.random.default_rng(seed)
    y = 0.3 * np.sin(2 * np.pi * freq_hz * np.arange(n) / RATE) + 0.05 * rng.standard_normal(n)
    wavfile.write(str(path), RATE, (y * 32767).astype(np.int16))
    return y


def set_kernel(layer, kernel: np.ndarray) -> None:
    layer.set_weights([kernel.astype(np.float32), np.zeros(layer.filters, np.float32)])


# -- (1) kernel responses ------------------------------------------------------------------------------------
def test_bandpass_kernel_response_peaks_at_its_frequency():
    centres = [3000.0, 1000.0, 5500.0, 400.0]
    taps = 129
    inputs = keras.Input((RATE // 10, 1))
    conv = keras.layers.Conv1D(len(centres), taps, name="conv1")
    keras.Model(inputs, conv(inputs))
    set_kernel(conv, np.stack([windowed_sine(f, RATE, taps) for f in centres], axis=-1)[:, None, :])

    freqs, mag = filters.kernel_responses(conv, RATE)
    bin_hz = RATE / filters.KERNEL_NFFT
    assert freqs[1] == pytest.approx(bin_hz)
    peaks = filters.peak_frequencies(freqs, mag)
    for got, want in zip(peaks, centres):
        assert abs(got - want) <= bin_hz, (got, want)  # stated tolerance: one FFT bin (15.6 Hz)
    order = filters.peak_order(freqs, mag)
    assert list(order) == list(np.argsort(centres))


# -- (3) transfer estimate of a second layer fed white noise ------------------------------------------------
def known_two_layer_model(window: int, second_hz: list[float]):
    """conv1: stride-2 low-pass (3 kHz) at 16 kHz with 3 gains; conv2: band-passes at ``second_hz`` (8 kHz rate)."""
    inputs = keras.Input((window,), name="waveform")
    x = keras.layers.Reshape((window, 1))(inputs)
    conv1 = keras.layers.Conv1D(3, 31, strides=2, padding="same", name="conv1")
    conv2 = keras.layers.Conv1D(len(second_hz), 63, padding="same", name="conv2")
    model = keras.Model(inputs, conv2(keras.layers.ReLU()(conv1(x))))
    lp = lowpass(3000.0, RATE, 31)
    set_kernel(conv1, np.stack([lp * g for g in (1.0, 0.5, 2.0)], axis=-1)[:, None, :])
    bp = np.stack([windowed_sine(f, RATE / 2, 63) for f in second_hz], axis=-1)  # [63, out]
    set_kernel(conv2, np.repeat(bp[:, None, :], 3, axis=1) / 3)
    model.spec = ModelSpec(input="raw", sample_rate=RATE, window=window)
    return model


def test_transfer_of_second_layer_peaks_at_its_filter_on_white_noise():
    second = [1500.0, 2600.0]
    model = known_two_layer_model(4000, second)
    rng = np.random.default_rng(1)
    noise = [(0.1 * rng.standard_normal(RATE * 2)).astype(np.float32) for _ in range(2)]
    levels, infos = filters.average_spectra(model, noise)
    assert [lv.name for lv in levels] == ["input", "conv1", "conv2"]
    assert [i.rate_hz for i in infos] == [RATE / 2, RATE / 2]
    transfers = filters.transfer_estimates(levels)
    conv1, conv2 = transfers
    # conv2's transfer estimate is on its own audio axis 0..4 kHz and peaks where its filters do (5 %)
    assert conv2.freqs_hz.max() == pytest.approx(RATE / 4)
    for got, want in zip(filters.peak_frequencies(conv2.freqs_hz, conv2.mag), second):
        assert abs(got - want) <= 0.05 * want, (got, want)
    # conv1 against white noise is its low-pass: little left above the 3 kHz cutoff
    f = conv1.freqs_hz
    passband = np.nanmean(conv1.mag[:, (f > 200) & (f < 2000)], axis=1)
    stopband = np.nanmean(conv1.mag[:, f > 3600], axis=1)
    assert np.all(stopband < 0.1 * passband)


def test_transfer_compares_on_common_range_and_divides_by_level_below():
    f_hi = np.linspace(0, 8000, 9)
    f_lo = np.linspace(0, 2000, 5)
    below = filters.Level("a", 16000.0, f_hi, np.vstack([np.full(9, 2.0), np.full(9, 4.0)]))
    level = filters.Level("b", 4000.0, f_lo, np.full((1, 5), 6.0))
    (h,) = filters.transfer_estimates([below, level])
    np.testing.assert_allclose(h.mag, 2.0, rtol=1e-6)  # 6 / mean(2, 4)
    # the other way round, frequencies above the level below's Nyquist are undefined (NaN)
    (h_up,) = filters.transfer_estimates([level, below])
    assert np.isnan(h_up.mag[:, f_hi > 2000]).all() and np.isfinite(h_up.mag[:, f_hi <= 2000]).all()


def test_level_below_follows_the_graph_and_activation_tap():
    inputs = keras.Input((81,), name="waveform")
    x = keras.layers.Reshape((81, 1))(inputs)
    x = keras.layers.Conv1D(4, 3, strides=3, name="conv0")(x)  # 81 -> 27
    x = keras.layers.ReLU(name="relu0")(keras.layers.BatchNormalization(name="bn0")(x))
    h = keras.layers.Conv1D(4, 3, padding="same", name="conv1a")(x)
    h = keras.layers.Conv1D(4, 3, padding="same", name="conv1b")(keras.layers.ReLU(name="relu1a")(h))
    x = keras.layers.Add(name="add1")([x, h])  # identity shortcut
    s = keras.layers.Conv1D(4, 1, name="shortcut2")(x)
    x = keras.layers.MaxPooling1D(3, name="pool")(keras.layers.ReLU(name="relu1")(x))  # 27 -> 9
    x = keras.layers.Conv1D(4, 3, padding="same", name="conv2")(x)
    model = keras.Model(inputs, [x, s])
    model.spec = ModelSpec(input="raw", sample_rate=RATE, window=81)
    infos = {i.name: i for i in introspect.describe_layers(model, model.spec, tap="activation")}
    below = {name: info.below for name, info in infos.items()}
    assert below == {
        "conv0": introspect.INPUT_LEVEL,
        "conv1a": "conv0",
        "conv1b": "conv1a",
        "shortcut2": "conv1b",  # through the Add: the main path, not the identity shortcut back to conv0
        "conv2": "conv1b",
    }
    assert infos["conv2"].in_rate_hz == pytest.approx(RATE / 3) and infos["conv2"].rate_hz == pytest.approx(
        RATE / 9
    )
    taps = {name: info.tap for name, info in infos.items()}
    assert taps["conv0"] == "relu0" and taps["conv1a"] == "relu1a" and taps["conv1b"] == "conv1b"
    maps, _ = extract.feature_maps(
        model,
        np.random.default_rng(0).standard_normal(162).astype(np.float32),
        extractor=extract.map_extractor(model, ["conv0"], tap="activation"),
    )
    assert maps["conv0"].min() >= 0.0  # after the ReLU


# -- sonification ---------------------------------------------------------------------------------------------
def test_upsampled_map_keeps_its_frequency_in_hz():
    rate, tone = 2000.0, 300.0
    t = np.arange(int(rate)) / rate
    maps = np.sin(2 * np.pi * tone * t)[:, None] + 5.0  # with DC, which must go
    audio = sonify.sonify_1d(maps, rate, RATE, RATE)
    assert audio.shape == (RATE, 1)
    assert abs(float(audio.mean())) < 1e-3
    spectrum = np.abs(np.fft.rfft(audio[:, 0]))
    assert np.fft.rfftfreq(RATE, 1 / RATE)[np.argmax(spectrum)] == pytest.approx(tone, abs=1.0)
    rms_db = 20 * math.log10(float(np.sqrt(np.mean(audio**2))))
    assert rms_db == pytest.approx(sonify.TARGET_RMS_DBFS, abs=0.5)


def test_loudness_limiter_caps_peaks_and_keeps_silence_silent():
    spiky = np.zeros(1000)
    spiky[::100] = 1.0
    y = sonify.normalise_loudness(spiky)
    assert np.abs(y).max() <= 10 ** (sonify.PEAK_CEILING_DBFS / 20) + 1e-6
    assert np.abs(y).max() > 0.5
    assert not sonify.normalise_loudness(np.full(100, 3.0)).any()


def strided_model(window: int, stride: int, channels: int = 3):
    inputs = keras.Input((window,), name="waveform")
    x = keras.layers.Reshape((window, 1))(inputs)
    x = keras.layers.Conv1D(channels, stride, strides=stride, name="conv0")(x)
    x = keras.layers.Conv1D(channels, 3, padding="same", name="conv1")(keras.layers.ReLU()(x))
    model = keras.Model(inputs, keras.layers.GlobalMaxPooling1D()(x))
    model.spec = ModelSpec(input="raw", sample_rate=RATE, window=window)
    return model


def test_sonified_map_has_audio_rate_clip_duration_and_sound(tmp_path):
    from scipy.io import wavfile

    stride, window = 4, 1200
    model = strided_model(window, stride)
    clip = write_clip(tmp_path / "clip.wav", 0.35)  # not a multiple of the window: the tail is kept
    rows = fm.render_run(model, clip.astype(np.float32), tmp_path / "out" / "run", "run")
    with np.load(tmp_path / "out" / "run" / "featuremaps.npz") as npz:
        assert npz["conv0"].shape == (math.ceil(len(clip) / stride), 3)
        assert list(npz["__rates_hz__"]) == [RATE / stride, RATE / stride]
    assert {r.layer for r in rows} == {"conv0", "conv1"} and len(rows) == 6
    for r in rows:
        rate, pcm = wavfile.read(tmp_path / "out" / r.wav)
        assert rate == RATE and pcm.dtype == np.int16
        assert abs(len(pcm) / rate - len(clip) / RATE) <= stride / RATE  # within one frame
        if not r.silent:
            assert np.sqrt(np.mean((pcm / 32768.0) ** 2)) > 0.03  # about -20 dBFS, far from silence
    assert any(not r.silent for r in rows)
    conv0 = [r for r in rows if r.layer == "conv0" and not r.silent]
    assert any(abs(r.dominant_hz - 440.0) < 40.0 for r in conv0)  # the clip's tone shows through


def test_layer_selection_and_superpool_encoder():
    window = 300
    w_in = keras.Input((window,), name="window")
    x = keras.layers.Reshape((window, 1))(w_in)
    x = keras.layers.Conv1D(2, 3, strides=3, name="conv0")(x)
    x = keras.layers.Conv1D(2, 3, padding="same", name="conv1")(x)
    encoder = keras.Model(w_in, keras.layers.GlobalMaxPooling1D()(x), name=names.WINDOW_ENCODER)
    inputs = keras.Input((4, window))
    model = keras.Model(inputs, keras.layers.TimeDistributed(encoder)(inputs))
    model.spec = ModelSpec(input="raw", sample_rate=RATE, window=window, windowing="superpool", n_windows=4)
    assert introspect.encoder_of(model) is encoder
    maps, infos = extract.feature_maps(model, np.ones(window * 2 + 7, np.float32), ["conv1"])
    assert [i.name for i in infos] == ["conv1"] and maps["conv1"].shape == (
        math.ceil((2 * window + 7) / 3),
        2,
    )
    with pytest.raises(introspect.AnalysisError, match="conv9.*conv0, conv1"):
        introspect.select_layers(introspect.describe_layers(encoder, model.spec), ["conv9"])


# -- spectrogram (Conv2D) models ------------------------------------------------------------------------------
def test_fbank_maps_profile_peaks_at_tone_band_and_vocoder_duration():
    fbank = FbankSpec(n_mels=24, win_length=256, hop_length=128, n_fft=256)
    spec = ModelSpec(input="fbank", sample_rate=RATE, window=2048, fbank=fbank)
    frames, n_mels = spec.window_shape()
    inputs = keras.Input((frames, n_mels))
    x = keras.layers.Reshape((frames, n_mels, 1))(inputs)
    conv = keras.layers.Conv2D(2, 1, name="conv1")
    x = conv(x)
    x = keras.layers.MaxPooling2D((2, 2))(x)
    x = keras.layers.Conv2D(2, 1, name="conv2")(x)
    model = keras.Model(inputs, keras.layers.GlobalMaxPooling2D()(x))
    model.spec = spec
    conv.set_weights([np.ones((1, 1, 1, 2), np.float32), np.zeros(2, np.float32)])
    tone = 2000.0
    n = 3000
    wave = (0.5 * np.sin(2 * np.pi * tone * np.arange(n) / RATE)).astype(np.float32)
    maps, infos = extract.feature_maps(model, wave)
    assert [i.kind for i in infos] == ["2d", "2d"]
    assert maps["conv1"].shape[1:] == (n_mels, 2) and maps["conv2"].shape[1:] == (n_mels // 2, 2)
    profiles = stats.mel_profiles(maps["conv1"], n_mels)  # identity 1x1 conv: the log-mel profile itself
    centres = sonify.mel_centres_hz(fbank, RATE)
    peak_band = int(np.argmax(profiles[0]))
    assert abs(centres[peak_band] - tone) <= (centres[peak_band + 1] - centres[peak_band - 1]) / 2
    audio = sonify.sonify_2d(maps["conv1"], spec, n)
    assert audio.shape == (n, 2) and np.sqrt(np.mean(audio**2)) > 0.03
    spectrum = np.abs(np.fft.rfft(audio[:, 0]))
    peak_hz = np.fft.rfftfreq(n, 1 / RATE)[np.argmax(spectrum)]
    assert abs(peak_hz - tone) < 400  # the vocoder puts the energy in the tone's mel band


# -- both commands end to end on a tiny run directory of a registered model -----------------------------------
def tiny_run(path, name="samplecnn", overrides=None, tags=("rock", "piano", "quiet")):
    from hvd_magtag.models.registry import create_model
    from hvd_magtag.rundir import RunDir

    overrides = {"m": 3, "n": 3, "width": 0.125} if overrides is None else overrides
    model = create_model(name, n_tags=len(tags), **overrides)
    run = RunDir(path)
    run.write_run_info(
        {"model": name, "overrides": overrides, "spec": model.spec.to_dict(), "tags": list(tags)}
    )
    run.best_weights.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(run.best_weights))
    return run


def test_cli_end_to_end(tmp_path):
    from hvd_magtag.analysis.__main__ import main
    from hvd_magtag.config import Experiment

    run_a, run_b = tiny_run(tmp_path / "run_a"), tiny_run(tmp_path / "run_b")
    audio_dir = tmp_path / "audio"
    (audio_dir / "a").mkdir(parents=True)
    write_clip(audio_dir / "a" / "one.wav", 0.2)
    write_clip(audio_dir / "two.wav", 0.3, freq_hz=880.0)
    Experiment.from_dict({"data": {"dataset": "folder", "root": str(audio_dir)}}).save(run_a.config_path)
    out = tmp_path / "maps"
    # a clip id of the run's dataset (folder dataset: the path relative to its root)
    argv = ["featuremaps", str(run_a.path), "--clip", "a/one.wav", "--out", str(out)]
    assert main([*argv, "--compare", str(run_b.path), "--duration", "0"]) == 0
    layers = json.loads((out / "run_a" / "layers.json").read_text())
    assert layers[0]["name"] == "conv0" and layers[0]["rate_hz"] == pytest.approx(RATE / 3)
    with np.load(out / "run_a" / "featuremaps.npz") as npz:
        assert list(npz["__layers__"]) == [layer["name"] for layer in layers]
    wavs = sorted((out / "run_b").glob("*/ch*.wav"))
    assert len(wavs) == sum(layer["channels"] for layer in layers)
    page = (out / "index.html").read_text()
    assert "run_a" in page and "run_b" in page and page.count("<audio") == 1 + len(wavs) * 2
    assert (out / "index.md").is_file() and len((out / "index.csv").read_text().splitlines()) == 1 + 2 * len(
        wavs
    )

    assert main(["featuremaps", str(run_a.path), "--clip", "no-such-clip", "--out", str(out)]) == 2
    few = [
        "--layers",
        "block1_conv,conv0",
        "--max-channels",
        "2",
        "--tap",
        "activation",
        "--out",
        str(out / "few"),
    ]
    assert main(["featuremaps", str(run_a.path), "--clip", "a/one.wav", *few]) == 0
    with np.load(out / "few" / "run_a" / "featuremaps.npz") as npz:
        assert list(npz["__layers__"]) == ["block1_conv", "conv0"] and npz["conv0"].min() >= 0  # after ReLU
    assert len(list((out / "few" / "run_a").glob("*/ch*.wav"))) == 4

    fout = tmp_path / "filters"
    assert main(["filters", str(run_a.path), "--clips", "2", "--out", str(fout), "--axis", "mel"]) == 0
    assert "one.wav, two.wav" in (fout / "index.md").read_text()  # both dataset clips averaged
    for stem in ["kernels_conv0", "spectra/conv0", "transfer/conv0", "transfer_overview"]:
        for ext in ("png", "svg", "npz"):
            assert (fout / f"{stem}.{ext}").is_file(), f"{stem}.{ext}"
    with np.load(fout / "kernels_conv0.npz") as npz:
        assert npz["values"].shape == (layers[0]["channels"], filters.KERNEL_NFFT // 2 + 1)
        assert np.all(np.diff(npz["peak_hz"]) >= 0)  # sorted by centre frequency
    assert (fout / "transfer" / "conv0.csv").read_text().startswith("channel,")


def test_cli_spectrogram_model(tmp_path):
    from scipy.io import wavfile

    from hvd_magtag.analysis.__main__ import main

    run = tiny_run(tmp_path / "run", "shortchunk_cnn", {"width": 0.0625})
    spec = run.spec
    write_clip(tmp_path / "clip.wav", 0.5, freq_hz=1000.0)
    out = tmp_path / "maps"
    assert main(["featuremaps", str(run.path), "--clip", str(tmp_path / "clip.wav"), "--out", str(out)]) == 0
    layers = json.loads((out / "run" / "layers.json").read_text())
    assert layers[0]["kind"] == "2d" and layers[0]["rate_hz"] == pytest.approx(RATE / spec.fbank.hop_length)
    rate, pcm = wavfile.read(out / "run" / layers[0]["name"] / "ch000.wav")
    assert rate == RATE and len(pcm) == int(0.5 * RATE)
    fout = tmp_path / "filters"
    assert main(["filters", str(run.path), "--clip", str(tmp_path / "clip.wav"), "--out", str(fout)]) == 0
    with np.load(fout / "profiles" / f"{layers[0]['name']}.npz") as npz:
        assert npz["values"].shape == (layers[0]["channels"], spec.fbank.n_mels)
    assert (fout / "profile_transfer" / f"{layers[1]['name']}.png").is_file()


@pytest.mark.parametrize("axis", ["log", "mel"])
def test_heatmap_draws_each_bin_at_its_frequency(tmp_path, axis):
    from hvd_magtag.analysis import plots

    plt = plots._pyplot()
    freqs = np.fft.rfftfreq(512, 1 / RATE)  # 31.25 Hz bins
    values = np.full((2, len(freqs)), 1e-3)
    hot = int(np.argmin(np.abs(freqs - 1000.0)))
    values[1, hot] = 1.0
    fig, ax = plt.subplots()
    image = plots._draw_heatmap(ax, freqs, plots.to_db(values), axis, RATE / 4, 0.0)  # axis ends at 4 kHz
    pixels = np.asarray(image.get_array())
    left, right, _, _ = image.get_extent()
    centres = np.linspace(left, right, pixels.shape[1] + 1)[:-1] + (right - left) / pixels.shape[1] / 2
    inverse = (lambda v: 10.0**v) if axis == "log" else plots._mel_to_hz
    hot_hz = inverse(centres[pixels[1] == pixels[1].max()])
    assert np.all(np.abs(hot_hz - freqs[hot]) <= (freqs[1] - freqs[0]) / 2 + 1e-6)
    assert inverse(right) == pytest.approx(RATE / 4, rel=0.01)
    plt.close(fig)
    # an overview whose only layer lies below the log axis floor still writes the linked figure
    plots.stacked_heatmaps(
        tmp_path / "overview", [("deep", np.linspace(0, 5, 6), np.ones((2, 6)))], "t", "log", 8e3
    )
    assert {p.suffix for p in tmp_path.glob("overview.*")} == {".png", ".svg", ".npz"}


# -- front ends of several 2-D branches (musicnn's timbral / temporal shape) ------------------------------------
BRANCH_FBANK = FbankSpec(n_mels=24, win_length=256, hop_length=128, n_fft=256)


def branched_frontend(spec, n_tags):
    """musicnn-like: a "valid" 1x9 branch (delta kernel on its centre tap) and a "same" 5x1 branch, each
    max-pooled over its remaining bins and squeezed, concatenated, then two 1-D convs with a residual sum."""
    inputs = keras.Input(spec.window_shape(), name="logmel")
    frames, n_mels = spec.window_shape()
    x = keras.layers.Reshape((frames, n_mels, 1))(inputs)
    branches = []
    for name, kernel, padding in (("timbral", (1, 9), "valid"), ("temporal", (5, 1), "same")):
        y = keras.layers.Conv2D(2, kernel, padding=padding, name=f"{name}_conv")(x)
        y = keras.layers.ReLU(name=f"{name}_relu")(y)
        y = keras.layers.MaxPooling2D((1, y.shape[2]), name=f"{name}_pool")(y)
        branches.append(keras.layers.Reshape((frames, 2), name=f"{name}_squeeze")(y))
    z = keras.layers.Concatenate(name="frontend")(branches)
    a = keras.layers.Conv1D(4, 3, padding="same", name="mid1")(z)
    b = keras.layers.Conv1D(4, 3, padding="same", name="mid2")(a)
    z = keras.layers.GlobalMaxPooling1D(name=names.EMBEDDING_LAYER)(keras.layers.Add(name="res")([a, b]))
    return keras.Model(inputs, keras.layers.Dense(n_tags, activation="sigmoid", name=names.OUTPUT_LAYER)(z))


def test_branched_2d_frontend_layers_sit_on_the_mel_axis_and_the_commands_run(tmp_path):
    from hvd_magtag.analysis.__main__ import main
    from hvd_magtag.models import registry

    spec = ModelSpec(input="fbank", sample_rate=RATE, window=4096, fbank=BRANCH_FBANK)
    model = branched_frontend(spec, 3)
    model.spec = spec
    infos = {i.name: i for i in introspect.describe_layers(model, spec)}
    assert [i.kind for i in infos.values()] == ["2d", "2d", "1d", "1d"]
    assert {i.rate_hz for i in infos.values()} == {RATE / BRANCH_FBANK.hop_length}  # all at frame rate
    timbral, temporal = infos["timbral_conv"], infos["temporal_conv"]
    assert (timbral.freq_bins, timbral.mel_first, timbral.mel_step) == (16, 4.0, 1.0)  # 9-band kernel centre
    assert (temporal.freq_bins, temporal.mel_first, temporal.mel_step) == (24, 0.0, 1.0)
    assert infos["mid1"].below in ("timbral_conv", "temporal_conv") and infos["mid2"].below == "mid1"

    # a tone: the delta-kernel branch peaks on the tone's band once its bins are placed (a stretch of its 16
    # bins over 24 bands would put the peak ~3 bands off)
    conv = model.get_layer("timbral_conv")
    kernel = np.zeros((1, 9, 1, 2), np.float32)
    kernel[0, 4, 0, :] = 1.0
    conv.set_weights([kernel, np.zeros(2, np.float32)])
    tone = 1500.0
    wave = (0.5 * np.sin(2 * np.pi * tone * np.arange(8000) / RATE)).astype(np.float32)
    maps, _ = extract.feature_maps(model, wave, ["timbral_conv"])
    profile = stats.mel_profiles(maps["timbral_conv"], BRANCH_FBANK.n_mels, timbral)
    assert (
        np.isnan(profile[0, :3]).all() and np.isnan(profile[0, -3:]).all()
    )  # bands the kernel never centres
    centres = sonify.mel_centres_hz(BRANCH_FBANK, RATE)
    tone_band = int(np.argmin(np.abs(centres - tone)))
    assert abs(int(np.nanargmax(profile[0])) - tone_band) <= 1
    dominant = stats.dominant_frequency_2d(maps["timbral_conv"], spec, timbral)
    assert abs(np.log2(dominant[0] / tone)) < 0.25

    registry.register_model("test_branched_frontend", spec=spec)(branched_frontend)
    try:
        run = tiny_run(tmp_path / "run", "test_branched_frontend", {})
        write_clip(tmp_path / "clip.wav", 0.6, freq_hz=tone)
        out = tmp_path / "maps"
        argv = ["featuremaps", str(run.path), "--clip", str(tmp_path / "clip.wav"), "--out", str(out)]
        assert main([*argv, "--with-filters"]) == 0
        layers = [layer["name"] for layer in json.loads((out / "run" / "layers.json").read_text())]
        assert layers == ["timbral_conv", "temporal_conv", "mid1", "mid2"]
        assert (run.path / "analysis" / "filters" / "profiles" / "timbral_conv.png").is_file()
        assert (
            run.path / "analysis" / "filters" / "spectra" / "mid2.png"
        ).is_file()  # 1-D layers at frame rate
        page = (out / "index.html").read_text()
        assert page.count('<section class="layer"') == 4 and "mel profiles" in page
    finally:
        registry._REGISTRY.pop("test_branched_frontend")
