"""The engine behind every job: embedded Sail (default), a Spark Connect URL, or JVM Spark.

All three give the same PySpark DataFrame API, so job code does not know which one runs it,
and all three write and read Delta tables: Sail natively, JVM Spark through the delta-spark
jars that infra/bootstrap.sh fetches into `delta_jars_dir()` (a Connect server must be
started with them: infra/spark_cluster.sh). Parquet only when a user asks
(LAKE_FORMAT=parquet).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

ENGINES = ("sail", "connect", "jvm")

# What the engines print besides our own logging, measured on one job:
# - Sail logs from Rust (env_logger, filter $RUST_LOG, default info) straight to stderr,
#   past Python logging, so its INFO lines showed even at --log-level ERROR; at exit it adds
#   a WARN "aborting N task(s) for SessionManagerActor" (normal shutdown, not a problem).
# - py4j (JVM engine) logs every command at DEBUG: 2,715 records, 9k lines, for one labels
#   job at --log-level DEBUG; one INFO line at exit.
# - JVM Spark logs through log4j (WARN by default) and draws a stage progress bar.
# Below DEBUG the engines show warnings only; at DEBUG their INFO lines come back. $RUST_LOG,
# when set, wins for Sail (e.g. RUST_LOG=debug for the engine's own debugging).
PYTHON_ENGINE_LOGGERS = ("py4j", "pyspark")
_RUST_LOG = {"INFO": "info", "WARNING": "warn,sail_common::actor=error"}
_LOG4J = {"INFO": "INFO", "WARNING": "WARN"}
_engine_level = "WARNING"

# Delta Lake on JVM Spark: the SQL extension and catalog, on every session (local, spark-submit
# and a Spark Connect server alike), plus the Parquet timestamp type the other engines and
# pyarrow read without conversion (Spark's default, INT96, is deprecated in Parquet).
DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CONF = {
    "spark.sql.extensions": DELTA_EXTENSION,
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # Delta replays a table's log in 50 partitions by default: 50 tasks per snapshot, several
    # snapshots per write. The lake's logs are small (one commit per day written), and one
    # partition made a tiny partition write 3-5x faster on local[2] (measured).
    "spark.databricks.delta.snapshotPartitions": "1",
}
# Settings of every JVM session (and of a cluster's Connect server and spark-submit runs).
JVM_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
}
DELTA_JARS_ENV = "DELTA_JARS_DIR"

_lock = threading.Lock()
_engines: dict[int, str] = {}  # id(session) -> the engine spark_session opened it on
_sail_server = None  # one in-process Sail server per Python process, stopped at exit
_connect_sessions: dict[str, SparkSession] = {}  # Connect URL -> its session in this process


def quiet_engine_logs(level: str) -> str:
    """Set the engines' log level for a job logging at `level`: WARNING, or INFO when the
    job logs at DEBUG. Call before the first session starts (Sail reads $RUST_LOG then).
    Returns the engines' level."""
    global _engine_level
    _engine_level = "INFO" if level.upper() == "DEBUG" else "WARNING"
    for name in PYTHON_ENGINE_LOGGERS:
        logging.getLogger(name).setLevel(_engine_level)
    os.environ.setdefault("RUST_LOG", _RUST_LOG[_engine_level])
    return _engine_level


def resolve_engine(engine: str | None = None, remote: str | None = None) -> tuple[str, str | None]:
    """Pick the engine: explicit choice, else `--remote`/`SPARK_REMOTE`, else embedded Sail."""
    remote = remote or os.environ.get("SPARK_REMOTE") or None
    under_spark_submit = "PYSPARK_GATEWAY_PORT" in os.environ and not remote
    default = "connect" if remote else "jvm" if under_spark_submit else "sail"
    engine = engine or os.environ.get("PIPELINE_ENGINE") or default
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "connect" and not remote:
        raise ValueError("engine 'connect' needs a Spark Connect URL (--remote or SPARK_REMOTE)")
    if engine == "connect" and not remote.startswith("sc://"):
        raise ValueError(f"Spark Connect URL must start with sc://, got {remote!r}")
    return engine, remote if engine == "connect" else None


def _sail_url() -> str | None:
    """The embedded Sail server's Connect URL; None before it starts."""
    return f"sc://127.0.0.1:{_sail_server.listening_address[1]}" if _sail_server else None


def _start_sail() -> str:
    global _sail_server
    with _lock:
        if _sail_server is None:
            from pysail.spark import SparkConnectServer

            server = SparkConnectServer(ip="127.0.0.1", port=0)
            server.start(background=True)
            atexit.register(server.stop)
            _sail_server = server
        return _sail_url()


