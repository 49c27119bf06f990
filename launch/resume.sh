#!/usr/bin/env bash
# Resume a killed or finished-early run from its last checkpoint, with the run's own saved config.
#   launch/resume.sh RUN_DIR [-n N] [-- extra hvd_magtag.train options, e.g. --set train.steps=20000]
set -euo pipefail
source "$(dirname "$0")/common.sh"
case "${1:-}" in
  -h|--help) usage 2,3 0 ;;
  "") die "$EXIT_USAGE" "RUN_DIR is required (see --help)" ;;
  -*) unknown_option "$1" ;;
esac
RUN_DIR="$1"; shift
[ -f "$RUN_DIR/config.json" ] || die 4 "$RUN_DIR has no config.json: not a run directory"
NP=2
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--np) need_value "$1" $# "${2:-}"; need_count "$1" "$2"; NP="$2"; shift 2 ;;
    --) shift; break ;;
    *) unknown_option "$1" ;;
  esac
done
need_env
export OMP_NUM_THREADS="$(threads_per_rank "$NP")"
run_job "$HOROVODRUN" -np "$NP" "$PY" -m hvd_magtag.train --config "$RUN_DIR/config.json" --run-dir "$RUN_DIR" "$@"
