"""Figures for :mod:`hvd_magtag.analysis`: channel x frequency heatmaps on a log or mel axis.

Every figure is written as ``<stem>.png`` and ``<stem>.svg`` (heatmap cells rasterised inside the SVG) with its numbers beside it as ``<stem>.npz``
(all arrays) and ``<stem>.csv`` (one row per channel, one column per frequency in Hz), so a notebook can
redraw it without re-running the model. matplotlib runs on the Agg backend (no display needed).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

#: Frequency axes a heatmap can be drawn on.
AXES = ("log", "mel")
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


def _draw_heatmap(ax, freqs_hz: np.ndarray, values_db: np.ndarray, axis: str, xmax_hz: float, xmin_hz: float):
    """Draw on ``ax`` (x from ``xmin_hz`` to ``xmax_hz``; a log axis starts at the first positive bin)."""
    freqs_hz = np.asarray(freqs_hz, np.float64)
    if axis == "log":
        keep = freqs_hz > 0
        x = freqs_hz[keep]
        edges = np.exp(_edges(np.log(x))) if len(x) > 1 else np.array([x[0] / 2, x[0] * 2])
        mesh = ax.pcolormesh(edges, np.arange(values_db.shape[0] + 1), values_db[:, keep], shading="flat")
        ax.set_xscale("log")
        ax.set_xlim(max(xmin_hz, edges[0]), xmax_hz)
    elif axis == "mel":
        edges = _edges(hz_to_mel(freqs_hz))
        mesh = ax.pcolormesh(edges, np.arange(values_db.shape[0] + 1), values_db, shading="flat")
        ticks = np.array([t for t in (0, 250, 500, 1000, 2000, 4000, 8000, 16000) if t <= xmax_hz])
        ax.set_xticks(hz_to_mel(ticks))
        ax.set_xticklabels([f"{t / 1000:g}k" if t >= 1000 else str(t) for t in ticks])
        ax.set_xlim(float(hz_to_mel(xmin_hz)), float(hz_to_mel(xmax_hz)))
    else:
        raise ValueError(f"--axis must be one of {', '.join(AXES)}, got {axis!r}")
    mesh.set_rasterized(
        True
    )  # SVG: the cells as one embedded image (a path per cell is ~50 MB), axes as vectors
    ax.set_xlabel("frequency (Hz, audio axis)")
    return mesh


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
    if not panels:
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
