"""Feature maps you can listen to: the ``featuremaps`` command (extract every conv layer's output for a clip,
sonify each channel, write the numbers and the page).

The steps live in their own modules: :mod:`~hvd_magtag.analysis.introspect` (which layers, at what rate),
:mod:`~hvd_magtag.analysis.clips` (audio in and out), :mod:`~hvd_magtag.analysis.extract` (the maps),
:mod:`~hvd_magtag.analysis.sonify` (maps as sound), :mod:`~hvd_magtag.analysis.stats` (per-channel
numbers) and :mod:`~hvd_magtag.analysis.page` (the HTML page, from a template).

Typical use::

    python -m hvd_magtag.analysis featuremaps runs/demo --clip song.mp3 --layers conv1,conv3
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hvd_magtag.analysis import images, page
from hvd_magtag.analysis.clips import load_audio, resolve_clip, to_pcm16, write_wav
from hvd_magtag.analysis.extract import feature_maps, map_extractor
from hvd_magtag.analysis.filters import run_filters
from hvd_magtag.analysis.introspect import AnalysisError, ConvLayerInfo
from hvd_magtag.analysis.sonify import sonify_1d, sonify_2d
from hvd_magtag.analysis.stats import (
    SILENT_RELATIVE_RMS,
    channel_rms,
    dominant_frequency_1d,
    dominant_frequency_2d,
)
from hvd_magtag.pretrained import resolve_model
from hvd_magtag.rundir import RunDir

log = logging.getLogger(__name__)


@dataclass
class ChannelRow:
    """One rendered channel (a row of ``index.csv``); paths are relative to the page's folder."""

    run: str
    layer: str
    channel: int
    rate_hz: float
    rms: float
    dominant_hz: float
    silent: bool
    wav: str
    image: str = ""


@dataclass
class RunRender:
    """What :func:`render_run` made for one run: its layers (in order) and one row per channel."""

    label: str
    model: str
    spec: Any
    layers: list[ConvLayerInfo] = field(default_factory=list)
    shows: dict[str, str] = field(default_factory=dict)  # layer -> what its channel images show
    rows: list[ChannelRow] = field(default_factory=list)


def _render_layer(
    info: ConvLayerInfo, maps: np.ndarray, spec, n_samples: int, layer_dir: Path, max_channels: int
):
    """Sonify, picture and describe one layer's channels: (rows without run/paths, what the images show)."""
    rms = channel_rms(maps)
    channels = np.arange(info.channels)
    if max_channels and max_channels < info.channels:
        channels = np.sort(np.argsort(-rms, kind="stable")[:max_channels])
    sub = maps[..., channels]
    if info.kind == "1d":
        audio = sonify_1d(sub, info.rate_hz, spec.sample_rate, n_samples)
        dominant = dominant_frequency_1d(sub, info.rate_hz)
    else:
        audio = sonify_2d(sub, spec, n_samples, info=info)
        dominant = dominant_frequency_2d(sub, spec, info)
    pictures, shows = images.channel_images(sub, info.kind, info.rate_hz)
    layer_dir.mkdir(parents=True, exist_ok=True)
    loudest = float(rms.max()) if rms.size else 0.0
    pcm = to_pcm16(audio.T)  # [channels, samples]
    made = []
    for k, c in enumerate(channels):
        wav, png = layer_dir / f"ch{c:03d}.wav", layer_dir / f"ch{c:03d}.png"
        write_wav(wav, pcm[k], spec.sample_rate)
        images.save_image(png, pictures[k])
        silent = bool(rms[c] <= SILENT_RELATIVE_RMS * max(loudest, 1e-30))
        made.append((int(c), float(rms[c]), float(dominant[k]), silent, wav, png))
    return made, shows


def render_run(
    model,
    waveform: np.ndarray,
    out_dir: Path,
    run_label: str,
    layer_names: list[str] | None = None,
    max_channels: int = 0,
    tap: str = "conv",
) -> list[ChannelRow]:
    """Extract, save, sonify and picture every selected conv layer of ``model`` for ``waveform``.

    Writes ``out_dir/featuremaps.npz`` ({layer: map}, ``__layers__``, ``__rates_hz__``, ``__strides__``,
    ``__sample_rate__``), ``out_dir/layers.json`` and ``out_dir/<layer>/ch<NNN>.wav`` + ``.png``
    (:mod:`~hvd_magtag.analysis.images`). ``max_channels`` > 0 keeps only the loudest (highest map RMS)
    channels of each layer; ``tap`` as in :func:`~hvd_magtag.analysis.extract.map_extractor`. Returns one
    row per written channel (see :func:`render_run_details` for the layers too).
    """
    return render_run_details(model, waveform, out_dir, run_label, layer_names, max_channels, tap).rows


