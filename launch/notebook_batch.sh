#!/usr/bin/env bash
# Run a grid of experiments, one papermill execution of the experiment notebook per point, then the table.
#   launch/notebook_batch.sh GRID.yaml [OUT_DIR]
#   launch/notebook_batch.sh kernel_size runs/kernel_size        (a packaged grid by name, or a grid file)
set -euo pipefail
source "$(dirname "$0")/common.sh"
case "${1:-}" in
  -h|--help) usage 2,4 0 ;;
  "") die "$EXIT_USAGE" "GRID is required (see --help)" ;;
  -*) unknown_option "$1" ;;
esac
[ $# -le 2 ] || die "$EXIT_USAGE" "too many arguments: GRID [OUT_DIR] (see --help)"
need_env
GRID="$1"; OUT="${2:-$ROOT/runs/$(basename "${GRID%.*}")}"
"$PY" -m hvd_magtag.experiments run "$GRID" --out "$OUT"
exec "$PY" -m hvd_magtag.experiments table "$OUT" --out "$OUT/results"
