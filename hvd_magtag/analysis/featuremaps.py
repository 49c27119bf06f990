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
import html
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hvd_magtag.analysis.clips import load_audio, resolve_clip, to_pcm16, write_wav
from hvd_magtag.analysis.extract import feature_maps, map_extractor
from hvd_magtag.analysis.introspect import AnalysisError
from hvd_magtag.analysis.sonify import TARGET_RMS_DBFS, sonify_1d, sonify_2d
from hvd_magtag.analysis.stats import (
    SILENT_RELATIVE_RMS,
    channel_rms,
    dominant_frequency_1d,
    dominant_frequency_2d,
)

log = logging.getLogger(__name__)


@dataclass
class ChannelRow:
    run: str
    layer: str
    channel: int
    rate_hz: float
    rms: float
    dominant_hz: float
    silent: bool
    wav: str  # path relative to the index


def render_run(
    model,
    waveform: np.ndarray,
    out_dir: Path,
    run_label: str,
    layer_names: list[str] | None = None,
    max_channels: int = 0,
    tap: str = "conv",
) -> list[ChannelRow]:
    """Extract, save and sonify every selected conv layer of ``model`` for ``waveform``.

    Writes ``out_dir/featuremaps.npz`` ({layer: map}, ``__layers__``, ``__rates_hz__``, ``__strides__``,
    ``__sample_rate__``), ``out_dir/layers.json`` and ``out_dir/<layer>/ch<NNN>.wav``. ``max_channels`` > 0
    keeps only the loudest (highest map RMS) channels of each layer; ``tap`` as in :func:`map_extractor`.
    Returns one row per written channel.
    """
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
    n_samples = len(waveform)
    rows: list[ChannelRow] = []
    for info in infos:
        m = maps[info.name]
        rms = channel_rms(m)
        channels = np.arange(info.channels)
        if max_channels and max_channels < info.channels:
            channels = np.sort(np.argsort(-rms, kind="stable")[:max_channels])
        sub = m[..., channels]
        if info.kind == "1d":
            audio = sonify_1d(sub, info.rate_hz, spec.sample_rate, n_samples)
            dominant = dominant_frequency_1d(sub, info.rate_hz)
        else:
            audio = sonify_2d(sub, spec, n_samples)
            dominant = dominant_frequency_2d(sub, spec)
        layer_dir = out_dir / info.name
        layer_dir.mkdir(exist_ok=True)
        loudest = float(rms.max()) if rms.size else 0.0
        pcm = to_pcm16(audio.T)  # [channels, samples]
        for k, c in enumerate(channels):
            wav = layer_dir / f"ch{c:03d}.wav"
            write_wav(wav, pcm[k], spec.sample_rate)
            rows.append(
                ChannelRow(
                    run=run_label,
                    layer=info.name,
                    channel=int(c),
                    rate_hz=float(info.rate_hz),
                    rms=float(rms[c]),
                    dominant_hz=float(dominant[k]),
                    silent=bool(rms[c] <= SILENT_RELATIVE_RMS * max(loudest, 1e-30)),
                    wav=os.path.relpath(wav, out_dir.parent),
                )
            )
        log.info("%s: %s %d channels at %.1f Hz", run_label, info.name, len(channels), info.rate_hz)
    return rows


def _fmt_hz(v: float) -> str:
    return "" if not np.isfinite(v) else f"{v:.1f}"


