# Sourced by every launch script (launch/*.sh, launch/slurm.sbatch): usage text and option checks, the
# environment, the per-rank CPU thread budget, and running the launcher so that a killed job exits non-zero.
# hvd_magtag.distributed.init() sets TensorFlow's intra/inter-op threads from cores // local ranks itself;
# OMP_NUM_THREADS here keeps oneDNN/OpenMP from oversubscribing the cores before TensorFlow starts.
#
# Exit codes of every launch script (one error line on stderr for each non-zero code but 1):
#   0      finished
#   1      the job failed: under Gloo / elastic horovodrun reports any failed rank as 1; under MPI the script
#          exits with the failed rank's own code (2 usage, 3 data, 4 run directory: hvd_magtag.train --help)
#   2      usage error (unknown option, missing or bad value) or no environment (no venv, not in a SLURM job)
#   4      not a run directory (resume.sh; the training's run-directory code)
#   128+N  the script was killed by signal N and passed it on to the job: 143 SIGTERM (scancel, scontrol
#          requeue, kill), 130 SIGINT, 129 SIGHUP; never 0, even if horovodrun itself exits 0
# Processes started over ssh (multihost, elastic, SLURM on several nodes) get this environment: horovodrun
# forwards every variable (mpirun -x for MPI, exported in the ssh command for Gloo), so PYTHONPATH, VENV,
# HOME and PATH reach the remote ranks without editing any shell rc.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXIT_USAGE=2
# horovodrun itself imports TensorFlow (its build check) before any rank starts: quiet its start-up lines
# unless the user chose a level (the ranks' own output is quiet by default: hvd_magtag.console)
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

# usage LINES STATUS: print the script's header lines LINES (e.g. 2,6) and the exit codes, exit STATUS
usage() {
  sed -n "$1p" "$0" | sed 's/^# \{0,1\}//'
  echo "exit codes: 0 finished, 1 job failed, 2 usage error or no environment, 4 not a run directory,"
  echo "            128+N killed by signal N (143: SIGTERM)"
  echo "            (launch/common.sh explains; the training's own: python -m hvd_magtag.train --help)"
  exit "${2:-0}"
}

# die STATUS MESSAGE: one line on stderr, exit STATUS
die() { echo "error: $(basename "$0"): $2" >&2; exit "$1"; }

# need_value OPTION ARGC VALUE: an option's value must be present and not another option
need_value() {
  [ "$2" -ge 2 ] && [ -n "$3" ] && [ "${3#-}" = "$3" ] || die "$EXIT_USAGE" "option $1 needs a value (see --help)"
}

# need_count OPTION VALUE: a positive integer
need_count() {
  [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$EXIT_USAGE" "option $1 needs a positive integer, got '$2' (see --help)"
}

unknown_option() { die "$EXIT_USAGE" "unknown option $1 (hvd_magtag.train options go after --; see --help)"; }

# need_env: the venv's python and horovodrun (VENV, PYTHON, HOROVODRUN override them)
need_env() {
  VENV="${VENV:-$ROOT/.venv}"
  PY="${PYTHON:-$VENV/bin/python}"
  HOROVODRUN="${HOROVODRUN:-$VENV/bin/horovodrun}"
  if [ ! -x "$PY" ] || [ ! -x "$HOROVODRUN" ]; then
    die "$EXIT_USAGE" "no environment at $VENV (python or horovodrun missing); run 'make install' in $ROOT (or set VENV=...)"
  fi
}

# ssh_options PORT IDENTITY: horovodrun's ssh options into the array SSH_OPTS
ssh_options() {
  SSH_OPTS=()
  [ -z "$1" ] || SSH_OPTS+=(--ssh-port "$1")
  if [ -n "$2" ]; then
    [ -r "$2" ] || die "$EXIT_USAGE" "ssh identity file $2 not readable"
    SSH_OPTS+=(--ssh-identity-file "$2")
  fi
}

threads_per_rank() {  # threads_per_rank RANKS_ON_THIS_HOST
  local cores; cores=$(nproc)
  local t=$(( cores / $1 )); [ "$t" -ge 1 ] || t=1; echo "$t"
}

# run_job CMD...: run the launcher as a child and exit with its status; SIGTERM, SIGINT and SIGHUP are passed
# on to it (horovodrun then ends its ranks) and the script exits 128+signal, so a scheduler never records a
# killed job as finished (exec'ing horovodrun would report what horovodrun returns, 0 seen for elastic jobs).
run_job() {
  JOB_SIGNAL=""
  "$@" &
  JOB_PID=$!
  trap 'JOB_SIGNAL=15; kill -TERM "$JOB_PID" 2>/dev/null || true' TERM
  trap 'JOB_SIGNAL=2; kill -TERM "$JOB_PID" 2>/dev/null || true' INT   # a background child ignores SIGINT
  trap 'JOB_SIGNAL=1; kill -TERM "$JOB_PID" 2>/dev/null || true' HUP
  local rc=0
  while :; do
    rc=0; wait "$JOB_PID" || rc=$?
    kill -0 "$JOB_PID" 2>/dev/null || break   # wait returns early when a trapped signal arrives
  done
  trap - TERM INT HUP
  if [ -n "$JOB_SIGNAL" ]; then
    echo "error: $(basename "$0"): killed by signal $JOB_SIGNAL; the job was stopped (exit $((128 + JOB_SIGNAL)))" >&2
    exit $((128 + JOB_SIGNAL))
  fi
  exit "$rc"
}
