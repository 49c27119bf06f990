"""What each layer filters: kernel frequency responses, map spectra and layer-to-layer transfer estimates.

Three estimates, all on the **audio-frequency axis** (Hz of the input audio):

1. *Kernel responses* (:func:`kernel_responses`): ``|FFT|`` of each output channel's kernel of the first conv
   layer, zero-padded to :data:`KERNEL_NFFT` points, root-sum-of-squares over input channels, at the layer's
   input rate (the audio rate for the sample-level frame conv). Channels sorted by peak frequency: the
   classic SampleCNN figure.
2. *Map spectra* (:func:`average_spectra`): per conv layer, each channel's magnitude spectrum of its map
   (Welch, Hann, constant detrend, ``nperseg = min(MAP_NPERSEG, steps)``), averaged over clips. A layer at
   rate r covers audio frequencies 0..r/2, at resolution r / nperseg.
3. *Transfer estimates* (:func:`transfer_estimates`): each channel's map spectrum divided by the average (over
   channels) spectrum of the level below: the nearest conv layer upstream in the graph (the main path, not a
   residual shortcut; ``ConvLayerInfo.below``), or the input audio for the first layer.
   **Layers at lower rates are compared on the common frequency range**: the level below (rate
   r_below >= r) is linearly interpolated onto the layer's own grid 0..r/2, and the ratio is only defined
   there; above min(r, r_below)/2 the estimate is NaN (drawn blank). Energy that striding aliases down into
   0..r/2 is part of what the layer does and is not undone. (The alternative, spectra of the sonified,
   upsampled maps on 0..sample_rate/2, gives the same numbers below r/2 and only the resampler's stop band
   above it, so it is not used.) Between two conv layers sit batch norm, activation and pooling: the
   estimate describes the whole step "level below -> this conv's output" (with ``--tap activation`` both
   ends are taken after their batch norm / activation instead).

Spectra are amplitude spectral densities (``sqrt`` of Welch's PSD, map units per sqrt(Hz)), so a transfer
estimate between levels at different rates carries a constant (frequency-independent) factor; figures are
drawn in dB re each figure's maximum, and the numbers beside them are the raw ratios.

Spectrogram (Conv2D) models: time is at frame rate, so instead of (2)/(3) each channel's *frequency profile*
(mean over time of its map along the mel axis, linearly upsampled to ``n_mels``) is reported
(:func:`mel_profile_levels`), with a transfer estimate along the mel axis (each channel's RMS-over-time
profile over the level below's channel-average RMS profile; the first 2-D layer, whose level below is the
input, has none).

Typical use::

    python -m hvd_magtag.analysis filters runs/demo --clips 8 --axis mel
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import welch

from hvd_magtag.analysis import plots
from hvd_magtag.analysis.clips import load_audio, resolve_clip
from hvd_magtag.analysis.extract import feature_maps, map_extractor
from hvd_magtag.analysis.introspect import (
    INPUT_LEVEL,
    AnalysisError,
    ConvLayerInfo,
    conv_layers,
    describe_layers,
    encoder_of,
)
from hvd_magtag.analysis.sonify import mel_centres_hz, onto_mel_bands
from hvd_magtag.data import load_catalog
from hvd_magtag.pretrained import resolve_model
from hvd_magtag.rundir import RunDir

log = logging.getLogger(__name__)

#: FFT length (points) kernels are zero-padded to (more if a kernel is longer).
KERNEL_NFFT = 1024
#: Welch segment length (map steps) for map spectra; shorter maps use their whole length.
MAP_NPERSEG = 512
#: Maps with fewer steps than this per clip get no spectrum (NaN): too short to say anything.
MIN_SPECTRUM_STEPS = 8
#: Added to the level-below spectrum before dividing (relative to its maximum).
TRANSFER_FLOOR = 1e-8
#: Seconds of white noise per probe clip for ``--noise``.
NOISE_PROBE_SECONDS = 10.0


@dataclass
class Level:
    """Average magnitude spectra of one level (the input audio or a conv layer).

    name:      "input" or the layer name.
    rate_hz:   sample rate of the level (Hz); its spectra cover 0..rate_hz/2.
    freqs_hz:  [F] frequency grid (Hz, audio axis).
    mag:       [channels, F] average magnitude spectrum (linear; NaN when the maps were too short).
    below:     name of the level below (ConvLayerInfo.below); "" = the previous level in the list.
    """

    name: str
    rate_hz: float
    freqs_hz: np.ndarray
    mag: np.ndarray
    below: str = ""


# -- (1) kernels ---------------------------------------------------------------------------------------------
def kernel_responses(layer, in_rate_hz: float, n_fft: int = KERNEL_NFFT) -> tuple[np.ndarray, np.ndarray]:
    """Frequency responses of a Conv1D layer's kernels: (freqs_hz [bins], |H| [out_channels, bins]).

    ``|H_c(f)| = sqrt(sum_i |FFT_n(kernel[:, i, c])(f)|^2)`` with the kernel zero-padded to
    ``n = max(n_fft, kernel length)`` points, on the grid ``rfftfreq(n, 1 / in_rate_hz)``.
    """
    kernel = np.asarray(layer.kernel.numpy() if hasattr(layer.kernel, "numpy") else layer.kernel)
    if kernel.ndim != 3:
        raise AnalysisError(
            f"layer {layer.name!r}: kernel responses need a Conv1D kernel, got {kernel.shape}"
        )
    n = max(n_fft, kernel.shape[0])
    spectrum = np.abs(np.fft.rfft(kernel.astype(np.float64), n=n, axis=0))  # [bins, in, out]
    mag = np.sqrt(np.sum(spectrum**2, axis=1)).T  # [out, bins]
    return np.fft.rfftfreq(n, 1.0 / in_rate_hz), mag


def peak_order(freqs_hz: np.ndarray, mag: np.ndarray) -> np.ndarray:
    """Channel order by peak frequency (ties by spectral centroid); NaN rows last: [channels]."""
    filled = np.nan_to_num(mag, nan=-np.inf)
    peak = freqs_hz[np.argmax(filled, axis=1)]
    safe = np.nan_to_num(mag, nan=0.0)
    centroid = (safe * freqs_hz).sum(axis=1) / np.maximum(safe.sum(axis=1), 1e-30)
    all_nan = np.isnan(mag).all(axis=1)
    return np.lexsort((centroid, peak, all_nan))


def peak_frequencies(freqs_hz: np.ndarray, mag: np.ndarray) -> np.ndarray:
    """Frequency (Hz) of each row's maximum, ignoring NaN (NaN for all-NaN rows): [rows]."""
    filled = np.nan_to_num(mag, nan=-np.inf)
    out = freqs_hz[np.argmax(filled, axis=1)].astype(np.float64)
    out[np.isnan(mag).all(axis=1)] = np.nan
    return out


