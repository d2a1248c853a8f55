"""A features_daily run does its Spark work on the cluster named by its Airflow connection
(type spark_connect, from the apache-spark provider; here set through the environment as a
deployment would): every table of the day equals an embedded run's, and every commit of
the cluster run's lake was written by delta-spark on the cluster's JVMs."""

from __future__ import annotations

import json

import pytest

from jobs.lake import Lake
from tests.dags.conftest import run_dag
from tests.jobs.test_cluster import delta_engines
from tests.jobs.test_features_parity import TINY_DAYS, every_table

# one Spark cluster per pytest worker: its tests share the worker (make test: --dist loadgroup)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("spark_cluster")]

DAY = TINY_DAYS[0]


def test_a_dag_run_does_its_spark_work_on_the_cluster(dagbag, spark_cluster, tiny_reference,
                                                      tmp_path, spark, monkeypatch):
    landing = tiny_reference[0]
    dag = dagbag.dags["features_daily"]
    conf = {"landing_root": str(landing), "window_days": 2}
    embedded, on_cluster = tmp_path / "embedded", tmp_path / "cluster"
    run, states = run_dag(dag, DAY, {**conf, "lake_root": str(embedded)})
    assert run.state == "success", states

    monkeypatch.setenv("AIRFLOW_CONN_SPARK_CONNECT_DEFAULT", json.dumps(
        {"conn_type": "spark_connect", "host": "127.0.0.1",
         "port": int(spark_cluster["SPARK_CONNECT_PORT"])}))
    run, states = run_dag(dag, DAY, {**conf, "lake_root": str(on_cluster)})
    assert run.state == "success", states
    assert set(states.values()) == {"success"}

    expected = every_table(Lake(embedded, spark))
    assert expected["raw_watch_sessions"] and expected["user_profiles"]
    found = every_table(Lake(on_cluster, spark))
    assert sorted(found) == sorted(expected)
    for name, rows in expected.items():
        assert found[name] == rows, name
    engines = delta_engines(Lake(on_cluster, spark))
    assert engines and all("Delta-Lake/" in info for info in engines), engines
    assert not any("Delta-Lake/" in info for info in delta_engines(Lake(embedded, spark)))
