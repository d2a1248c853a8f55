#!/usr/bin/env bash
# The device check of issue 18 on a GPU machine: a venv with the `gpu` extra (TensorFlow's
# CUDA 12 libraries from pip), then `python -m bench.device_check` with these arguments;
# device_check.json goes to --out or $OUT.
#
#   infra/device_check.sh [--steps N] [--two-workers] [--budget-s S] ...
#
# Needs Python 3.11/3.12 and an NVIDIA driver; no Java (the check's jobs run on Sail). Pip
# reads a package index, or only a wheelhouse when WHEELHOUSE=dir is set (a machine with no
# network: every wheel of '.[dev,gpu]' must be in it, TensorFlow's ~600 MB and the CUDA
# libraries' ~3 GB included). Install ~3 min from an index; the check ~8 min on one H200 + 16
# cores (bench/device_check.py says how it is spent).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${DEVICE_VENV:-/tmp/device-check-venv}

nvidia-smi || echo "device_check: no nvidia-smi here: the GPU runs will be missing" >&2
if ! "$VENV/bin/python" -c 'import tensorflow, pysail, deltalake' 2>/dev/null; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  pip_args=(-q)
  if [ -n "${WHEELHOUSE:-}" ]; then pip_args+=(--no-index --find-links "$WHEELHOUSE"); fi
  echo "device_check: installing '.[dev,gpu]' into $VENV"
  "$VENV/bin/python" -m pip install "${pip_args[@]}" -e '.[dev,gpu]'
fi
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2
exec "$VENV/bin/python" -m bench.device_check "$@"
