#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py; benchmarks/README.md says what it measures):
#   bash benchmarks/gpu_check.sh --out benchmarks/results/gpu      # on a CUDA machine, <= 15 min
#   bash benchmarks/gpu_check.sh --sections env,scale224,graphs28 --out DIR   # <= 7.5 min
#   bash benchmarks/gpu_check.sh --dry-run --out /tmp/gpu-check    # on any CPU, tiny sizes
# Python: $PYTHON if set, else this checkout's .venv, else python3. The checkout's src/ goes first
# on the path, so what is measured is this tree, installed or not.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then
        python="$root/.venv/bin/python"
    else
        python="$(command -v python3)"
    fi
fi
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$root/benchmarks/gpu_check.py" "$@"
