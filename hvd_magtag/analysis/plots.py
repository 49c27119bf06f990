"""Figures for :mod:`hvd_magtag.analysis`: channel x frequency heatmaps on a log or mel axis.

Every figure is written as ``<stem>.png`` and ``<stem>.svg`` (the heatmap itself an embedded image) with its numbers beside it as ``<stem>.npz``
(all arrays) and ``<stem>.csv`` (one row per channel, one column per frequency in Hz), so a notebook can
redraw it without re-running the model. matplotlib runs on the Agg backend (no display needed).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

#: Frequency axes a heatmap can be drawn on.
AXES = ("log", "mel")
#: Columns of a heatmap image (frequency axis resolution of the drawing; the numbers beside keep every bin).
HEATMAP_PIXELS = 800
#: Dynamic range (dB) shown in heatmaps below each figure's maximum.
DB_RANGE = 60.0
#: Lowest frequency (Hz) of the shared log axis of overview figures; layers whose Nyquist is below it are
#: left out of the overview (their own figures have their own axis).
LOG_AXIS_FLOOR_HZ = 20.0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """The mel scale of our filterbanks (:func:`hvd_magtag.features.hz_to_mel`)."""
    from hvd_magtag.features import hz_to_mel as features_hz_to_mel

    return features_hz_to_mel(hz)


def save_numbers(stem: Path, freqs_hz: np.ndarray, values: np.ndarray, **extra: np.ndarray) -> None:
    """``stem.npz`` (freqs_hz, values [rows, freqs], extra arrays) and ``stem.csv`` (row, then one column per Hz)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(stem.with_suffix(".npz"), freqs_hz=freqs_hz, values=values, **extra)
    rows = extra.get("channels", np.arange(values.shape[0]))
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["channel", *[f"{v:.3f}" for v in freqs_hz]])
        for r, row in zip(rows, values):
            writer.writerow([int(r), *[f"{v:.6g}" for v in row]])


def to_db(values: np.ndarray, reference: float | None = None) -> np.ndarray:
    """20 log10(values / reference), reference = finite max; floors at -DB_RANGE; NaN stays NaN."""
    v = np.asarray(values, np.float64)
    ref = reference if reference is not None else np.nanmax(v) if np.isfinite(v).any() else 1.0
    ref = ref if ref and ref > 0 else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        db = 20.0 * np.log10(np.maximum(v, 1e-30) / ref)
    db = np.where(np.isnan(v), np.nan, np.maximum(db, -DB_RANGE))
    return db


def _edges(centres: np.ndarray) -> np.ndarray:
    c = np.asarray(centres, np.float64)
    if len(c) == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _hz_ticks(lo: float, hi: float, forward) -> np.ndarray:
    """Round Hz values (0 and 1-2-5 steps) in [lo, hi], at least 1/10 of the axis apart once transformed."""
    candidates = [0.0] + [m * 10.0**e for e in range(-2, 6) for m in (1, 2, 5)]
    inside = [t for t in candidates if lo <= t <= hi * 1.0001 and (t > 0 or lo <= 0)]
    gap = (forward(hi) - forward(lo)) / 10
    kept: list[float] = []
    for t in inside:
        if not kept or forward(t) - forward(kept[-1]) >= gap:
            kept.append(t)
    return np.array(kept)


def _hz_label(t: float) -> str:
    return f"{t / 1000:g}k" if t >= 1000 else f"{t:g}"


def _draw_heatmap(ax, freqs_hz: np.ndarray, values_db: np.ndarray, axis: str, xmax_hz: float, xmin_hz: float):
    """Draw rows x frequency bins on ``ax`` with x in log10(Hz) or mel (ticks labelled in Hz).

    Each of :data:`HEATMAP_PIXELS` columns, evenly spaced on the chosen axis from ``xmin_hz`` (0 on a log
    axis = the first positive bin) to ``xmax_hz``, shows the frequency bin it falls in
    (nearest, no smoothing); beyond the last bin it stays blank. Drawn as one image: fast in PNG and SVG.
    """
    if axis not in AXES:
        raise ValueError(f"--axis must be one of {', '.join(AXES)}, got {axis!r}")
    freqs_hz = np.asarray(freqs_hz, np.float64)
    edges = _edges(freqs_hz)
    if axis == "log":
        positive = freqs_hz[freqs_hz > 0]
        lo = xmin_hz if xmin_hz > 0 else (positive[0] if len(positive) else LOG_AXIS_FLOOR_HZ)
        forward, inverse = np.log10, lambda v: 10.0**v
    else:
        lo = xmin_hz
        forward, inverse = hz_to_mel, _mel_to_hz
    hi = max(xmax_hz, lo * 1.01 + 1e-9)
    grid = np.linspace(forward(lo), forward(hi), HEATMAP_PIXELS)
    column = np.searchsorted(edges, inverse(grid), side="right") - 1
    inside = (column >= 0) & (column < len(freqs_hz))
    image = np.full((values_db.shape[0], HEATMAP_PIXELS), np.nan)
    image[:, inside] = values_db[:, column[inside]]
    step = (grid[1] - grid[0]) / 2 if len(grid) > 1 else 0.5
    im = ax.imshow(
        image,
        aspect="auto",
        origin="lower",
        interpolation="nearest",
        extent=(grid[0] - step, grid[-1] + step, 0, values_db.shape[0]),
    )
    ticks = _hz_ticks(lo, hi, forward)
    ax.set_xticks(forward(ticks))
    ax.set_xticklabels([_hz_label(t) for t in ticks])
    ax.set_xlim(grid[0] - step, grid[-1] + step)
    ax.set_xlabel("frequency (Hz, audio axis)")
    return im


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    from hvd_magtag.features import mel_to_hz

    return mel_to_hz(mel)