@contextlib.contextmanager
def _classic_builder_env() -> Iterator[None]:
    """Hide the variables a Connect session leaves in os.environ, which would make PySpark's
    builder create another Connect session instead of a classic one, then restore them."""
    saved = {k: os.environ.pop(k) for k in ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE")
             if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _connect_session(url: str) -> SparkSession:
    """One session per Connect URL. PySpark's getOrCreate returns the active Connect session
    whatever its URL, so a process holding Sail's that asks for a cluster's (a DAG run by
    dag.test, a test) would silently get Sail's: sessions are created per URL instead."""
    with _lock:
        session = _connect_sessions.get(url)
        if session is None or session.is_stopped:
            session = (SparkSession.builder.remote(url)
                       .config("spark.sql.session.timeZone", "UTC").create())
            _connect_sessions[url] = session
    return session


def stop_connect_sessions() -> None:
    """Stop this process's sessions on Connect servers (not Sail's). Call it before such a
    server goes away: a client still open at exit sends clean-up calls from PySpark's atexit
    hook and retries them for minutes against a server that is gone."""
    with _lock:
        sessions = [_connect_sessions.pop(url) for url in list(_connect_sessions)
                    if url != _sail_url()]
    for session in sessions:
        if not session.is_stopped:
            session.stop()


def delta_jars_dir() -> Path:
    """Where the bootstrap put the Delta jars: $DELTA_JARS_DIR, else <venv>/delta-jars."""
    return Path(os.environ.get(DELTA_JARS_ENV) or Path(sys.prefix) / "delta-jars")


def delta_jars() -> list[str]:
    """The Delta jars to put on a JVM Spark classpath; a clear error when there are none."""
    folder = delta_jars_dir()
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not any(Path(j).name.startswith("delta-spark_") for j in jars):
        raise FileNotFoundError(f"no Delta jars in {folder}: run infra/bootstrap.sh (or set "
                                f"${DELTA_JARS_ENV}; LAKE_FORMAT=parquet runs without Delta)")
    return jars


def jvm_child_env(base: dict[str, str] | None = None, fmt: str | None = None
                  ) -> dict[str, str]:
    """Environment for a child process that must run a job on JVM Spark (Delta, or `fmt`),
    even when this process already holds a Spark Connect session."""
    env = {**(os.environ if base is None else base), "PIPELINE_ENGINE": "jvm"}
    env.pop("LAKE_FORMAT", None)
    if fmt:
        env["LAKE_FORMAT"] = fmt
    for key in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED"):
        env.pop(key, None)
    return env


def _wants_delta() -> bool:
    return os.environ.get("LAKE_FORMAT", "delta") == "delta"


def _require_delta_classes(spark: SparkSession) -> None:
    """Fail clearly when a JVM session meant for Delta cannot load it (spark-submit without
    the jars), instead of a "data source not found" at the first write."""
    loader = spark.sparkContext._jvm.java.lang.Thread.currentThread().getContextClassLoader()
    try:
        loader.loadClass(DELTA_EXTENSION)
    except Exception:  # py4j's error type
        raise FileNotFoundError(
            f"JVM Spark cannot load Delta ({DELTA_EXTENSION}): give spark-submit "
            f"--jars with the jars of {delta_jars_dir()} (infra/spark_cluster.sh submit does), "
            f"or set LAKE_FORMAT=parquet") from None


def spark_session(engine: str | None = None, remote: str | None = None) -> SparkSession:
    """Return a PySpark session on the chosen engine, with UTC as its session time zone.

    Under spark-submit the JVM engine is the default and spark-submit's master is kept; its
    --jars must then hold the Delta jars. JVM Spark writes Delta unless LAKE_FORMAT=parquet.
    """
    engine, remote = resolve_engine(engine, remote)
    if engine == "jvm":
        under_submit = "PYSPARK_GATEWAY_PORT" in os.environ
        conf = {"spark.ui.enabled": "false", **JVM_CONF}
        if _wants_delta():
            conf.update(DELTA_CONF)
            if not under_submit:  # pyspark starts the JVM itself: the jars go with it
                conf["spark.jars"] = ",".join(delta_jars())
        builder = SparkSession.builder
        if not under_submit:
            builder = builder.master(os.environ.get("SPARK_MASTER", "local[2]"))
        for key, value in conf.items():
            builder = builder.config(key, value)
        with _classic_builder_env():
            spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel(_LOG4J[_engine_level])
        if _wants_delta():
            _require_delta_classes(spark)
    else:
        spark = _connect_session(remote if engine == "connect" else _start_sail())
    _engines[id(spark)] = engine
    log.info("engine %s ready (Spark API %s)", engine, spark.version)
    return spark


def casts_by_name(spark: SparkSession) -> bool:
    """True when casts must name their type in SQL (`cast("string")`) rather than send a
    DataType: a Spark Connect server (JVM Spark 4.2) turns a StringType sent by a client
    into an explicitly collated string, which Delta then records as `string collate
    UTF8_BINARY`, a type that delta-rs (Sail, the `deltalake` reader) cannot read
    (measured). Sail and classic sessions keep the DataType casts."""
    return _engines.get(id(spark)) == "connect"


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect session (Sail or a remote server), False for classic JVM."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def table_format(spark: SparkSession) -> str:
    """Delta on every engine; Parquet when $LAKE_FORMAT says so, or on a classic session that
    someone else built without the Delta extension."""
    explicit = os.environ.get("LAKE_FORMAT")
    if explicit:
        if explicit not in ("delta", "parquet"):
            raise ValueError(f"LAKE_FORMAT must be delta or parquet, got {explicit!r}")
        return explicit
    if is_connect(spark):
        return "delta"
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return "delta" if DELTA_EXTENSION in extensions else "parquet"
