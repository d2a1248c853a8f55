#!/usr/bin/env bash
# Local Airflow 3 for this pipeline: SQLite + LocalExecutor, DAGs from this repo's dags/.
#
#   infra/airflow.sh start                        migrate the DB, start the api-server (wait
#                                                 for health), dag-processor and scheduler,
#                                                 unpause the DAGs
#   infra/airflow.sh stop                         stop them (pid files), cleanly
#   infra/airflow.sh status
#   infra/airflow.sh backfill DAG FROM TO         queue `airflow backfill create` for FROM..TO
#                                                 (YYYY-MM-DD) and wait; exit 1 if a run failed
#   infra/airflow.sh trigger DAG [CONF_JSON] [LOGICAL_DATE]   trigger one run and wait
#
# Settings (environment): AIRFLOW_HOME (./airflow_home), AIRFLOW_PORT (8080), LAKE_ROOT,
# LANDING_ROOT, MODELS_ROOT, TRAINING_RUNS_ROOT (./lake, ./landing, ./models,
# ./training_runs), FEATURES_START_DATE (2026-01-01), FEATURES_END_DATE (default: the last
# landing day, so catchup stops where the data stops), AIRFLOW_UNPAUSE (the DAGs to unpause
# at start), REPROCESS (what a backfill re-runs: none|failed|completed; default failed),
# WAIT_TIMEOUT (seconds, 3600).
# Every subcommand derives the same environment here, so the CLI, the api-server, the
# scheduler and the tasks it starts always agree on the database and the folders.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
AF="$REPO/.venv/bin/airflow"
PY="$REPO/.venv/bin/python"

export AIRFLOW_HOME=${AIRFLOW_HOME:-$REPO/airflow_home}
mkdir -p "$AIRFLOW_HOME"
AIRFLOW_HOME=$(cd "$AIRFLOW_HOME" && pwd)
PORT=${AIRFLOW_PORT:-8080}
if [ "$PORT" = 8793 ]; then
  echo "airflow.sh: port 8793 is the workers' log server; pick another AIRFLOW_PORT" >&2
  exit 2
fi
RUN_DIR=$AIRFLOW_HOME/run
mkdir -p "$RUN_DIR"

export AIRFLOW__CORE__DAGS_FOLDER=$REPO/dags
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
# SQLite allows one writer: the CLI (backfill create) and the services wait for the lock up
# to 60 s instead of failing with "database is locked" after the default 5 s.
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db?timeout=60"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}
# Local, single-user set-up: no login for the UI, the REST API and the CLI.
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
export AIRFLOW__API__PORT=$PORT
# Tasks report to the api-server over HTTP at this URL; it must follow the port.
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=http://localhost:$PORT/execution/
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}
# The repo first on the path: jobs/, features/, training/ import in tasks.
export PYTHONPATH=$REPO${PYTHONPATH:+:$PYTHONPATH}
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-2}

export LAKE_ROOT=${LAKE_ROOT:-$REPO/lake}
export LANDING_ROOT=${LANDING_ROOT:-$REPO/landing}
export MODELS_ROOT=${MODELS_ROOT:-$REPO/models}
export TRAINING_RUNS_ROOT=${TRAINING_RUNS_ROOT:-$REPO/training_runs}
export FEATURES_START_DATE=${FEATURES_START_DATE:-2026-01-01}
if [ -z "${FEATURES_END_DATE:-}" ] && [ -d "$LANDING_ROOT/watch_sessions" ]; then
  last=$(ls "$LANDING_ROOT/watch_sessions" | sed -n 's/^dt=//p' | sort | tail -n 1)
  [ -n "$last" ] && export FEATURES_END_DATE=$last
fi

SERVICES=(api-server dag-processor scheduler)
DAGS=(features_daily training)

log() { echo "airflow.sh: $*"; }

