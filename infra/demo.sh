#!/usr/bin/env bash
# The main job end to end on the embedded engine: simulate a live-streaming platform,
# then ingest each day into the lake (Delta tables under ./lake).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
START=${DEMO_START:-2026-01-01}
DAYS=${DEMO_DAYS:-14}
SCALE=${DEMO_SCALE:-demo}
export LANDING_ROOT=${LANDING_ROOT:-$PWD/landing} LAKE_ROOT=${LAKE_ROOT:-$PWD/lake}

echo "== simulate $DAYS days from $START ($SCALE scale) into $LANDING_ROOT"
$PY -m jobs.simulate --start "$START" --days "$DAYS" --scale "$SCALE" --landing "$LANDING_ROOT"
echo "== ingest into $LAKE_ROOT"
$PY -m jobs.run_days --start "$START" --days "$DAYS" --steps ingest
echo "== done: tables under $LAKE_ROOT"
