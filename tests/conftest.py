"""One session-scoped Sail engine for the tests; JVM Spark local runs jobs in a child process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def spark():
    from jobs.engine import spark_session

    return spark_session("sail")


def run_on_jvm(module: str, *args: str) -> subprocess.CompletedProcess:
    """Run a job's CLI on JVM Spark local in a child process.

    PySpark 4 chooses Connect or classic columns process-wide, so the classic engine runs
    apart from the Sail session of the tests; the parent reads its Parquet tables back.
    """
    from jobs.engine import jvm_child_env

    done = subprocess.run([sys.executable, "-m", module, *args], env=jvm_child_env(), text=True,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, f"{module} failed on JVM Spark:\n{done.stderr[-3000:]}"
    return done


@pytest.fixture()
def lake(tmp_path, spark):
    from jobs.lake import Lake

    return Lake(tmp_path / "lake", spark)


@pytest.fixture()
def jvm_lake(tmp_path, spark):
    """A Parquet lake written by JVM Spark (see run_on_jvm), read here through Sail."""
    from jobs.lake import Lake

    return Lake(tmp_path / "jvm_lake", spark, fmt="parquet")