# -- (2) map spectra -----------------------------------------------------------------------------------------
def map_spectrum(maps: np.ndarray, rate_hz: float, nperseg: int) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude spectrum of each channel of ``maps`` [time, channels]: (freqs_hz [F], sqrt(PSD) [channels, F])."""

    freqs, psd = welch(maps, fs=rate_hz, nperseg=nperseg, axis=0, detrend="constant")
    return freqs, np.sqrt(psd).T


def _nperseg(min_samples: int, stride: float) -> int:
    return min(MAP_NPERSEG, int(min_samples // stride))


def average_spectra(
    model, waveforms: list[np.ndarray], layer_names: list[str] | None = None, tap: str = "conv"
) -> tuple[list[Level], list[ConvLayerInfo]]:
    """Input and per-conv-layer average magnitude spectra over ``waveforms`` (float32 [samples] each).

    Returns ([input level, one level per 1-D conv layer], infos of those layers). 2-D layers are skipped
    (see :func:`mel_profile_levels`). ``tap`` as in :func:`~hvd_magtag.analysis.extract.map_extractor`.
    """
    spec = model.spec
    if not waveforms:
        raise AnalysisError("no clips to average over; give --clip, --clips N with a dataset, or --noise")
    min_samples = min(len(w) for w in waveforms)
    sums: dict[str, np.ndarray] = {}
    freqs: dict[str, np.ndarray] = {}
    infos: list[ConvLayerInfo] = []
    n_in = _nperseg(min_samples, 1.0)
    extractor = map_extractor(model, layer_names, tap)
    for w in waveforms:
        f, m = map_spectrum(np.asarray(w, np.float64)[:, None], spec.sample_rate, n_in)
        freqs[INPUT_LEVEL], sums[INPUT_LEVEL] = f, sums.get(INPUT_LEVEL, 0) + m
        maps, infos = feature_maps(model, w, extractor=extractor)
        for info in infos:
            if info.kind != "1d":
                continue
            n = _nperseg(min_samples, info.stride)
            if n < MIN_SPECTRUM_STEPS:
                continue
            f, m = map_spectrum(maps[info.name].astype(np.float64), info.rate_hz, n)
            freqs[info.name], sums[info.name] = f, sums.get(info.name, 0) + m
    levels = [
        Level(INPUT_LEVEL, float(spec.sample_rate), freqs[INPUT_LEVEL], sums[INPUT_LEVEL] / len(waveforms))
    ]
    kept = []
    for info in infos:
        if info.kind != "1d":
            continue
        kept.append(info)
        if info.name in sums:
            mean = sums[info.name] / len(waveforms)
            levels.append(Level(info.name, info.rate_hz, freqs[info.name], mean, info.below))
        else:
            n = max(_nperseg(min_samples, info.stride), 2)
            f = np.fft.rfftfreq(n, 1.0 / info.rate_hz)
            log.warning(
                "%s: %d steps per clip at %.2f Hz: too short for a spectrum (need %d); use longer clips",
                info.name,
                int(min_samples // info.stride),
                info.rate_hz,
                MIN_SPECTRUM_STEPS,
            )
            levels.append(
                Level(info.name, info.rate_hz, f, np.full((info.channels, len(f)), np.nan), info.below)
            )
    return levels, kept


# -- (3) transfer estimates ----------------------------------------------------------------------------------
def transfer_estimates(levels: list[Level]) -> list[Level]:
    """Each level that has a level below in ``levels`` divided by that level's channel-average spectrum.

    ``H_l,c(f) = S_l,c(f) / (mean_c' S_below,c'(f) + floor)`` on level l's own grid; the level below
    (``Level.below``, or the previous level in the list when empty) is linearly interpolated there, and f
    above its Nyquist gives NaN (see module docstring). Levels whose level below is absent are skipped.
    """
    by_name = {lv.name: lv for lv in levels}
    out = []
    for k, level in enumerate(levels):
        below = by_name.get(level.below) if level.below else (levels[k - 1] if k else None)
        if below is None:
            continue
        finite = np.isfinite(below.mag).any()
        avg = np.nanmean(below.mag, axis=0) if finite else np.full(len(below.freqs_hz), np.nan)
        ref = np.interp(level.freqs_hz, below.freqs_hz, avg, right=np.nan)
        floor = TRANSFER_FLOOR * (np.nanmax(ref) if np.isfinite(ref).any() else 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = level.mag / (ref + floor)[None, :]
        out.append(Level(level.name, level.rate_hz, level.freqs_hz, ratio, below.name))
    return out


# -- spectrogram models --------------------------------------------------------------------------------------
def mel_profile_levels(
    model, waveforms: list[np.ndarray], tap: str = "conv"
) -> tuple[list[Level], list[Level]]:
    """For 2-D conv layers: (mean-over-time profiles, transfer along mel) as Levels on the mel-centre grid.

    Profiles: ``mean_t map[t, f, c]`` upsampled to n_mels, averaged over clips -> [channels, n_mels].
    Transfer: per channel ``rms_t map`` profile over the channel-average rms profile of the level below
    (layers whose level below is the input have none). ``freqs_hz`` holds the mel-band centres (Hz).
    """
    spec = model.spec
    n_mels = spec.fbank.n_mels
    centres = mel_centres_hz(spec.fbank, spec.sample_rate)
    means: dict[str, np.ndarray] = {}
    rmss: dict[str, np.ndarray] = {}
    infos: list[ConvLayerInfo] = []
    extractor = map_extractor(model, tap=tap)
    for w in waveforms:
        maps, infos = feature_maps(model, w, extractor=extractor)
        for info in infos:
            if info.kind != "2d":
                continue
            m = maps[info.name].astype(np.float64)
            mean = onto_mel_bands(m.mean(axis=0), n_mels, 0, info).T
            rms = onto_mel_bands(np.sqrt((m**2).mean(axis=0)), n_mels, 0, info).T
            means[info.name] = means.get(info.name, 0) + mean / len(waveforms)
            rmss[info.name] = rmss.get(info.name, 0) + rms / len(waveforms)
    two_d = [i for i in infos if i.kind == "2d"]
    profiles = [Level(i.name, i.rate_hz, centres, means[i.name], i.below) for i in two_d]
    rms_levels = [Level(i.name, i.rate_hz, centres, rmss[i.name], i.below) for i in two_d]
    return profiles, transfer_estimates(rms_levels)


# -- the filters command -------------------------------------------------------------------------------------
def probe_waveforms(
    run, model, n_clips: int, clip_args: list[str], noise: bool, seconds: float, seed: int = 0
) -> tuple[list[np.ndarray], list[str]]:
    """The audio to average over: white noise probes, ``--clip`` files/ids, or ``n_clips`` dataset clips.

    Dataset clips are spread evenly over the run's evaluation split (config.eval.split; all clips if empty).
    Each is cropped to ``seconds`` (0 = whole clip). Returns (waveforms, names).
    """
    spec = model.spec
    limit = int(round(seconds * spec.sample_rate)) if seconds > 0 else None
    if noise:
        rng = np.random.default_rng(seed)
        n = limit or int(NOISE_PROBE_SECONDS * spec.sample_rate)
        count = max(1, n_clips)
        return [(0.1 * rng.standard_normal(n)).astype(np.float32) for _ in range(count)], [
            f"white_noise_{i}" for i in range(count)
        ]
    if clip_args:
        paths = [resolve_clip(run, c) for c in clip_args]
    else:
        config = run.config
        catalog = load_catalog(config.data)
        pool = catalog.split(config.eval.split) or catalog.clips
        if not pool:
            raise AnalysisError(
                f"{run.path}: the run's dataset ({catalog.root}) has no clips; use --clip or --noise"
            )
        picks = np.unique(np.linspace(0, len(pool) - 1, min(n_clips, len(pool))).round().astype(int))
        paths = [Path(pool[i].path) for i in picks]
    waves = [load_audio(p, spec.sample_rate)[:limit] for p in paths]
    return waves, [p.name for p in paths]


def _kernel_figures(out: Path, encoder, infos: list[ConvLayerInfo], axis: str) -> list[str]:
    """(1) for a 1-D first layer: ``kernels_<layer>.*``; returns index lines."""
    if infos[0].kind != "1d":
        return []
    first = conv_layers(encoder)[0]
    freqs, mag = kernel_responses(first, infos[0].in_rate_hz)
    order = peak_order(freqs, mag)
    stem = out / f"kernels_{first.name}"
    plots.heatmap(
        stem,
        freqs,
        mag[order],
        f"{first.name}: kernel |FFT| (n={len(freqs) * 2 - 2}), sorted by peak frequency",
        axis,
        xmax_hz=infos[0].in_rate_hz / 2,
        extra={"channels": order, "peak_hz": peak_frequencies(freqs, mag[order])},
    )
    return [f"- kernel responses of the first layer: [{stem.name}.png]({stem.name}.png)"]


def _level_figure(
    out: Path, folder: str, lv: Level, title: str, axis: str, xmax_hz: float, extra=None, **options
):
    """``out/folder/<level>.*``: the level's channels sorted by peak frequency; returns its index line."""
    order = peak_order(lv.freqs_hz, lv.mag)
    plots.heatmap(
        out / folder / lv.name,
        lv.freqs_hz,
        lv.mag[order],
        title,
        axis,
        xmax_hz=xmax_hz,
        extra={"channels": order, **(extra or {})},
        **options,
    )
    return f"- {folder}/{lv.name}: [png]({folder}/{lv.name}.png)"


