"""The jobs on a real multi-process Spark cluster (infra/spark_cluster.sh: a standalone master,
two workers and a Spark Connect server on 127.0.0.1, Delta configured), by spark-submit and
through Spark Connect: ingest, daily stats, profiles, labels and the training set of three
tiny days, every table equal to the embedded (Sail) run's. One cluster serves the module."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from jobs.lake import Lake
from jobs.run_days import run_days
from jobs.simulator import make_landing
from tests.conftest import ROOT, TEST_JAVA_OPTIONS
from tests.jobs.test_features_parity import (
    FEATURES,
    RUN_ID,
    TINY_DAYS,
    _training_set,
    every_table,
)

pytestmark = pytest.mark.e2e

SCRIPT = str(ROOT / "infra" / "spark_cluster.sh")
STEPS = ["ingest", *FEATURES]
RUN_DAYS_ARGS = ["--start", TINY_DAYS[0], "--end", TINY_DAYS[-1], "--steps", ",".join(STEPS),
                 "--window", "2", "--last-k", "3", "--allow-partial"]
TRAINING_SET_ARGS = ["--end", TINY_DAYS[-1], "--days", str(len(TINY_DAYS)), "--window", "2",
                     "--run-id", RUN_ID, "--shards", "2", "--validation-days", "0"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env(**extra: str) -> dict[str, str]:
    """This environment without the engine choices of the test process (its Sail session)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "PIPELINE_ENGINE",
                        "LAKE_FORMAT", "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")}
    return {**env, "JAVA_TOOL_OPTIONS": TEST_JAVA_OPTIONS, **extra}


def _run(argv: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, env=env, cwd=ROOT, text=True, capture_output=True,
                          timeout=900)
    assert done.returncode == 0, f"{what} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The cluster's environment (ports chosen free), started once for the module."""
    state = tmp_path_factory.mktemp("spark_cluster")
    env = _clean_env(SPARK_CLUSTER_DIR=str(state), SPARK_MASTER_PORT=str(_free_port()),
                     SPARK_MASTER_WEBUI_PORT=str(_free_port()),
                     SPARK_CONNECT_PORT=str(_free_port()))
    try:
        _run(["bash", SCRIPT, "start"], env, "infra/spark_cluster.sh start")
        yield env
    finally:
        subprocess.run(["bash", SCRIPT, "stop"], env=env, cwd=ROOT, capture_output=True,
                       timeout=120)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory, spark):
    """The landing days and every table of the same range built on embedded Sail."""
    root = tmp_path_factory.mktemp("embedded")
    landing = make_landing(root, TINY_DAYS[0], len(TINY_DAYS), scale="tiny", seed=3)
    lake = Lake(root / "lake", spark)
    run_days(lake, TINY_DAYS, STEPS, window=2, last_k=3, allow_partial=True,
             landing=str(landing))
    _training_set(lake)
    return landing, every_table(lake, RUN_ID)


def _assert_same_tables(lake: Lake, expected: dict[str, list]) -> None:
    found = every_table(lake, RUN_ID)
    assert sorted(found) == sorted(expected)
    for name, rows in expected.items():
        assert found[name] == rows, name


def test_jobs_by_spark_submit_on_the_cluster(cluster, embedded, tmp_path, spark):
    landing, expected = embedded
    lake = Lake(tmp_path / "lake", spark)
    submit = ["bash", SCRIPT, "submit"]
    _run([*submit, "jobs.run_days", *RUN_DAYS_ARGS, "--landing", str(landing),
          "--lake", str(lake.root)], cluster, "spark-submit jobs.run_days")
    _run([*submit, "jobs.training_set", *TRAINING_SET_ARGS, "--lake", str(lake.root)],
         cluster, "spark-submit jobs.training_set")
    _assert_same_tables(lake, expected)


def test_jobs_through_spark_connect_on_the_cluster(cluster, embedded, tmp_path, spark):
    landing, expected = embedded
    lake = Lake(tmp_path / "lake", spark)
    remote = ["--remote", f"sc://127.0.0.1:{cluster['SPARK_CONNECT_PORT']}"]
    _run([sys.executable, "-m", "jobs.run_days", *RUN_DAYS_ARGS, *remote, "--landing",
          str(landing), "--lake", str(lake.root)], cluster, "jobs.run_days over Connect")
    _run([sys.executable, "-m", "jobs.training_set", *TRAINING_SET_ARGS, *remote,
          "--lake", str(lake.root)], cluster, "jobs.training_set over Connect")
    _assert_same_tables(lake, expected)
