#!/usr/bin/env bash
# The main job end to end through Airflow on the embedded engine:
#   simulate ~2 weeks of a live-streaming platform -> start Airflow -> backfill the daily
#   feature DAG over every day (ingest, daily stats, profiles, labels, data checks) ->
#   trigger the training DAG (training set, data gate, training, evaluation, model gate,
#   publication) -> print the published model version and its report.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
START=${DEMO_START:-2026-01-01}
DAYS=${DEMO_DAYS:-14}
SCALE=${DEMO_SCALE:-demo}
LABEL_DAYS=${DEMO_LABEL_DAYS:-7}  # M
export FEATURE_WINDOW_DAYS=${FEATURE_WINDOW_DAYS:-7}  # N
export LANDING_ROOT=${LANDING_ROOT:-$PWD/landing} LAKE_ROOT=${LAKE_ROOT:-$PWD/lake}
export MODELS_ROOT=${MODELS_ROOT:-$PWD/models} FEATURES_START_DATE=$START
# Nothing unpaused at start: the backfill queues its runs first, then unpauses the feature
# DAG (an unpaused DAG's catch-up would race the backfill for the same days on SQLite), and
# the training DAG only runs when triggered (its daily schedule is for real deployments).
export AIRFLOW_UNPAUSE="" TRAINING_SCHEDULE=none
END=$($PY -c "from features.days import add_days; print(add_days('$START', $DAYS - 1))")
export FEATURES_END_DATE=$END
t0=$SECONDS
step() { echo; echo "== [$((SECONDS - t0))s] $*"; }

step "simulate $DAYS days from $START ($SCALE scale) into $LANDING_ROOT"
$PY -m jobs.simulate --start "$START" --days "$DAYS" --scale "$SCALE" --landing "$LANDING_ROOT"

step "start Airflow (api-server, dag-processor, scheduler)"
bash infra/airflow.sh start
trap 'bash infra/airflow.sh stop' EXIT

step "backfill the feature DAG over $START .. $END"
bash infra/airflow.sh backfill features_daily "$START" "$END"

# The training DAG's default model: the two-tower model blended with the recall baselines
# (fusion), under the default gate: the best baseline beaten, the interval above zero.
# DEMO_MODEL=two_tower trains the two-tower model alone (it beats rewatch once trained to
# its stop); DEMO_GATE='{"gate_baselines": ["popularity"]}' publishes a model that does not.
# DEMO_EPOCHS caps the two-tower model's epochs (default: until validation recall stops
# improving, nine epochs and ~30 minutes at demo scale on two cores).
DEMO_MODEL=${DEMO_MODEL:-fusion}
DEMO_GATE=${DEMO_GATE:-'{}'}
DEMO_EPOCHS=${DEMO_EPOCHS:-null}
step "train $DEMO_MODEL: $LABEL_DAYS label days ending $END, window $FEATURE_WINDOW_DAYS"
bash infra/airflow.sh trigger training \
  "{\"end\": \"$END\", \"days\": $LABEL_DAYS, \"window\": $FEATURE_WINDOW_DAYS, \"model\": \"$DEMO_MODEL\", \"model_gate\": $DEMO_GATE, \"epochs\": $DEMO_EPOCHS}"

step "published"
$PY -m training.release --models "$MODELS_ROOT"
echo "== done in $((SECONDS - t0))s"
