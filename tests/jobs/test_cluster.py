"""The jobs on a real multi-process Spark cluster (infra/spark_cluster.sh: a standalone master,
two workers and a Spark Connect server on 127.0.0.1, Delta configured), by spark-submit and
through Spark Connect: ingest, daily stats, profiles, labels and the training set of three
tiny days, every table equal to the embedded (Sail) run's. One cluster serves the session."""

from __future__ import annotations

import json
import sys

import pytest

from jobs.lake import Lake
from tests.conftest import SPARK_CLUSTER, run_checked
from tests.jobs.test_features_parity import FEATURES, RUN_ID, TINY_DAYS, every_table

# one Spark cluster per pytest worker: its tests share the worker (make test: --dist loadgroup)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("spark_cluster")]

STEPS = ["ingest", *FEATURES]
RUN_DAYS_ARGS = ["--start", TINY_DAYS[0], "--end", TINY_DAYS[-1], "--steps", ",".join(STEPS),
                 "--window", "2", "--last-k", "3", "--allow-partial"]
TRAINING_SET_ARGS = ["--end", TINY_DAYS[-1], "--days", str(len(TINY_DAYS)), "--window", "2",
                     "--run-id", RUN_ID, "--shards", "2", "--validation-days", "0"]


def delta_engines(lake: Lake) -> set[str]:
    """The engineInfo of every commit of every Delta table under the lake (who wrote it)."""
    found = set()
    for log in lake.root.rglob("_delta_log/*.json"):
        for line in log.read_text().splitlines():
            info = json.loads(line).get("commitInfo")
            if info:
                found.add(info.get("engineInfo", "?"))
    return found


def assert_same_tables(lake: Lake, expected: dict[str, list]) -> None:
    found = every_table(lake, RUN_ID)
    assert sorted(found) == sorted(expected)
    for name, rows in expected.items():
        assert found[name] == rows, name
    # written by delta-spark on the cluster's JVMs, not by an embedded engine
    engines = delta_engines(lake)
    assert engines and all("Delta-Lake/" in info for info in engines), engines


def test_jobs_by_spark_submit_on_the_cluster(spark_cluster, tiny_reference, tmp_path, spark):
    """Both jobs in one application (infra/spark_job.py ... --then ...): one driver."""
    landing, _, expected, _ = tiny_reference
    lake = Lake(tmp_path / "lake", spark)
    done = run_checked(["bash", SPARK_CLUSTER, "submit", "jobs.run_days", *RUN_DAYS_ARGS,
                        "--landing", str(landing), "--lake", str(lake.root),
                        "--then", "jobs.training_set", *TRAINING_SET_ARGS,
                        "--lake", str(lake.root)], spark_cluster, "spark-submit")
    assert "run_days " in done.stdout and "training_set" in done.stdout
    assert_same_tables(lake, expected)


def test_jobs_through_spark_connect_on_the_cluster(spark_cluster, tiny_reference, tmp_path,
                                                   spark):
    landing, _, expected, _ = tiny_reference
    lake = Lake(tmp_path / "lake", spark)
    remote = ["--remote", f"sc://127.0.0.1:{spark_cluster['SPARK_CONNECT_PORT']}"]
    run_checked([sys.executable, "-m", "jobs.run_days", *RUN_DAYS_ARGS, *remote, "--landing",
                 str(landing), "--lake", str(lake.root)], spark_cluster,
                "jobs.run_days over Connect")
    run_checked([sys.executable, "-m", "jobs.training_set", *TRAINING_SET_ARGS, *remote,
                 "--lake", str(lake.root)], spark_cluster, "jobs.training_set over Connect")
    assert_same_tables(lake, expected)