alive() {  # alive NAME: the service's pid file names a running process
  local pid_file=$RUN_DIR/$1.pid
  [ -f "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null
}

healthy() { curl -sf "http://localhost:$PORT/api/v2/monitor/health" >/dev/null 2>&1; }

launch() {  # launch NAME ARGS...: in its own process group, so stop can end its children
  local name=$1; shift
  if alive "$name"; then log "$name already running (pid $(cat "$RUN_DIR/$name.pid"))"; return; fi
  setsid nohup "$AF" "$@" >"$RUN_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/$name.pid"
  log "started $name (pid $!, log $RUN_DIR/$name.log)"
}

wait_for() {  # wait_for WHAT SECONDS COMMAND...: poll until COMMAND succeeds
  local what=$1 limit=$2; shift 2
  local waited=0 rc
  while true; do
    "$@" && break
    rc=$?
    if [ "$rc" -eq 2 ] || [ "$waited" -ge "$limit" ]; then  # 2: it will never succeed
      log "gave up waiting for $what after ${waited}s"; return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
  log "$what after ${waited}s"
}

require_running() {
  if ! healthy || ! alive scheduler; then
    log "Airflow is not running here (AIRFLOW_HOME=$AIRFLOW_HOME): run infra/airflow.sh start"
    exit 2
  fi
}

unpause() {  # runs of a paused DAG stay queued forever
  "$AF" dags unpause "$1" >/dev/null 2>&1 || { log "cannot unpause $1"; exit 1; }
}

dag_known() { "$AF" dags details "$1" >/dev/null 2>&1; }

start() {
  local t0=$SECONDS
  log "AIRFLOW_HOME=$AIRFLOW_HOME port=$PORT lake=$LAKE_ROOT landing=$LANDING_ROOT"
  log "features_daily catchup: $FEATURES_START_DATE .. ${FEATURES_END_DATE:-now}"
  log "migrating the metadata database"
  "$AF" db migrate >"$RUN_DIR/db-migrate.log" 2>&1 || {
    tail -n 30 "$RUN_DIR/db-migrate.log"; exit 1; }
  launch api-server api-server --port "$PORT"
  if ! wait_for "api-server healthy on :$PORT" 120 healthy_or_dead; then
    tail -n 40 "$RUN_DIR/api-server.log"; exit 1
  fi
  launch dag-processor dag-processor
  launch scheduler scheduler
  for dag in "${DAGS[@]}"; do
    wait_for "DAG $dag parsed" 120 dag_known "$dag" || {
      "$AF" dags list-import-errors || true; exit 1; }
  done
  for dag in ${AIRFLOW_UNPAUSE-${DAGS[*]}}; do
    unpause "$dag" && log "unpaused $dag"
  done
  log "ready in $((SECONDS - t0))s: UI http://localhost:$PORT (no login)"
}

healthy_or_dead() {
  if ! alive api-server; then
    log "api-server exited"; return 2
  fi
  healthy
}

stop() {
  local name pid
  for name in scheduler dag-processor api-server; do
    if ! alive "$name"; then rm -f "$RUN_DIR/$name.pid"; continue; fi
    pid=$(cat "$RUN_DIR/$name.pid")
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name (pid $pid) ignored TERM for 30s: killing it"
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
    fi
    rm -f "$RUN_DIR/$name.pid"
    log "stopped $name (pid $pid)"
  done
}

status() {
  local name
  for name in "${SERVICES[@]}"; do
    if alive "$name"; then echo "$name: running (pid $(cat "$RUN_DIR/$name.pid"))"
    else echo "$name: stopped"; fi
  done
  if healthy; then echo "api-server health: ok (http://localhost:$PORT)"; fi
}

backfill() {
  [ $# -eq 3 ] || { echo "usage: $0 backfill DAG FROM TO" >&2; exit 2; }
  require_running
  local dag=$1 from=$2 to=$3 since
  since=$(date -u +%Y-%m-%dT%H:%M:%S)
  log "backfill $dag $from .. $to (re-running: ${REPROCESS:-failed})"
  # Queue first, unpause after: unpausing first would let catchup take the range.
  # SQLite may refuse the writes at once ("database is locked") while the services write:
  # drop what a failed attempt left, then try again.
  local attempt
  for attempt in 1 2 3 4 5; do
    if "$AF" backfill create --dag-id "$dag" --from-date "$from" --to-date "$to" \
        --reprocess-behavior "${REPROCESS:-failed}" >"$RUN_DIR/backfill-create.log" 2>&1; then
      break
    fi
    if [ "$attempt" -eq 5 ] || ! grep -q "database is locked" "$RUN_DIR/backfill-create.log"; then
      tail -n 30 "$RUN_DIR/backfill-create.log"; exit 1
    fi
    log "backfill create hit a locked database (attempt $attempt), retrying"
    "$PY" "$REPO/infra/airflow_wait.py" drop-backfill "$dag" --since "$since" >/dev/null
    sleep $((attempt * 3))
  done
  log "queued $(grep -c 'Created backfill Dag run' "$RUN_DIR/backfill-create.log") new runs" \
    "(days that already have a run are kept unless REPROCESS says otherwise)"
  unpause "$dag"
  "$PY" "$REPO/infra/airflow_wait.py" backfill "$dag" "$from" "$to" --since "$since" \
    --timeout "${WAIT_TIMEOUT:-3600}"
}

trigger() {
  [ $# -ge 1 ] && [ $# -le 3 ] || {
    echo "usage: $0 trigger DAG [CONF_JSON] [LOGICAL_DATE]" >&2; exit 2; }
  require_running
  local dag=$1 conf=${2:-"{}"} run_id
  run_id="manual__cli_$(date -u +%Y%m%dT%H%M%S)"
  local args=(dags trigger "$dag" --conf "$conf" --run-id "$run_id")
  [ $# -eq 3 ] && args+=(--logical-date "$3")
  unpause "$dag"
  log "trigger $dag run $run_id conf $conf"
  "$AF" "${args[@]}" >/dev/null
  "$PY" "$REPO/infra/airflow_wait.py" run "$dag" "$run_id" --timeout "${WAIT_TIMEOUT:-3600}"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  backfill) shift; backfill "$@" ;;
  trigger) shift; trigger "$@" ;;
  *) echo "usage: $0 {start|stop|status|backfill DAG FROM TO|trigger DAG [CONF] [DATE]}" >&2
     exit 2 ;;
esac
