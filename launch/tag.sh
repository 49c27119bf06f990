#!/usr/bin/env bash
# Tag a music library on N ranks (files sharded across ranks, rank 0 merges), on this host or many.
#   launch/tag.sh [-n N] [-f HOSTFILE] [-i IFACE] [--gloo] [--ssh-port PORT] [--ssh-identity FILE] \
#                 -- LIBRARY... --model MODEL [hvd_magtag.tag options, e.g. --out results/ --top-k 5]
#   launch/tag.sh -n 2 -- ~/Music --model runs/demo --out runs/demo/library
# N defaults to the sum of HOSTFILE's slots, or 2 on one host. Rerunning the same command resumes.
set -euo pipefail
source "$(dirname "$0")/common.sh"
NP=""; HOSTS=(); NET=(); CONTROLLER=(); PORT=""; IDENTITY=""; SLOTS=""
while [ $# -gt 0 ]; do
  case "$1" in
    -n|--np) need_value "$1" $# "${2:-}"; need_count "$1" "$2"; NP="$2"; shift 2 ;;
    -f|--hostfile) need_value "$1" $# "${2:-}"; HOSTS=(--hostfile "$2"); shift 2 ;;
    -i|--iface|--network-interface) need_value "$1" $# "${2:-}"; NET=(--network-interface "$2"); shift 2 ;;
    --gloo) CONTROLLER=(--gloo); shift ;;
    --ssh-port) need_value "$1" $# "${2:-}"; need_count "$1" "$2"; PORT="$2"; shift 2 ;;
    --ssh-identity) need_value "$1" $# "${2:-}"; IDENTITY="$2"; shift 2 ;;
    -h|--help) usage 2,6 0 ;;
    --) shift; break ;;
    *) unknown_option "$1" ;;
  esac
done
[ $# -gt 0 ] || die "$EXIT_USAGE" "nothing to tag: give LIBRARY... --model MODEL after -- (see --help)"
if [ ${#HOSTS[@]} -gt 0 ]; then
  [ -r "${HOSTS[1]}" ] || die "$EXIT_USAGE" "hostfile ${HOSTS[1]} not readable"
  SLOTS=$(grep -v '^\s*\(#\|$\)' "${HOSTS[1]}" | sed -n 's/.*slots=\([0-9]*\).*/\1/p')
  [ -n "$SLOTS" ] || die "$EXIT_USAGE" "hostfile ${HOSTS[1]} has no 'host slots=N' line"
  [ -n "$NP" ] || NP=$(echo "$SLOTS" | awk '{s+=$1} END {print s+0}')
fi
ssh_options "$PORT" "$IDENTITY"
need_env
NP="${NP:-2}"
export OMP_NUM_THREADS="$(threads_per_rank "$(if [ -n "$SLOTS" ]; then echo "$SLOTS" | sort -n | tail -1; else echo "$NP"; fi)")"
run_job "$HOROVODRUN" -np "$NP" "${HOSTS[@]}" "${NET[@]}" "${CONTROLLER[@]}" "${SSH_OPTS[@]}" \
  "$PY" -m hvd_magtag.tag "$@"
