"""One session-scoped Sail engine for the tests; JVM Spark local runs jobs in one child process."""

from __future__ import annotations

import atexit
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
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


def pytest_runtest_setup(item):
    """`--dist loadgroup` keeps an xdist_group (one lake, one Spark cluster) on one worker by a
    suffix on the node id; pytest 9.2 drops the suffix (pytest-xdist#1386) and the groups
    spread over the workers without a word, each building the group's fixtures again."""
    if (getattr(item.config.option, "loadgroup", False)
            and item.get_closest_marker("xdist_group") and "@" not in item.nodeid):
        pytest.fail("--dist loadgroup did not group this test: this pytest breaks "
                    "pytest-xdist's loadgroup (pytest-xdist#1386; setup.cfg pins below 9.2)",
                    pytrace=False)


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


# The JVM child: one Python process holding one JVM Spark session (Delta) for the whole test
# session. Each job runs in it as `python -m MODULE` would (runpy, its own argv and exit
# code), so a JVM starts once instead of once per job: 20-40 s each on two loaded cores.
_WORKER = r"""
import contextlib, io, json, os, runpy, sys, traceback
reply = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # whatever else writes to stdout (the JVM's logs) goes to stderr
from jobs.engine import spark_session
spark_session()
for line in sys.stdin:
    request, out, rc, error = json.loads(line), io.StringIO(), 0, ""
    try:
        with contextlib.redirect_stdout(out):
            if "module" in request:
                sys.argv = [request["module"], *request["args"]]
                try:
                    runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
                except SystemExit as exit:
                    code = exit.code
                    rc = code if isinstance(code, int) else 0 if code is None else 1
            else:
                exec(request["code"], {"__name__": "__jvm_job__"})
    except BaseException:
        rc, error = 1, traceback.format_exc()
    reply.write(json.dumps({"rc": rc, "stdout": out.getvalue(), "error": error}) + "\n")
    reply.flush()
"""


class JvmWorker:
    """The JVM child process and its request/reply pipe (one JSON line each way)."""

    def __init__(self) -> None:
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-c", _WORKER], env=jvm_test_env(),
                                     cwd=ROOT, text=True, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log)

    def run(self, request: dict, what: str, timeout: float = 900) -> subprocess.CompletedProcess:
        start = self.log.tell()
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        self.log.seek(start)
        stderr = self.log.read()
        if not line:
            self.close()
            raise AssertionError(f"{what}: JVM child died or hung:\n{stderr[-3000:]}")
        reply = json.loads(line)
        done = subprocess.CompletedProcess(what, reply["rc"], reply["stdout"],
                                           stderr + reply["error"])
        assert done.returncode == 0, f"{what} failed on JVM Spark:\n{done.stderr[-3000:]}"
        return done

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


_jvm: JvmWorker | None = None


def jvm_worker() -> JvmWorker:
    """The test session's JVM child, started at first use and ended at exit."""
    global _jvm
    if _jvm is None or _jvm.proc.poll() is not None:
        _jvm = JvmWorker()
        atexit.register(_jvm.close)
    return _jvm


def run_on_jvm(module: str, *args: str) -> subprocess.CompletedProcess:
    """Run a job's CLI on JVM Spark local (Delta) in the JVM child (its stdout, exit code 0
    asserted).

    PySpark 4 chooses Connect or classic columns process-wide, so the classic engine runs
    apart from the Sail session of the tests; the parent reads its Delta tables back.
    """
    return jvm_worker().run({"module": module, "args": list(args)}, module)


def run_code_on_jvm(code: str) -> subprocess.CompletedProcess:
    """Run Python `code` in the JVM child, whose default engine is JVM Spark local (Delta):
    `jobs.engine.spark_session()` there returns its session."""
    return jvm_worker().run({"code": code}, "code")


@pytest.fixture()
def lake(tmp_path, spark):
    from jobs.lake import Lake

    return Lake(tmp_path / "lake", spark)


@pytest.fixture()
def jvm_lake(tmp_path, spark):
    """A Delta lake for JVM Spark to write (see run_on_jvm), read here through Sail."""
    from jobs.lake import Lake

    return Lake(tmp_path / "jvm_lake", spark)


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory, spark):
    """Three tiny simulated days built on embedded Sail (ingest, features, a training set):
    the reference the engine-neutral lake, the cluster runs and the DAG on the cluster are
    compared with. Returns (landing, lake, every table's rows, the training set's manifest)."""
    from jobs.lake import Lake
    from jobs.run_days import run_days
    from jobs.simulator import make_landing
    from tests.jobs.test_features_parity import (
        FEATURES,
        RUN_ID,
        TINY_DAYS,
        every_table,
        tiny_training_set,
    )

    root = tmp_path_factory.mktemp("tiny_reference")
    landing = make_landing(root, TINY_DAYS[0], len(TINY_DAYS), scale="tiny", seed=3)
    lake = Lake(root / "lake", spark)
    run_days(lake, TINY_DAYS, ["ingest", *FEATURES], window=2, last_k=3, allow_partial=True,
             landing=str(landing))
    manifest = tiny_training_set(lake)
    return landing, lake, every_table(lake, RUN_ID), manifest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cluster_env(**extra: str) -> dict[str, str]:
    """This environment without the engine choices of the test process (its Sail session),
    with the test JVMs' quick-start options."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "PIPELINE_ENGINE",
                        "LAKE_FORMAT", "PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET")}
    return {**env, "JAVA_TOOL_OPTIONS": TEST_JAVA_OPTIONS, **extra}


SPARK_CLUSTER = str(ROOT / "infra" / "spark_cluster.sh")


def run_checked(argv: list[str], env: dict[str, str], what: str) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, env=env, cwd=ROOT, text=True, capture_output=True,
                          timeout=900)
    assert done.returncode == 0, f"{what} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory):
    """A standalone master, two workers and a Spark Connect server (infra/spark_cluster.sh,
    ports chosen free), started once for the test session; its environment."""
    state = tmp_path_factory.mktemp("spark_cluster")
    env = cluster_env(SPARK_CLUSTER_DIR=str(state), SPARK_MASTER_PORT=str(free_port()),
                      SPARK_MASTER_WEBUI_PORT=str(free_port()),
                      SPARK_CONNECT_PORT=str(free_port()))
    try:
        run_checked(["bash", SPARK_CLUSTER, "start"], env, "infra/spark_cluster.sh start")
        yield env
    finally:
        from jobs.engine import stop_connect_sessions

        stop_connect_sessions()  # else exit waits on clean-up calls to the stopped server
        subprocess.run(["bash", SPARK_CLUSTER, "stop"], env=env, cwd=ROOT,
                       capture_output=True, timeout=120)
