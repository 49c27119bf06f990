#!/usr/bin/env bash
# Elastic training: workers may join or leave; state is committed every K steps and restored on a change.
#   launch/elastic.sh [-n N] [--min-np MIN] [--max-np MAX] [-d DISCOVERY_SCRIPT] [-i IFACE] -- [train options]
#   launch/elastic.sh -n 2 --min-np 1 --max-np 4 -- --config exp.yaml --run-dir runs/elastic
# The discovery script (default launch/discover_hosts.sh) prints "host:slots" lines. Elastic mode uses Gloo;
# -i names the network interface (lo for one host; without it Horovod probes every interface).
set -euo pipefail
source "$(dirname "$0")/common.sh"
usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
NP=2; MIN=1; MAX=4; DISCOVER="$ROOT/launch/discover_hosts.sh"; NIC=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--np) NP="$2"; shift 2 ;;
    --min-np) MIN="$2"; shift 2 ;;
    --max-np) MAX="$2"; shift 2 ;;
    -d|--discovery) DISCOVER="$2"; shift 2 ;;
    -i|--network-interface) NIC=(--network-interface "$2"); shift 2 ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    *) echo "error: unknown option $1" >&2; usage 2 ;;
  esac
done
[ -x "$DISCOVER" ] || { echo "error: host discovery script $DISCOVER is not executable" >&2; exit 2; }
export OMP_NUM_THREADS="$(threads_per_rank "$NP")"
exec "$HOROVODRUN" -np "$NP" --min-np "$MIN" --max-np "$MAX" --host-discovery-script "$DISCOVER" "${NIC[@]}" \
  "$PY" -m hvd_magtag.train --elastic "$@"
