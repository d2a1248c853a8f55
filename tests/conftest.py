"""One session-scoped Sail engine for the tests; JVM Spark local runs jobs in a child process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TIERS = ("e2e", "engine", "unit")  # highest first


def pytest_addoption(parser):
    parser.addoption("--tier", default=",".join(TIERS),
                     help="comma-separated tiers to run: unit, engine, e2e (default: all)")


def tier_of(item) -> str | None:
    """The tier of a test: the highest of its markers (a module's marker is a default that a
    test's own marker raises)."""
    return next((t for t in TIERS if item.get_closest_marker(t)), None)


def pytest_collection_modifyitems(config, items):
    """Every test belongs to exactly one tier; `--tier` keeps the chosen ones."""
    untiered = [item.nodeid for item in items if tier_of(item) is None]
    if untiered:
        raise pytest.UsageError("tests without a tier marker (unit, engine or e2e): "
                                + ", ".join(untiered[:10]))
    wanted = {t.strip() for t in config.getoption("--tier").split(",") if t.strip()}
    unknown = wanted - set(TIERS)
    if unknown:
        raise pytest.UsageError(f"unknown tiers {sorted(unknown)}; choose from {TIERS}")
    keep = [item for item in items if tier_of(item) in wanted]
    dropped = [item for item in items if tier_of(item) not in wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


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