def write_index(out: Path, rows: list[ChannelRow], clip_wav: str, title: str, tap: str = "conv") -> None:
    """``index.html`` (a table with <audio> players; runs side by side), ``index.md`` and ``index.csv``."""
    where = "conv outputs" if tap == "conv" else "conv outputs after their batch norm / activation"
    fields = list(ChannelRow.__dataclass_fields__)
    with open(out / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(asdict(r))
    md = [f"# {title}", "", f"Input clip: [{clip_wav}]({clip_wav}); maps are {where}.", ""]
    md += [
        "| run | layer | channel | rate (Hz) | RMS | dominant (Hz) | audio |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        note = " (silent)" if r.silent else ""
        md.append(
            f"| {r.run} | {r.layer} | {r.channel} | {r.rate_hz:.1f} | {r.rms:.4g} | "
            f"{_fmt_hz(r.dominant_hz)} | [wav]({r.wav}){note} |"
        )
    (out / "index.md").write_text("\n".join(md) + "\n")

    runs = list(dict.fromkeys(r.run for r in rows))
    keyed: dict[tuple[str, int], dict[str, ChannelRow]] = {}
    for r in rows:
        keyed.setdefault((r.layer, r.channel), {})[r.run] = r
    esc = html.escape
    head = "".join(f"<th colspan=4>{esc(run)}</th>" for run in runs)
    sub = "<th>rate (Hz)</th><th>RMS</th><th>dominant (Hz)</th><th>listen</th>" * len(runs)
    body = []
    for (layer, channel), per_run in keyed.items():
        cells = []
        for run in runs:
            r = per_run.get(run)
            if r is None:
                cells.append("<td colspan=4>-</td>")
                continue
            cls = ' class="silent"' if r.silent else ""
            cells.append(
                f"<td>{r.rate_hz:.1f}</td><td{cls}>{r.rms:.4g}</td><td>{_fmt_hz(r.dominant_hz)}</td>"
                f'<td><audio controls preload="none" src="{esc(r.wav)}"></audio></td>'
            )
        body.append(f"<tr><td>{esc(layer)}</td><td>{channel}</td>{''.join(cells)}</tr>")
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}} .silent{{color:#b00}}</style></head>
<body><h1>{esc(title)}</h1>
<p>Input clip: <audio controls preload="none" src="{esc(clip_wav)}"></audio></p>
<p>Maps are {where}. Each channel's map is upsampled from the layer rate to the audio rate (polyphase), DC removed and
normalised to {TARGET_RMS_DBFS:g} dBFS RMS with a soft peak limiter; 2-D maps are noise-vocoded through the
mel filterbank. RMS is of the map itself (before normalisation); dominant = peak of the map's spectrum
(1-D) or centre of the mel band where the channel's time-averaged map peaks (2-D); red = silent channel.</p>
<table><tr><th rowspan=2>layer</th><th rowspan=2>channel</th>{head}</tr><tr>{sub}</tr>
{chr(10).join(body)}
</table></body></html>
"""
    (out / "index.html").write_text(page)


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
) -> Path:
    """The ``featuremaps`` command for one run (or two, side by side); returns the output folder.

    ``duration_seconds`` None = one model window of the first run (the whole clip if shorter); 0 = whole clip.
    The output folder defaults to ``RUN_DIR/analysis/featuremaps/<clip stem>``.
    """
    from hvd_magtag.rundir import RunDir

    runs = [RunDir(p) for p in run_dirs]
    src = resolve_clip(runs[0], clip)
    first_spec = runs[0].spec
    if out is None:
        out = runs[0].path / "analysis" / "featuremaps" / src.stem
    out = Path(out).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows: list[ChannelRow] = []
    labels = _run_labels(runs)
    clip_wav = ""
    for run, label in zip(runs, labels):
        model = run.load_model(which)
        spec = model.spec
        waveform = load_audio(src, spec.sample_rate)
        duration = first_spec.window_seconds if duration_seconds is None else duration_seconds
        begin = int(round(start_seconds * spec.sample_rate))
        end = len(waveform) if duration <= 0 else begin + int(round(duration * spec.sample_rate))
        waveform = waveform[begin:end]
        if waveform.size == 0:
            raise AnalysisError(f"--start {start_seconds}: beyond the end of {src}")
        rows += render_run(model, waveform, out / label, label, layer_names, max_channels, tap)
        if not clip_wav:
            clip_wav = "input.wav"
            write_wav(out / clip_wav, np.clip(waveform, -1.0, 1.0), spec.sample_rate)
    title = f"Feature maps of {src.name}: " + " vs ".join(labels)
    write_index(out, rows, clip_wav, title, tap)
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
