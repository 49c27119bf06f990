#!/usr/bin/env bash
# Many hosts over MPI (default) or Gloo.
#   launch/multihost.sh -f HOSTFILE [-n N] [-i IFACE] [--gloo] -- [hvd_magtag.train options]
#   launch/multihost.sh -f launch/hostfile.example -i eth0 -- --config exp.yaml --run-dir /shared/runs/x
# N defaults to the sum of slots in HOSTFILE; IFACE pins Horovod's and MPI's traffic to one NIC (e.g. ib0).
set -euo pipefail
source "$(dirname "$0")/common.sh"
usage() { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
HOSTFILE=""; NP=""; IFACE=""; CONTROLLER=()
while [ $# -gt 0 ]; do
  case "$1" in
    -f|--hostfile) HOSTFILE="$2"; shift 2 ;;
    -n|--np) NP="$2"; shift 2 ;;
    -i|--iface) IFACE="$2"; shift 2 ;;
    --gloo) CONTROLLER=(--gloo); shift ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) echo "error: unknown option $1" >&2; usage 2 ;;
  esac
done
[ -n "$HOSTFILE" ] || { echo "error: -f HOSTFILE is required (see launch/hostfile.example)" >&2; exit 2; }
[ -r "$HOSTFILE" ] || { echo "error: hostfile $HOSTFILE not readable" >&2; exit 2; }
if [ -z "$NP" ]; then
  NP=$(grep -v '^\s*#' "$HOSTFILE" | sed -n 's/.*slots=\([0-9]*\).*/\1/p' | awk '{s+=$1} END {print s+0}')
fi
SLOTS_MAX=$(grep -v '^\s*#' "$HOSTFILE" | sed -n 's/.*slots=\([0-9]*\).*/\1/p' | sort -n | tail -1)
export OMP_NUM_THREADS="$(threads_per_rank "${SLOTS_MAX:-1}")"
NET=()
[ -n "$IFACE" ] && NET=(--network-interface "$IFACE")
exec "$HOROVODRUN" -np "$NP" --hostfile "$HOSTFILE" "${NET[@]}" "${CONTROLLER[@]}" \
  "$PY" -m hvd_magtag.train "$@"
