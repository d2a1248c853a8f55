"""The jobs on a real multi-process Spark cluster (infra/spark_cluster.sh: a standalone master,
two workers and a Spark Connect server on 127.0.0.1, Delta configured): ingest, daily stats,
profiles and labels by spark-submit and through Spark Connect, the training set through
Connect, three tiny days in one lake, every table equal to the embedded (Sail) run's. One
cluster serves the session."""

from __future__ import annotations

import json
import sys

import pytest

from jobs.lake import Lake
from tests.conftest import SPARK_CLUSTER, run_checked
from tests.jobs.test_features_parity import (
    FEATURES,
    RUN_ID,
    TINY_DAYS,
    TRAINING_SET_ARGS,
    every_table,
)

# one Spark cluster per pytest worker: its tests share the worker (make test: --dist loadgroup)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("spark_cluster")]

STEPS = ["ingest", *FEATURES]


def run_days_args(day: str, steps: list[str]) -> list[str]:
    return ["--start", day, "--end", day, "--steps", ",".join(steps), "--window", "2",
            "--last-k", "3", "--allow-partial"]


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


def test_jobs_by_spark_submit_then_through_spark_connect_on_the_cluster(
        spark_cluster, tiny_reference, tmp_path, spark):
    """One lake, its days split between the two ways in: spark-submit runs the first day and
    the second day's ingest as one application (infra/spark_job.py ... --then ...: one
    driver), Spark Connect the rest and the training set; ingest and the feature jobs run both
    ways, and the lake equals the embedded run's."""
    landing, _, expected, _ = tiny_reference
    lake = Lake(tmp_path / "lake", spark)
    first, second, third = TINY_DAYS
    done = run_checked(["bash", SPARK_CLUSTER, "submit",
                        "jobs.run_days", *run_days_args(first, STEPS), "--landing", str(landing),
                        "--lake", str(lake.root), "--then",
                        "jobs.run_days", *run_days_args(second, ["ingest"]),
                        "--landing", str(landing), "--lake", str(lake.root)],
                       spark_cluster, "spark-submit")
    assert done.stdout.count("run_days ") == 2
    remote = ["--remote", f"sc://127.0.0.1:{spark_cluster['SPARK_CONNECT_PORT']}"]
    run_checked([sys.executable, "-m", "jobs.run_days", *run_days_args(second, FEATURES),
                 *remote, "--lake", str(lake.root)], spark_cluster, "features over Connect")
    run_checked([sys.executable, "-m", "jobs.run_days", *run_days_args(third, STEPS), *remote,
                 "--landing", str(landing), "--lake", str(lake.root)], spark_cluster,
                "jobs.run_days over Connect")
    run_checked([sys.executable, "-m", "jobs.training_set", *TRAINING_SET_ARGS, *remote,
                 "--lake", str(lake.root)], spark_cluster, "jobs.training_set over Connect")
    assert_same_tables(lake, expected)
