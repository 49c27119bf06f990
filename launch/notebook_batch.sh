#!/usr/bin/env bash
# Run a grid of experiments, one papermill execution of the experiment notebook per point, then the table.
#   launch/notebook_batch.sh GRID.yaml [OUT_DIR]
#   launch/notebook_batch.sh kernel_size runs/kernel_size        (a packaged grid by name, or a grid file)
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -ge 1 ] && [ "$1" != "-h" ] && [ "$1" != "--help" ] || { sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
GRID="$1"; OUT="${2:-$ROOT/runs/$(basename "${GRID%.*}")}"
"$PY" -m hvd_magtag.experiments run "$GRID" --out "$OUT"
exec "$PY" -m hvd_magtag.experiments table "$OUT" --out "$OUT/results"
