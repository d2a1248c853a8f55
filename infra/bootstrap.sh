#!/usr/bin/env bash
# Make .venv with everything the pipeline needs (Java included). Safe to run twice:
# a stamp of the dependency files skips the pip step when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=.venv

if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)'; then
  echo "bootstrap: Python 3.11 or 3.12 is required (found: $("$PY" --version 2>&1))" >&2
  exit 1
fi

# Java runs the JVM Spark engine (parity tests, benchmarks); Sail, the default, needs none.
if ! command -v java >/dev/null 2>&1; then
  echo "bootstrap: installing Java 17 with apt"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq openjdk-17-jre-headless >/dev/null
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"

stamp="$VENV/.installed-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "bootstrap: installing Python dependencies into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -e '.[dev]'
  rm -f "$VENV"/.installed-*
  touch "$stamp"
fi
echo "bootstrap: ready ($("$VENV/bin/python" --version), $(java -version 2>&1 | head -n 1))"
