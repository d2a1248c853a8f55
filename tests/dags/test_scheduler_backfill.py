"""The real services (~4 min on two cores): infra/airflow.sh starts the
api-server, dag-processor and scheduler on free ports, backfills four tiny days of
features_daily (days in parallel, profiles in order), triggers a tiny training run that
publishes a model, and stops. The tables equal one multi-day run of the same jobs."""

from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from features.catalog import ALL_TABLES
from features.days import add_days, days_between
from tests.dags.conftest import REPO, simulate_landing
from tests.dags.test_features_daily import _rows, _same
from tests.dags.test_training_dag import LENIENT, TINY

pytestmark = pytest.mark.e2e

START, DAYS, WINDOW = "2026-05-01", 4, 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _airflow(env: dict, *args: str, timeout: int) -> subprocess.CompletedProcess:
    done = subprocess.run(["bash", str(REPO / "infra" / "airflow.sh"), *args], env=env,
                          capture_output=True, text=True, timeout=timeout)
    print(done.stdout[-3000:])
    return done


def test_a_scheduler_backfill_equals_one_multi_day_run(tmp_path, spark):
    from jobs.lake import Lake
    from jobs.run_days import STEPS, run_days

    landing = simulate_landing(tmp_path, START, DAYS)
    days = days_between(START, add_days(START, DAYS - 1))
    # the services get only what airflow.sh derives, not this test process's Airflow set-up
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(AIRFLOW_HOME=str(tmp_path / "home"), AIRFLOW_PORT=str(_free_port()),
               AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
               LAKE_ROOT=str(tmp_path / "lake"), LANDING_ROOT=str(landing),
               MODELS_ROOT=str(tmp_path / "models"), TRAINING_RUNS_ROOT=str(tmp_path / "runs"),
               FEATURES_START_DATE=START, FEATURE_WINDOW_DAYS=str(WINDOW), AIRFLOW_UNPAUSE="",
               WAIT_TIMEOUT="300")
    try:
        started = _airflow(env, "start", timeout=300)
        assert started.returncode == 0, started.stderr[-3000:]
        backfill = _airflow(env, "backfill", "features_daily", days[0], days[-1], timeout=400)
        assert backfill.returncode == 0, backfill.stdout[-3000:] + backfill.stderr[-3000:]
        assert f"queued {DAYS} new runs" in backfill.stdout
        assert backfill.stdout.count(" success ") == backfill.stdout.count("backfill__") == DAYS
        conf = {"end": days[-1], "days": 3, "window": WINDOW, "model": "two_tower",
                "train_overrides": TINY,
                "model_gate": LENIENT}
        trained = _airflow(env, "trigger", "training", json.dumps(conf), timeout=400)
        assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
        assert (tmp_path / "models" / "user_tower" / "1" / "manifest.json").is_file()
    finally:
        stopped = _airflow(env, "stop", timeout=120)
    assert stopped.returncode == 0

    scheduled, driver = Lake(tmp_path / "lake", spark), Lake(tmp_path / "driver", spark)
    run_days(driver, days, STEPS, WINDOW, allow_partial=True, landing=str(landing))
    run_days(driver, [add_days(days[-1], 1)], ["profiles", "anchor_neighbours"], WINDOW,
             allow_partial=True)
    for spec in ALL_TABLES:
        assert scheduled.days(spec) == driver.days(spec), spec.name
        wanted = sorted(driver.days(spec))
        ours, theirs = _rows(scheduled, spec, wanted), _rows(driver, spec, wanted)
        assert ours and len(ours) == len(theirs), spec.name
        assert all(map(_same, ours, theirs)), spec.name
