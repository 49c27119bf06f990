#!/usr/bin/env bash
# Many hosts over MPI (default) or Gloo, started through passwordless ssh.
#   launch/multihost.sh -f HOSTFILE [-n N] [-i IFACE] [--gloo] [--ssh-port PORT] [--ssh-identity FILE] \
#                       -- [hvd_magtag.train options]
#   launch/multihost.sh -f launch/hostfile.example -i eth0 -- --config exp.yaml --run-dir /shared/runs/x
# HOSTFILE: "host slots=N" lines. N defaults to the sum of the slots; IFACE pins Horovod's and MPI's traffic to
# one NIC (e.g. ib0, lo for loopback aliases); --ssh-port / --ssh-identity reach sshd on another port or with
# another key than ~/.ssh/config says.
set -euo pipefail
source "$(dirname "$0")/common.sh"
HOSTFILE=""; NP=""; NET=(); CONTROLLER=(); PORT=""; IDENTITY=""
while [ $# -gt 0 ]; do
  case "$1" in
    -f|--hostfile) need_value "$1" $# "${2:-}"; HOSTFILE="$2"; shift 2 ;;
    -n|--np) need_value "$1" $# "${2:-}"; need_count "$1" "$2"; NP="$2"; shift 2 ;;
    -i|--iface|--network-interface) need_value "$1" $# "${2:-}"; NET=(--network-interface "$2"); shift 2 ;;
    --gloo) CONTROLLER=(--gloo); shift ;;
    --ssh-port) need_value "$1" $# "${2:-}"; need_count "$1" "$2"; PORT="$2"; shift 2 ;;
    --ssh-identity) need_value "$1" $# "${2:-}"; IDENTITY="$2"; shift 2 ;;
    -h|--help) usage 2,9 0 ;;
    --) shift; break ;;
    *) unknown_option "$1" ;;
  esac
done
[ -n "$HOSTFILE" ] || die "$EXIT_USAGE" "-f HOSTFILE is required (see launch/hostfile.example)"
[ -r "$HOSTFILE" ] || die "$EXIT_USAGE" "hostfile $HOSTFILE not readable"
SLOTS=$(grep -v '^\s*\(#\|$\)' "$HOSTFILE" | sed -n 's/.*slots=\([0-9]*\).*/\1/p')
[ -n "$SLOTS" ] || die "$EXIT_USAGE" "hostfile $HOSTFILE has no 'host slots=N' line"
ssh_options "$PORT" "$IDENTITY"
need_env
[ -n "$NP" ] || NP=$(echo "$SLOTS" | awk '{s+=$1} END {print s+0}')
export OMP_NUM_THREADS="$(threads_per_rank "$(echo "$SLOTS" | sort -n | tail -1)")"
run_job "$HOROVODRUN" -np "$NP" --hostfile "$HOSTFILE" "${NET[@]}" "${CONTROLLER[@]}" "${SSH_OPTS[@]}" \
  "$PY" -m hvd_magtag.train "$@"
