#!/usr/bin/env bash
# One host: N ranks (CPU ranks, or one per GPU when GPUs are present).
#   launch/local.sh [-n N] [--gloo] -- [hvd_magtag.train options]
#   launch/local.sh -n 2 -- --config demo --run-dir runs/demo
# N defaults to the number of GPUs, or 2 on a CPU-only host.
set -euo pipefail
source "$(dirname "$0")/common.sh"
usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
NP=""; CONTROLLER=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--np) NP="$2"; shift 2 ;;
    --gloo) CONTROLLER=(--gloo); shift ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) echo "error: unknown option $1 (hvd_magtag.train options go after --)" >&2; usage 2 ;;
  esac
done
if [ -z "$NP" ]; then
  GPUS=$(command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | wc -l || echo 0)
  NP=$(( GPUS > 0 ? GPUS : 2 ))
fi
export OMP_NUM_THREADS="$(threads_per_rank "$NP")"
exec "$HOROVODRUN" -np "$NP" "${CONTROLLER[@]}" "$PY" -m hvd_magtag.train "$@"
