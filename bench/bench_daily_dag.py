"""The features_daily DAG for one bench-scale day through a real Airflow (infra/airflow.sh:
scheduler, LocalExecutor, one process per task), embedded Sail.

Two simulated days: the first day's run warms up and gives the second its history; the
second day's run is measured, from Airflow's metadata database: the run queued to done (as
a user waits for it) and each task's duration. Issue 19's goal:
the day, ingest to labels, under 60 s on two cores.

    .venv/bin/python -m bench.bench_daily_dag                 # bench scale (~1M sessions/day)
    .venv/bin/python -m bench.bench_daily_dag --scale demo    # ~250k sessions/day
    .venv/bin/python -m bench.bench_daily_dag --history DIR   # DIR/landing, DIR/lake

With `--history`, a folder whose lake already holds the days of its landing folder (a long
history, so that profiles read full windows): its last two days run again through the
DAG, in place, the last one measured.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench.common import free_port, report
from features.days import add_days
from jobs.simulator import SCALES, make_landing

ROOT = Path(__file__).resolve().parents[1]
START = "2026-07-01"
DAG = "features_daily"



def _airflow(env: dict[str, str], *args: str) -> float:
    """Run infra/airflow.sh; its wall time. A failure stops the benchmark with its output."""
    started = time.perf_counter()
    done = subprocess.run(["bash", str(ROOT / "infra" / "airflow.sh"), *args], env=env,
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"airflow.sh {' '.join(args)} failed:\n{done.stdout[-3000:]}"
                         f"{done.stderr[-3000:]}")
    return time.perf_counter() - started


def run_times(home: Path, day: str) -> tuple[float, float, dict[str, float]]:
    """The features_daily run of `day` (its logical date) from Airflow's metadata database:
    seconds queued to done, started to done, and each task's duration."""
    with sqlite3.connect(home / "airflow.db") as db:
        run_id, queued, started, ended = db.execute(
            "SELECT run_id, queued_at, start_date, end_date FROM dag_run WHERE dag_id = ? "
            "AND substr(logical_date, 1, 10) = ?", (DAG, day)).fetchone()
        tasks = db.execute("SELECT task_id, duration FROM task_instance WHERE dag_id = ? AND "
                           "run_id = ?", (DAG, run_id)).fetchall()
    stamp = [datetime.fromisoformat(t) for t in (queued or started, started, ended)]
    return ((stamp[2] - stamp[0]).total_seconds(), (stamp[2] - stamp[1]).total_seconds(),
            {task: float(seconds or 0.0) for task, seconds in tasks})


def _stop(env: dict[str, str]) -> None:
    subprocess.run(["bash", str(ROOT / "infra" / "airflow.sh"), "stop"], env=env, cwd=ROOT,
                   capture_output=True, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="bench",
                        help="simulated size of a day (default bench, ~1M sessions)")
    parser.add_argument("--history", type=Path,
                        help="a folder with landing/ and lake/ of many days: re-run its last "
                             "two days in place instead of simulating two")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_daily_dag_") as tmp:
        tmp_path = Path(tmp)
        if args.history:
            landing = args.history / "landing"
            day = max(p.name.removeprefix("dt=") for p in (landing / "watch_sessions").iterdir())
            first, lake = add_days(day, -1), args.history / "lake"
        else:
            first, day, lake = START, add_days(START, 1), tmp_path / "lake"
            landing = make_landing(tmp_path, START, 2, scale=args.scale, seed=7)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AIRFLOW", "SPARK_REMOTE"))}
        env.update(AIRFLOW_HOME=str(tmp_path / "home"), AIRFLOW_PORT=str(free_port()),
                   AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
                   LAKE_ROOT=str(lake), LANDING_ROOT=str(landing),
                   MODELS_ROOT=str(tmp_path / "models"),
                   TRAINING_RUNS_ROOT=str(tmp_path / "runs"), FEATURES_START_DATE=first,
                   FEATURES_END_DATE=day, AIRFLOW_UNPAUSE="", TRAINING_SCHEDULE="none")
        # The warm-up day's Airflow knows no later day: once a backfill unpauses the DAG,
        # catchup would start the measured day at once, beside the warm-up.
        warm_env = {**env, "FEATURES_END_DATE": first}
        _airflow(warm_env, "start")
        try:
            warm = _airflow(warm_env, "backfill", DAG, first, first)
        finally:
            _stop(warm_env)
        _airflow(env, "start")  # catchup may queue the day before the backfill does
        try:
            _airflow(env, "backfill", DAG, day, day)
        finally:
            _stop(env)
        wall, running, tasks = run_times(tmp_path / "home", day)
    rows = [(task, f"{seconds:7.2f} s") for task, seconds in sorted(tasks.items())]
    rows += [("sum of task durations", f"{sum(tasks.values()):7.2f} s"),
             ("first day's run (warm-up)", f"{warm:7.2f} s"),
             ("the day's run, started to done", f"{running:7.2f} s"),
             ("the day's run, queued to done", f"{wall:7.2f} s   (goal < 60 s)")]
    scale = f"history {args.history}" if args.history else f"{args.scale} scale"
    report(f"{DAG} for {day} through Airflow ({scale}, embedded Sail, "
           f"load average {os.getloadavg()[0]:.1f})", rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
