"""``python -m hvd_magtag.analysis {featuremaps,filters} RUN_DIR ...`` (see hvd_magtag.analysis)."""

from __future__ import annotations

import argparse
import logging
import sys
import time

from hvd_magtag import cli
from hvd_magtag.analysis import TAPS, plots

TAP_HELP = "where a layer's map is taken: the conv output (default) or after its batch norm/activation"


def _layer_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = cli.OneLineParser(
        prog="python -m hvd_magtag.analysis",
        description=__doc__,
        epilog=cli.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        debug_flag=True,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    fm = sub.add_parser(
        "featuremaps",
        help="save every conv layer's maps for a clip and render each channel as a WAV (+ index.html)",
    )
    fm.add_argument("run_dir", help="run directory (run.json + best/model.weights.h5)")
    fm.add_argument("--clip", required=True, help="audio file path, or a clip id of the run's dataset")
    fm.add_argument(
        "--layers", type=_layer_list, default=None, help="comma-separated conv layer names (default all)"
    )
    fm.add_argument("--out", default=None, help="output folder (default RUN_DIR/analysis/featuremaps/<clip>)")
    fm.add_argument(
        "--compare", default=None, metavar="RUN_DIR2", help="render the clip through a second run too"
    )
    fm.add_argument("--start", type=float, default=0.0, help="clip offset in seconds (default 0)")
    fm.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of the clip to render (default one model window; 0 = the whole clip)",
    )
    fm.add_argument(
        "--max-channels", type=int, default=0, help="keep the N loudest channels per layer (0 = all)"
    )
    fm.add_argument("--weights", default="best", help="best | last | path to a .weights.h5 (default best)")
    fm.add_argument("--tap", choices=TAPS, default="conv", help=TAP_HELP)
    fm.add_argument(
        "--with-filters",
        action="store_true",
        help="run `filters` on this clip for each run first, so its heatmaps sit beside the layers",
    )

    fi = sub.add_parser(
        "filters", help="kernel responses, map spectra and layer transfer estimates (PNG+SVG+npz/CSV)"
    )
    fi.add_argument("run_dir", help="run directory (run.json + best/model.weights.h5)")
    fi.add_argument("--clips", type=int, default=4, help="dataset clips to average over (default 4)")
    fi.add_argument(
        "--clip",
        action="append",
        default=[],
        help="audio path or clip id to average over (repeatable; overrides --clips)",
    )
    fi.add_argument(
        "--noise", action="store_true", help="probe with --clips white-noise clips instead of music"
    )
    fi.add_argument(
        "--seconds", type=float, default=30.0, help="seconds per clip (default 30; 0 = whole clip)"
    )
    fi.add_argument("--out", default=None, help="output folder (default RUN_DIR/analysis/filters)")
    fi.add_argument("--axis", choices=plots.AXES, default="log", help="frequency axis of the heatmaps")
    fi.add_argument("--weights", default="best", help="best | last | path to a .weights.h5 (default best)")
    fi.add_argument("--tap", choices=TAPS, default="conv", help=TAP_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return cli.run_cli(lambda: _run(args), debug=args.debug, log_format="%(asctime)s %(name)s: %(message)s")


def _run(args) -> None:
    from hvd_magtag.analysis.featuremaps import run_featuremaps
    from hvd_magtag.analysis.filters import run_filters

    log = logging.getLogger("hvd_magtag.analysis")
    began = time.perf_counter()
    if args.command == "featuremaps":
        runs = [args.run_dir] + ([args.compare] if args.compare else [])
        out = run_featuremaps(
            runs,
            args.clip,
            out=args.out,
            layer_names=args.layers,
            max_channels=args.max_channels,
            start_seconds=args.start,
            duration_seconds=args.duration,
            which=args.weights,
            tap=args.tap,
            with_filters=args.with_filters,
        )
    else:
        out = run_filters(
            args.run_dir,
            n_clips=args.clips,
            out=args.out,
            axis=args.axis,
            clip_args=args.clip,
            noise=args.noise,
            seconds=args.seconds,
            which=args.weights,
            tap=args.tap,
        )
    log.info("%s done in %.1f s: %s", args.command, time.perf_counter() - began, out)
    print(out)


if __name__ == "__main__":
    sys.exit(main())
