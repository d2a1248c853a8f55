"""DAG files: they import cleanly and cheaply, wire the tasks in the designed order, declare
the lake tables as assets, validate params, and find the Spark Connect connection."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from tests.dags.conftest import REPO

pytestmark = pytest.mark.unit

FEATURE_EDGES = {  # task -> its upstream tasks
    "check_landing": set(), "ingest": {"check_landing"}, "daily_stats": {"ingest"},
    "profiles": {"daily_stats"}, "anchor_neighbours": {"daily_stats"}, "labels": {"profiles"},
    "data_checks": {"profiles", "labels"},
}
TRAINING_ORDER = ["training_set", "data_gate", "train", "evaluate", "model_gate", "report",
                  "publish"]


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert {"features_daily", "training"} <= set(dagbag.dag_ids)


def test_parsing_imports_no_engine_or_model_code():
    # A clean interpreter: the scheduler parses these files every few seconds.
    code = ("import sys; from airflow.dag_processing.dagbag import DagBag; "
            f"b = DagBag(dag_folder={str(REPO / 'dags')!r}); assert not b.import_errors; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'pyspark', 'tensorflow', 'jobs', 'keras', 'matplotlib', 'deltalake'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_features_daily_wiring(dagbag):
    dag = dagbag.dags["features_daily"]
    assert {t.task_id: t.upstream_task_ids for t in dag.tasks} == FEATURE_EDGES
    assert dag.catchup and dag.max_active_runs > 1  # days run in parallel...
    past = {t.task_id for t in dag.tasks if t.depends_on_past}
    # ...except the jobs reading earlier days, which wait for the day before
    assert past == {"profiles", "anchor_neighbours"}
    ingest = dag.task_dict["ingest"]
    assert ingest.retries >= 1 and ingest.retry_exponential_backoff >= 2
    outlets = {t.task_id: {a.name for a in t.outlets} for t in dag.tasks}
    assert outlets["profiles"] == {"lake.user_profiles", "lake.anchor_profiles",
                                   "lake.user_running_totals", "lake.anchor_running_totals"}
    assert outlets["labels"] == {"lake.labels"}
    assert outlets["anchor_neighbours"] == {"lake.anchor_neighbours"}
    assert "lake.raw_watch_sessions" in outlets["ingest"]


def test_training_wiring(dagbag):
    dag = dagbag.dags["training"]
    for before, after in zip(TRAINING_ORDER, TRAINING_ORDER[1:], strict=False):
        assert before in dag.task_dict[after].upstream_task_ids, (before, after)
    assert set(dag.task_dict) == set(TRAINING_ORDER)
    assert not dag.catchup and dag.max_active_runs == 1
    for gate in ("data_gate", "model_gate"):
        assert dag.task_dict[gate].retries == 0  # a failed gate is an answer, not a glitch


def test_assets_cover_every_declared_table():
    from dags.common import ASSETS
    from features.catalog import ALL_TABLES

    assert set(ASSETS) == {t.name for t in ALL_TABLES}


@pytest.mark.parametrize("dag_id, changes, fragment", [
    ("training", {"end": "2026-02-30"}, "date"),
    ("training", {"end": "20260101"}, "does not match"),
    ("training", {"days": 1}, "less than the minimum"),
    ("training", {"workers": 0}, "less than the minimum"),
    ("training", {"train_overrides": "fast"}, "not of type 'object'"),
    ("training", {"model": "Two Tower"}, "does not match"),
    ("training", {"force_publish": "yes"}, "too short"),
    ("features_daily", {"window_days": 0}, "less than the minimum"),
    ("features_daily", {"max_quarantine_rate": 2}, "greater than the maximum"),
])
def test_params_reject_bad_values(dagbag, dag_id, changes, fragment):
    from airflow.sdk.exceptions import ParamValidationError

    params = copy.deepcopy(dagbag.dags[dag_id].params)
    with pytest.raises(ParamValidationError, match=fragment):
        params.update(changes)
        params.validate()


def test_default_params_are_valid(dagbag):
    for dag_id in ("features_daily", "training"):
        dagbag.dags[dag_id].params.validate()
    # the published model by default: the only one that beats the rewatch list here
    assert dagbag.dags["training"].params["model"] == "fusion"


BASE = {"days": 7, "holdout_days": 1, "window": 7, "workers": 1, "epochs": None,
        "runs_root": "/tmp/runs"}


def test_a_labels_triggered_run_ends_at_the_newest_labelled_day():
    from dags.common import training_request

    run = training_request({**BASE, "end": None}, None, "asset_triggered__x",
                           ["2026-01-09", "2026-01-11", "2026-01-10"])
    assert run["end"] == "2026-01-11" and run["model"] == "two_tower"
    explicit = training_request({**BASE, "end": "2026-01-05"}, None, "m", ["2026-01-11"])
    assert explicit["end"] == "2026-01-05"  # an explicit end wins


def test_the_training_schedule_can_follow_the_labels_asset(monkeypatch):
    import importlib

    import dags.training_dag as module

    monkeypatch.setenv("TRAINING_SCHEDULE", "labels")
    try:
        timetable = importlib.reload(module).TRAINING.timetable
        assert type(timetable).__name__ == "AssetTriggeredTimetable"
        assert [a.name for a in timetable.asset_condition.objects] == ["lake.labels"]
    finally:
        monkeypatch.delenv("TRAINING_SCHEDULE")
        importlib.reload(module)


def test_training_request_defaults_to_the_day_before_the_run():
    from dags.common import training_request

    run = training_request({**BASE, "end": None}, datetime(2026, 1, 15, 4), "scheduled__x:1+0")
    assert run["end"] == "2026-01-14"
    assert run["label_days"][0] == "2026-01-08" and len(run["label_days"]) == 7
    assert run["run_id"] == "2026-01-14_M7_N7__scheduled__x-1-0"  # folder-safe
    assert run["run_dir"] == "/tmp/runs/" + run["run_id"]


@pytest.mark.parametrize("changes, logical, message", [
    ({"end": None}, None, "no end day"),
    ({"end": "2026-01-40"}, None, "not a calendar day"),
    ({"end": "2026-01-10", "holdout_days": 7}, None, "holdout_days must be in"),
])
def test_training_request_rejects_inconsistent_params(changes, logical, message):
    from dags.common import training_request

    with pytest.raises(ValueError, match=message):
        training_request({**BASE, **changes}, logical, "manual__1")


def test_spark_connect_connection_gives_the_remote_url(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from dags.common import spark_remote

    assert spark_remote("spark_connect_default") is None  # not configured: embedded
    monkeypatch.setenv("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT", json.dumps(
        {"conn_type": "spark_connect", "host": "10.0.0.5", "port": 15002}))
    assert spark_remote("spark_connect_default") == "sc://10.0.0.5:15002/"
    monkeypatch.setenv("AIRFLOW_CONN_SUBMIT", json.dumps({"conn_type": "spark", "host": "x"}))
    with pytest.raises(AirflowFailException, match="type 'spark'"):
        spark_remote("submit")


@pytest.mark.engine
def test_tasks_run_on_the_connected_spark_connect_server(tmp_path):
    """A fresh process (as a LocalExecutor task is) whose connection names a separate Spark
    Connect server writes its table through that server."""
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    try:
        _, port = server.listening_address
        code = f"""
