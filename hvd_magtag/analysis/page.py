"""The featuremaps page: ``index.html`` rendered from the packaged Jinja2 template
``hvd_magtag/resources/templates/featuremaps.html.j2``.

The page shows the input's spectrogram and player, then one column per run (two with ``--compare``, side by
side); in each, every analysed layer as a grid of channel images (:mod:`~hvd_magtag.analysis.images`)
sorted by dominant frequency, each with its audio player and numbers, and the layer's filter heatmaps from
``python -m hvd_magtag.analysis filters`` beside the grid when that run has them. All paths in the page are
relative to its folder, which holds everything it shows (filter figures are copied in), so the folder can
be moved or served as it is.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import jinja2
import numpy as np

from hvd_magtag import resources
from hvd_magtag.analysis.sonify import TARGET_RMS_DBFS
from hvd_magtag.analysis.stats import by_dominant_frequency

#: The packaged template of the page (under hvd_magtag/resources/templates/).
TEMPLATE = "featuremaps.html.j2"
#: Figures of ``analysis filters`` shown beside a layer: (file under the filters folder, caption).
LAYER_FIGURES = (
    ("kernels_{layer}.png", "kernel responses"),
    ("spectra/{layer}.png", "map spectra"),
    ("transfer/{layer}.png", "transfer vs level below"),
    ("profiles/{layer}.png", "mel profiles"),
    ("profile_transfer/{layer}.png", "profile transfer"),
)
#: Figures of ``analysis filters`` about the whole run.
RUN_FIGURES = (("transfer_overview.png", "transfer estimates of every layer on one audio axis"),)


def tap_text(tap: str) -> str:
    return "conv outputs" if tap == "conv" else "conv outputs after their batch norm / activation"


def environment() -> jinja2.Environment:
    """The Jinja2 environment of the analysis templates (HTML autoescaped, undefined names are errors)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(resources.path("templates")),
        autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def collect_filters(filters_dir: Path, run_out: Path) -> dict[str, list[dict[str, str]]]:
    """Copy the filter figures of one run (``filters_dir``, the ``filters`` command's output) into
    ``run_out/filters/`` and return them by layer: {layer or "": [{"src", "caption"}]} ("" = whole run).
    Paths are relative to ``run_out.parent`` (the page's folder). Empty when the run has none."""
    found: dict[str, list[dict[str, str]]] = {}
    if not filters_dir.is_dir():
        return found

    def take(rel: str, caption: str, key: str) -> None:
        source = filters_dir / rel
        if source.is_file():
            target = run_out / "filters" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            found.setdefault(key, []).append(
                {"src": os.path.relpath(target, run_out.parent), "caption": caption}
            )

    layers = {p.stem for p in filters_dir.glob("*/*.png")} | {
        p.stem[len("kernels_") :] for p in filters_dir.glob("kernels_*.png")
    }
    for layer in sorted(layers):
        for pattern, caption in LAYER_FIGURES:
            take(pattern.format(layer=layer), caption, layer)
    for rel, caption in RUN_FIGURES:
        take(rel, caption, "")
    return found


def _hz(v: float) -> str:
    if not np.isfinite(v):
        return "-"
    return f"{v / 1000:.2f} kHz" if v >= 1000 else f"{v:.1f} Hz"


def _layer_context(info, rows, shows: str, figures) -> dict:
    """One layer's part of the page: its numbers, its channels sorted by dominant frequency, its figures."""
    order = by_dominant_frequency(np.array([r.dominant_hz for r in rows]))
    return {
        "name": info.name,
        "kind": info.kind,
        "rate": _hz(info.rate_hz),
        "stride": f"{info.stride:g}",
        "below": info.below,
        "channels_total": info.channels,
        "shows": shows,
        "figures": figures,
        "channels": [
            {
                "channel": rows[k].channel,
                "dominant": _hz(rows[k].dominant_hz),
                "rms": f"{rows[k].rms:.3g}",
                "silent": rows[k].silent,
                "image": rows[k].image,
                "wav": rows[k].wav,
            }
            for k in order
        ],
    }


def context(title, clip_name, clip_wav, input_png, renders, filters, tap) -> dict:
    """The template's variables (plain data: strings, numbers, lists, dicts)."""
    runs = []
    for render, figures in zip(renders, filters):
        by_layer: dict[str, list] = {}
        for row in render.rows:
            by_layer.setdefault(row.layer, []).append(row)
        spec = render.spec
        runs.append(
            {
                "label": render.label,
                "model": render.model,
                "input": f"{spec.input}, {spec.sample_rate} Hz, {spec.window_seconds:.2f} s windows",
                "figures": figures.get("", []),
                "has_filters": bool(figures),
                "layers": [
                    _layer_context(
                        info, by_layer.get(info.name, []), render.shows[info.name], figures.get(info.name, [])
                    )
                    for info in render.layers
                ],  # fmt: skip
            }
        )
    return {
        "title": title,
        "clip_name": clip_name,
        "clip_wav": clip_wav,
        "input_png": input_png,
        "maps_are": tap_text(tap),
        "target_rms_dbfs": f"{TARGET_RMS_DBFS:g}",
        "runs": runs,
    }


def write_page(out: Path, title, clip_name, clip_wav, input_png, renders, filters, tap: str = "conv") -> Path:
    """Render ``out/index.html`` from :data:`TEMPLATE`; returns its path."""
    html = (
        environment()
        .get_template(TEMPLATE)
        .render(**context(title, clip_name, clip_wav, input_png, renders, filters, tap))
    )
    target = out / "index.html"
    target.write_text(html)
    return target
