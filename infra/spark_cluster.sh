#!/usr/bin/env bash
# A real multi-process Spark cluster on this machine, from the pip pyspark distribution of
# .venv: a standalone master, two workers and a Spark Connect server, all on 127.0.0.1 and
# all with the Delta jars and settings of jobs.engine (the jars come from infra/bootstrap.sh).
#
#   infra/spark_cluster.sh start            master + 2 workers + Connect server; waits until ready
#   infra/spark_cluster.sh status           what runs, and the URLs
#   infra/spark_cluster.sh submit MODULE [ARGS...]
#                                           spark-submit a job module to the master, e.g.
#                                           submit jobs.run_days --start D --end D --lake L
#   infra/spark_cluster.sh stop             stops what start started (by its pid files)
#
# The jobs then run on it with spark-submit (`submit` above) or through Spark Connect:
#   .venv/bin/python -m jobs.run_days --remote sc://127.0.0.1:15002 ...
#
# Settings (environment): SPARK_CLUSTER_DIR (state: conf, logs, pids, worker dirs; default
# .venv/spark-cluster), SPARK_MASTER_PORT (7077), SPARK_MASTER_WEBUI_PORT (8091; Airflow
# has 8080), SPARK_CONNECT_PORT (15002), SPARK_WORKER_CORES (2 task slots per worker),
# SPARK_WORKER_MEMORY (3g), SPARK_EXECUTOR_MEMORY (1g), SPARK_APP_CORES (2: each
# application, the Connect server included, takes at most this many slots, so that a
# spark-submit job and the Connect server run side by side), SPARK_CLUSTER_CONNECT (0: no
# Connect server, all the workers' memory for spark-submit jobs: the benchmark).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python

DIR=$(mkdir -p "${SPARK_CLUSTER_DIR:-.venv/spark-cluster}" && cd "${SPARK_CLUSTER_DIR:-.venv/spark-cluster}" && pwd)
MASTER_PORT=${SPARK_MASTER_PORT:-7077}
MASTER_UI=${SPARK_MASTER_WEBUI_PORT:-8091}
CONNECT_PORT=${SPARK_CONNECT_PORT:-15002}
WORKERS=2
MASTER_URL=spark://127.0.0.1:$MASTER_PORT

export SPARK_HOME
SPARK_HOME=$("$PY" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
export SPARK_CONF_DIR=$DIR/conf SPARK_LOG_DIR=$DIR/logs SPARK_LOCAL_IP=127.0.0.1
export PYSPARK_PYTHON=$PY PYSPARK_DRIVER_PYTHON=$PY
# Java options of the daemons and drivers (the tests pass quick-start flags this way)
export SPARK_DAEMON_JAVA_OPTS=${SPARK_DAEMON_JAVA_OPTS:-}

write_conf() {
  mkdir -p "$SPARK_CONF_DIR" "$SPARK_LOG_DIR" "$DIR/pids"
  local jars
  jars=$("$PY" -c 'from jobs.engine import delta_jars; print(",".join(delta_jars()))')
  # spark-defaults.conf: read by spark-submit (jobs and the Connect server alike)
  {
    echo "spark.master $MASTER_URL"
    echo "spark.jars $jars"
    "$PY" -c 'from jobs.engine import DELTA_CONF, JVM_CONF
for k, v in {**DELTA_CONF, **JVM_CONF}.items(): print(k, v)'
    echo "spark.driver.host 127.0.0.1"
    echo "spark.driver.bindAddress 127.0.0.1"
    echo "spark.ui.enabled false"
    echo "spark.cores.max ${SPARK_APP_CORES:-2}"
    echo "spark.executor.cores 1"
    echo "spark.executor.memory ${SPARK_EXECUTOR_MEMORY:-1g}"
    echo "spark.pyspark.python $PY"
    echo "spark.pyspark.driver.python $PY"
    echo "spark.connect.grpc.binding.address 127.0.0.1"
    echo "spark.connect.grpc.binding.port $CONNECT_PORT"
  } >"$SPARK_CONF_DIR/spark-defaults.conf"
}

alive() { [ -f "$DIR/pids/$1" ] && kill -0 "$(cat "$DIR/pids/$1")" 2>/dev/null; }

launch() {  # name, then the command; runs it in the background with its log and pid file
  local name=$1; shift
  if alive "$name"; then echo "spark_cluster: $name already runs"; return; fi
  nohup "$@" >"$SPARK_LOG_DIR/$name.log" 2>&1 </dev/null &
  echo $! >"$DIR/pids/$name"
}

wait_for() {  # what, seconds, then a test command
  local what=$1 limit=$2; shift 2
  local waited=0
  until "$@" >/dev/null 2>&1; do
    if [ "$waited" -ge "$limit" ]; then
      echo "spark_cluster: $what not ready after ${limit}s; logs in $SPARK_LOG_DIR" >&2
      tail -n 20 "$SPARK_LOG_DIR"/*.log >&2 || true
      return 1
    fi
    sleep 1; waited=$((waited + 1))
  done
}

workers_alive() {
  "$PY" - "$MASTER_UI" "$WORKERS" <<'EOF'
import json, sys, urllib.request
state = json.load(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/json/", timeout=2))
sys.exit(0 if state.get("aliveworkers", 0) >= int(sys.argv[2]) else 1)
EOF
}

port_open() { "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$1"; }

start() {
  write_conf
  launch master "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master \
    --host 127.0.0.1 --port "$MASTER_PORT" --webui-port "$MASTER_UI"
  wait_for "master" 120 port_open "$MASTER_PORT"
  for i in $(seq 1 "$WORKERS"); do
    mkdir -p "$DIR/work-$i"
    launch "worker-$i" "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker \
      --host 127.0.0.1 --cores "${SPARK_WORKER_CORES:-2}" --memory "${SPARK_WORKER_MEMORY:-3g}" \
      --webui-port 0 --work-dir "$DIR/work-$i" "$MASTER_URL"
  done
  wait_for "$WORKERS workers" 120 workers_alive
  if [ "${SPARK_CLUSTER_CONNECT:-1}" != 0 ]; then
    launch connect "$SPARK_HOME/bin/spark-submit" --name "Spark Connect server" \
      --class org.apache.spark.sql.connect.service.SparkConnectServer spark-internal
    wait_for "Spark Connect server" 180 port_open "$CONNECT_PORT"
  fi
  status
}

status() {
  for name in master $(seq -f "worker-%g" 1 "$WORKERS") connect; do
    if alive "$name"; then echo "$name: running (pid $(cat "$DIR/pids/$name"))"
    else echo "$name: stopped"; fi
  done
  echo "master $MASTER_URL (UI http://127.0.0.1:$MASTER_UI), Spark Connect sc://127.0.0.1:$CONNECT_PORT"
}

stop() {
  for name in connect $(seq -f "worker-%g" "$WORKERS" -1 1) master; do
    if alive "$name"; then
      local pid; pid=$(cat "$DIR/pids/$name")
      kill "$pid"
      for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    fi
    rm -f "$DIR/pids/$name"
  done
  echo "spark_cluster: stopped"
}

submit() {
  [ $# -ge 1 ] || { echo "usage: $0 submit MODULE [ARGS...]" >&2; exit 2; }
  write_conf
  exec "$SPARK_HOME/bin/spark-submit" "$ROOT/infra/spark_job.py" "$@"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  submit) shift; submit "$@" ;;
  *) echo "usage: $0 start|stop|status|submit MODULE [ARGS...]" >&2; exit 2 ;;
esac
