#!/usr/bin/env bash
# Resume a killed or finished-early run from its last checkpoint, with the run's own saved config.
#   launch/resume.sh RUN_DIR [-n N] [-- extra hvd_magtag.train options, e.g. --set train.steps=20000]
set -euo pipefail
source "$(dirname "$0")/common.sh"
[ $# -ge 1 ] && [ "$1" != "-h" ] && [ "$1" != "--help" ] || { sed -n '2,3p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }
RUN_DIR="$1"; shift
[ -f "$RUN_DIR/config.json" ] || { echo "error: $RUN_DIR has no config.json: not a run directory (exit code 4, see python -m hvd_magtag.train --help)" >&2; exit 4; }
NP=2
if [ "${1:-}" = "-n" ]; then NP="$2"; shift 2; fi
[ "${1:-}" = "--" ] && shift
export OMP_NUM_THREADS="$(threads_per_rank "$NP")"
exec "$HOROVODRUN" -np "$NP" "$PY" -m hvd_magtag.train --config "$RUN_DIR/config.json" --run-dir "$RUN_DIR" "$@"