def heatmap(
    stem: Path,
    freqs_hz: np.ndarray,
    values: np.ndarray,
    title: str,
    axis: str = "log",
    xmax_hz: float | None = None,
    ylabel: str = "channel (sorted by peak frequency)",
    colorbar_label: str = "dB re max",
    extra: dict[str, np.ndarray] | None = None,
    db: bool = True,
) -> None:
    """Channel x frequency heatmap of ``values`` [rows, freqs]: magnitudes drawn in dB re the max (``db``),
    or any values drawn linearly (``db=False``, e.g. mean map values that can be negative).

    Rows are drawn in the given order (sort beforehand); NaN cells (beyond a layer's Nyquist) stay blank.
    Writes ``stem.{png,svg,npz,csv}``.
    """
    plt = _pyplot()
    values = np.asarray(values, np.float64)
    save_numbers(stem, np.asarray(freqs_hz, np.float64), values, **(extra or {}))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    xmax = float(xmax_hz if xmax_hz is not None else np.nanmax(freqs_hz))
    mesh = _draw_heatmap(ax, freqs_hz, to_db(values) if db else values, axis, xmax, 0.0)
    if db:
        mesh.set_clim(-DB_RANGE, 0)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.colorbar(mesh, ax=ax, label=colorbar_label)
    _save(fig, stem)
    plt.close(fig)


def stacked_heatmaps(
    stem: Path,
    panels: list[tuple[str, np.ndarray, np.ndarray]],
    title: str,
    axis: str,
    xmax_hz: float,
) -> None:
    """One heatmap per (name, freqs_hz, values) panel, stacked on a shared audio-frequency axis 0..xmax_hz.

    Layers at lower rates fill only their 0..rate/2 part of the axis. On a log axis (from
    :data:`LOG_AXIS_FLOOR_HZ`) panels whose highest frequency is below the floor are left out and named in the
    title. Numbers of every panel go to ``stem.npz`` as ``<name>__freqs_hz`` / ``<name>__values`` (no CSV:
    panels have different grids).
    """
    plt = _pyplot()
    stem.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for name, f, v in panels:
        arrays[f"{name}__freqs_hz"] = np.asarray(f)
        arrays[f"{name}__values"] = np.asarray(v)
    np.savez_compressed(stem.with_suffix(".npz"), **arrays)
    xmin = LOG_AXIS_FLOOR_HZ if axis == "log" else 0.0
    hidden = [name for name, f, _ in panels if np.nanmax(f) <= xmin]
    panels = [p for p in panels if p[0] not in hidden]
    if hidden:
        title += f"\n(below {xmin:g} Hz, not shown: {', '.join(hidden)})"
    if not panels:  # still write the figure the index links to, saying why it is empty
        fig, ax = plt.subplots(figsize=(7.5, 2))
        ax.text(0.5, 0.5, "no layer reaches the axis", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
        _save(fig, stem)
        plt.close(fig)
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(7.5, 1.6 * len(panels) + 1), squeeze=False, sharex=True)
    mesh = None
    for ax, (name, f, v) in zip(axes[:, 0], panels):
        mesh = _draw_heatmap(ax, f, to_db(v), axis, xmax_hz, xmin)
        mesh.set_clim(-DB_RANGE, 0)
        ax.set_ylabel(name, fontsize=8)
        ax.set_yticks([])
    for ax in axes[:-1, 0]:
        ax.set_xlabel("")
    axes[0, 0].set_title(title, fontsize=10)
    if mesh is not None:
        fig.colorbar(mesh, ax=axes[:, 0].tolist(), label="dB re each layer's max")
    _save(fig, stem)
    plt.close(fig)


def _save(fig, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(stem.with_suffix(".png"), dpi=110, bbox_inches="tight")
    fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight")
