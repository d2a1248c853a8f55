"""Airflow for the DAG tests: a throwaway AIRFLOW_HOME with its own SQLite database, the
repo's dags/ folder, no examples. Set before anything imports airflow (it reads its config
once, at import)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_HOME = tempfile.mkdtemp(prefix="airflow_home_")
os.environ.update({
    "AIRFLOW_HOME": _HOME,
    "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_HOME}/airflow.db",
    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": f"{_HOME}/logs",
})


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_db():
    """A fresh metadata database (dag.test records its runs there)."""
    from airflow.utils.db import resetdb

    resetdb()
    return _HOME


@pytest.fixture(scope="session")
def dagbag(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags"))


def simulate_landing(root: Path, start: str, days: int, seed: int = 5) -> Path:
    """Tiny simulated landing files (~2k sessions a day)."""
    from jobs.simulator import make_landing

    return make_landing(root, start, days, seed=seed)


def run_dag(dag, day: str | None, conf: dict):
    """dag.test for one logical day; the finished DagRun and its task states."""
    import pendulum

    logical = pendulum.parse(day) if day else None
    run = dag.test(logical_date=logical, run_conf=conf)
    return run, {ti.task_id: ti.state for ti in run.get_task_instances()}