import json, os
os.environ["AIRFLOW_CONN_SPARK"] = json.dumps(
    {{"conn_type": "spark_connect", "host": "127.0.0.1", "port": {port}}})
from dags.common import open_lake
from features.catalog import LIVE_SCHEDULE
from jobs.schemas import spark_schema
lake = open_lake({{"lake_root": {str(tmp_path / 'lake')!r}, "spark_conn_id": "spark"}})
rows = lake.spark.createDataFrame([(1, "2026-01-01")], spark_schema(LIVE_SCHEDULE))
lake.write_partition(rows, LIVE_SCHEDULE, "2026-01-01")
import jobs.engine
print(lake.spark.client._builder.endpoint, jobs.engine._sail_server is None)
"""
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=REPO, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        # the child reached our server and started no embedded engine of its own
        assert done.stdout.split()[-2:] == [f"127.0.0.1:{port}", "True"]
        assert (tmp_path / "lake" / "live_schedule" / "_delta_log").is_dir()
    finally:
        server.stop()


def test_no_run_without_a_day_is_a_clear_failure():
    from airflow.sdk.exceptions import AirflowFailException

    from dags.common import run_day

    with pytest.raises(AirflowFailException, match="no logical date"):
        run_day({"logical_date": None})
    assert run_day({"logical_date": datetime(2026, 1, 2) + timedelta(hours=0)}) == "2026-01-02"


def test_errors_a_retry_cannot_fix_fail_the_task_without_retries():
    from airflow.sdk.exceptions import AirflowFailException

    from dags.common import fail_without_retry
    from features.days import parse_day

    with pytest.raises(AirflowFailException, match="ValueError: .*0001-01-01"):
        with fail_without_retry(ValueError, FileNotFoundError):
            parse_day("0001-01-01", "--date")
    with pytest.raises(RuntimeError):  # anything else keeps Airflow's retries
        with fail_without_retry(ValueError):
            raise RuntimeError("engine went away")