def _spectrum_figures(out: Path, model, waves, axis: str, tap: str, title: str) -> list[str]:
    """(2) + (3) for 1-D layers: ``spectra/<layer>.*``, ``transfer/<layer>.*``, ``transfer_overview.*``."""
    lines = []
    levels, _ = average_spectra(model, waves, tap=tap)
    transfers = transfer_estimates(levels)
    for folder, group, what in (
        ("spectra", levels[1:], "map magnitude spectrum, mean over clips"),
        ("transfer", transfers, "transfer estimate vs the level below"),
    ):
        for lv in group:
            title = f"{lv.name} ({lv.rate_hz:.1f} Hz): {what}"
            extra = {"rate_hz": np.array(lv.rate_hz)}
            lines.append(_level_figure(out, folder, lv, title, axis, lv.rate_hz / 2, extra=extra))
    plots.stacked_heatmaps(
        out / "transfer_overview",
        [(lv.name, lv.freqs_hz, lv.mag[peak_order(lv.freqs_hz, lv.mag)]) for lv in transfers],
        f"{title}: transfer estimates per layer (each covers 0..rate/2)",
        axis,
        model.spec.sample_rate / 2,
    )
    return [*lines, "- all layers on one audio axis: [transfer_overview.png](transfer_overview.png)"]


