#!/usr/bin/env bash
# Elastic training: workers may join or leave; state is committed every K steps and restored on a change.
#   launch/elastic.sh [-n N] [--min-np MIN] [--max-np MAX] [-d DISCOVERY_SCRIPT] [-i IFACE] \
#                     [--ssh-port PORT] [--ssh-identity FILE] -- [hvd_magtag.train options]
#   launch/elastic.sh -n 2 --min-np 1 --max-np 4 -- --config exp.yaml --run-dir runs/elastic
# The discovery script (default launch/discover_hosts.sh) prints "host:slots" lines. Elastic mode uses Gloo;
# -i names the network interface (lo for one host; without it Horovod probes every interface). Remote hosts
# are started through ssh (--ssh-port / --ssh-identity as in multihost.sh).
set -euo pipefail
source "$(dirname "$0")/common.sh"
NP=2; MIN=1; MAX=4; DISCOVER="$ROOT/launch/discover_hosts.sh"; NIC=(); PORT=""; IDENTITY=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--np) need_value "$1" $# "${2:-}"; need_count "$1" "$2"; NP="$2"; shift 2 ;;
    --min-np) need_value "$1" $# "${2:-}"; need_count "$1" "$2"; MIN="$2"; shift 2 ;;
    --max-np) need_value "$1" $# "${2:-}"; need_count "$1" "$2"; MAX="$2"; shift 2 ;;
    -d|--discovery) need_value "$1" $# "${2:-}"; DISCOVER="$2"; shift 2 ;;
    -i|--iface|--network-interface) need_value "$1" $# "${2:-}"; NIC=(--network-interface "$2"); shift 2 ;;
    --ssh-port) need_value "$1" $# "${2:-}"; need_count "$1" "$2"; PORT="$2"; shift 2 ;;
    --ssh-identity) need_value "$1" $# "${2:-}"; IDENTITY="$2"; shift 2 ;;
    -h|--help) usage 2,8 0 ;;
    --) shift; break ;;
    *) unknown_option "$1" ;;
  esac
done
[ "$MIN" -le "$NP" ] && [ "$NP" -le "$MAX" ] || die "$EXIT_USAGE" "need --min-np <= -n <= --max-np, got $MIN <= $NP <= $MAX"
[ -x "$DISCOVER" ] || die "$EXIT_USAGE" "host discovery script $DISCOVER is not executable"
ssh_options "$PORT" "$IDENTITY"
need_env
export OMP_NUM_THREADS="$(threads_per_rank "$NP")"
run_job "$HOROVODRUN" -np "$NP" --min-np "$MIN" --max-np "$MAX" --host-discovery-script "$DISCOVER" "${NIC[@]}" \
  "${SSH_OPTS[@]}" "$PY" -m hvd_magtag.train --elastic "$@"
