#!/usr/bin/env bash
# One host: N ranks (CPU ranks, or one per GPU when GPUs are present).
#   launch/local.sh [-n N] [--gloo] -- [hvd_magtag.train options]
#   launch/local.sh -n 2 -- --config demo --run-dir runs/demo
# N defaults to the number of GPUs, or 2 on a CPU-only host.
set -euo pipefail
source "$(dirname "$0")/common.sh"
NP=""; CONTROLLER=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--np) need_value "$1" $# "${2:-}"; need_count "$1" "$2"; NP="$2"; shift 2 ;;
    --gloo) CONTROLLER=(--gloo); shift ;;
    -h|--help) usage 2,5 0 ;;
    --) shift; break ;;
    *) unknown_option "$1" ;;
  esac
done
need_env
if [ -z "$NP" ]; then
  GPUS=$(command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | wc -l || echo 0)
  NP=$(( GPUS > 0 ? GPUS : 2 ))
fi
export OMP_NUM_THREADS="$(threads_per_rank "$NP")"
run_job "$HOROVODRUN" -np "$NP" "${CONTROLLER[@]}" "$PY" -m hvd_magtag.train "$@"