def render_run_details(
    model, waveform, out_dir: Path, run_label: str, layer_names=None, max_channels=0, tap="conv"
):
    """:func:`render_run`, returning the :class:`RunRender` (layers, what their images show, rows)."""
    spec = model.spec
    out_dir.mkdir(parents=True, exist_ok=True)
    maps, infos = feature_maps(model, waveform, extractor=map_extractor(model, layer_names, tap))
    np.savez(
        out_dir / "featuremaps.npz",
        __layers__=np.array([i.name for i in infos]),
        __rates_hz__=np.array([i.rate_hz for i in infos]),
        __strides__=np.array([i.stride for i in infos]),
        __sample_rate__=np.array(spec.sample_rate),
        **maps,
    )
    (out_dir / "layers.json").write_text(json.dumps([asdict(i) for i in infos], indent=2) + "\n")
    result = RunRender(run_label, getattr(model, "registry_name", model.name), spec, list(infos))
    for info in infos:
        made, result.shows[info.name] = _render_layer(
            info, maps[info.name], spec, len(waveform), out_dir / info.name, max_channels
        )
        for c, rms, dominant, silent, wav, png in made:
            rel = os.path.relpath(wav, out_dir.parent), os.path.relpath(png, out_dir.parent)
            result.rows.append(
                ChannelRow(run_label, info.name, c, float(info.rate_hz), rms, dominant, silent, *rel)
            )
        log.info("%s: %s %d channels at %.1f Hz", run_label, info.name, len(made), info.rate_hz)
    return result


def _fmt_hz(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.1f}"


def write_tables(out: Path, rows: list[ChannelRow], clip_wav: str, title: str, tap: str = "conv") -> None:
    """``index.md`` (a table linking every channel's WAV) and ``index.csv`` (one row per channel)."""
    with open(out / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(ChannelRow.__dataclass_fields__))
        writer.writeheader()
        for r in rows:
            writer.writerow(asdict(r))
    md = [f"# {title}", "", f"Input clip: [{clip_wav}]({clip_wav}); maps are {page.tap_text(tap)}.", ""]
    md += [
        "| run | layer | channel | rate (Hz) | RMS | dominant (Hz) | audio | image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        note = " (silent)" if r.silent else ""
        md.append(
            f"| {r.run} | {r.layer} | {r.channel} | {r.rate_hz:.1f} | {r.rms:.4g} | "
            f"{_fmt_hz(r.dominant_hz)} | [wav]({r.wav}){note} | [png]({r.image}) |"
        )
    (out / "index.md").write_text("\n".join(md) + "\n")


def run_featuremaps(
    run_dirs: list[str | Path],
    clip: str,
    out: str | Path | None = None,
    layer_names: list[str] | None = None,
    max_channels: int = 0,
    start_seconds: float = 0.0,
    duration_seconds: float | None = None,
    which: str = "best",
    tap: str = "conv",
    with_filters: bool = False,
) -> Path:
    """The ``featuremaps`` command for one run (or two, side by side); returns the output folder.

    ``duration_seconds`` None = one model window of the first run (the whole clip if shorter); 0 = whole clip.
    The output folder defaults to ``RUN_DIR/analysis/featuremaps/<clip stem>``. Each run's filter figures
    (``python -m hvd_magtag.analysis filters``, in ``RUN_DIR/analysis/filters``) are shown beside its layers
    when present; ``with_filters`` computes them first (on this clip).
    """

    runs = [RunDir(resolve_model(p)) for p in run_dirs]
    src = resolve_clip(runs[0], clip)
    first_spec = runs[0].spec
    out = Path(out).expanduser().resolve() if out else runs[0].path / "analysis" / "featuremaps" / src.stem
    out.mkdir(parents=True, exist_ok=True)
    renders: list[RunRender] = []
    clip_wav, input_png = "input.wav", "input.png"
    for run, label in zip(runs, _run_labels(runs)):
        model = run.load_model(which)
        spec = model.spec
        waveform = load_audio(src, spec.sample_rate)
        duration = first_spec.window_seconds if duration_seconds is None else duration_seconds
        begin = int(round(start_seconds * spec.sample_rate))
        end = len(waveform) if duration <= 0 else begin + int(round(duration * spec.sample_rate))
        waveform = waveform[begin:end]
        if waveform.size == 0:
            raise AnalysisError(f"--start {start_seconds}: beyond the end of {src}")
        renders.append(
            render_run_details(model, waveform, out / label, label, layer_names, max_channels, tap)
        )
        if not renders[1:]:
            write_wav(out / clip_wav, np.clip(waveform, -1.0, 1.0), spec.sample_rate)
            images.input_spectrogram(out / input_png, waveform, spec.sample_rate, f"input: {src.name}")
        if with_filters:
            run_filters(run.path, clip_args=[str(src)], which=which, tap=tap)
    title = f"Feature maps of {src.name}: " + " vs ".join(r.label for r in renders)
    rows = [row for r in renders for row in r.rows]
    write_tables(out, rows, clip_wav, title, tap)
    filters = [
        page.collect_filters(run.path / "analysis" / "filters", out / r.label)
        for run, r in zip(runs, renders)
    ]
    page.write_page(out, title, src.name, clip_wav, input_png, renders, filters, tap)
    log.info("featuremaps: %d channels written under %s (open index.html)", len(rows), out)
    return out


def _run_labels(runs) -> list[str]:
    names = [r.path.name for r in runs]
    if len(set(names)) < len(names):
        names = [f"{i}_{n}" for i, n in enumerate(names)]
    return names


def summarise(rows: list[ChannelRow]) -> dict[str, Any]:
    """Counts per run and layer (for logs and benchmarks)."""
    out: dict[str, Any] = {}
    for r in rows:
        out.setdefault(r.run, {}).setdefault(r.layer, 0)
        out[r.run][r.layer] += 1
    return out
