"""One session-scoped Sail engine for the tests; JVM Spark local runs jobs in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
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


# Test JVMs run for seconds on tiny data: the C1 compiler alone (no C2) and the serial
# collector start them faster on two cores (a 6-day parity run: 4m41s -> 3m07s, measured).
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def jvm_test_env() -> dict[str, str]:
    """The environment of a test's JVM Spark child process (Delta, quick-starting JVM)."""
    from jobs.engine import jvm_child_env

    return {**jvm_child_env(), "JAVA_TOOL_OPTIONS": TEST_JAVA_OPTIONS}


def _jvm_child(argv: list[str], what: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *argv], env=jvm_test_env(), text=True,
                          capture_output=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, f"{what} failed on JVM Spark:\n{done.stderr[-3000:]}"
    return done


def run_on_jvm(module: str, *args: str) -> subprocess.CompletedProcess:
    """Run a job's CLI on JVM Spark local (Delta) in a child process.

    PySpark 4 chooses Connect or classic columns process-wide, so the classic engine runs
    apart from the Sail session of the tests; the parent reads its Delta tables back.
    """
    return _jvm_child(["-m", module, *args], module)


def run_code_on_jvm(code: str) -> subprocess.CompletedProcess:
    """Run Python `code` in a child process whose default engine is JVM Spark local (Delta):
    `jobs.engine.spark_session()` there opens it."""
    return _jvm_child(["-c", code], "code")


@pytest.fixture()
def lake(tmp_path, spark):
    from jobs.lake import Lake

    return Lake(tmp_path / "lake", spark)


@pytest.fixture()
def jvm_lake(tmp_path, spark):
    """A Delta lake for JVM Spark to write (see run_on_jvm), read here through Sail."""
    from jobs.lake import Lake

    return Lake(tmp_path / "jvm_lake", spark)