def _profile_figures(out: Path, model, waves, axis: str, tap: str) -> list[str]:
    """2-D layers: ``profiles/<layer>.*`` and ``profile_transfer/<layer>.*``."""
    lines = []
    profiles, profile_transfer = mel_profile_levels(model, waves, tap)
    for folder, group, what in (
        ("profiles", profiles, "mean-over-time mel profile"),
        ("profile_transfer", profile_transfer, "RMS profile vs the layer below"),
    ):
        is_profile = folder == "profiles"
        for lv in group:
            lines.append(
                _level_figure(
                    out,
                    folder,
                    lv,
                    f"{lv.name}: {what}",
                    axis,
                    model.spec.sample_rate / 2,
                    db=not is_profile,
                    colorbar_label="mean map value" if is_profile else "dB re max",
                    ylabel="channel (sorted by peak mel band)",
                )
            )
    return lines


def run_filters(
    run_dir: str | Path,
    n_clips: int = 4,
    out: str | Path | None = None,
    axis: str = "log",
    clip_args: list[str] | None = None,
    noise: bool = False,
    seconds: float = 30.0,
    which: str = "best",
    tap: str = "conv",
) -> Path:
    """The ``filters`` command: write kernel, spectrum and transfer figures (+ numbers) for a run.

    Output (default ``RUN_DIR/analysis/filters``): ``kernels_<layer>.*``, ``spectra/<layer>.*``,
    ``transfer/<layer>.*``, ``transfer_overview.*`` (1-D models) or ``profiles/<layer>.*``,
    ``profile_transfer/<layer>.*`` (2-D models), and ``index.md`` listing them.
    """

    if axis not in plots.AXES:
        raise AnalysisError(f"--axis must be one of {', '.join(plots.AXES)}, got {axis!r}")

    run = RunDir(resolve_model(run_dir))
    model = run.load_model(which)
    out = Path(out).expanduser().resolve() if out else run.path / "analysis" / "filters"
    out.mkdir(parents=True, exist_ok=True)
    lines = [f"# Filters of {run.path.name} ({getattr(model, 'registry_name', model.name)})", ""]
    encoder = encoder_of(model)
    infos = describe_layers(encoder, model.spec)
    lines += _kernel_figures(out, encoder, infos, axis)
    waves, names = probe_waveforms(run, model, n_clips, clip_args or [], noise, seconds)
    lines.append(f"- averaged over {len(waves)} clip(s): {', '.join(names)}")
    if any(i.kind == "1d" for i in infos):
        lines += _spectrum_figures(out, model, waves, axis, tap, run.path.name)
    if any(i.kind == "2d" for i in infos):
        lines += _profile_figures(out, model, waves, axis, tap)
    lines += [
        "",
        "Numbers for each figure are beside it (.npz, .csv). See hvd_magtag.analysis.filters for the method.",
    ]
    (out / "index.md").write_text("\n".join(lines) + "\n")
    log.info("filters: figures written under %s", out)
    return out


def layer_rates(model) -> dict[str, float]:
    """{conv layer name: map rate (Hz)} of ``model`` (convenience for notebooks)."""
    return {i.name: i.rate_hz for i in describe_layers(encoder_of(model), model.spec)}
