# Sourced by the launch scripts: locate the environment and set the per-rank CPU thread budget.
# hvd_magtag.distributed.init() sets TensorFlow's intra/inter-op threads from cores // local ranks itself;
# OMP_NUM_THREADS here keeps oneDNN/OpenMP from oversubscribing the cores before TensorFlow starts.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PY="${PYTHON:-$VENV/bin/python}"
HOROVODRUN="${HOROVODRUN:-$VENV/bin/horovodrun}"
if [ ! -x "$PY" ] || [ ! -x "$HOROVODRUN" ]; then
  echo "error: no environment at $VENV; run 'make install' in $ROOT first (or set VENV=...)" >&2
  exit 2
fi
threads_per_rank() {  # threads_per_rank RANKS_ON_THIS_HOST
  local cores; cores=$(nproc)
  local t=$(( cores / $1 )); [ "$t" -ge 1 ] || t=1; echo "$t"
}
