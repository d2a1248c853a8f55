"""The engine behind every job: embedded Sail (default), a Spark Connect URL, or JVM Spark.

All three give the same PySpark DataFrame API, so job code does not know which one runs it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Iterator

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

_lock = threading.Lock()
_sail_server = None  # one in-process Sail server per Python process, stopped at exit


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


def _start_sail() -> str:
    global _sail_server
    with _lock:
        if _sail_server is None:
            from pysail.spark import SparkConnectServer

            server = SparkConnectServer(ip="127.0.0.1", port=0)
            server.start(background=True)
            atexit.register(server.stop)
            _sail_server = server
        _, port = _sail_server.listening_address
    return f"sc://127.0.0.1:{port}"


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


def jvm_child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process that must run a job on JVM Spark (Parquet), even when
    this process already holds a Spark Connect session."""
    env = {**(os.environ if base is None else base), "PIPELINE_ENGINE": "jvm",
           "LAKE_FORMAT": "parquet"}
    for key in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED"):
        env.pop(key, None)
    return env


def spark_session(engine: str | None = None, remote: str | None = None) -> SparkSession:
    """Return a PySpark session on the chosen engine, with UTC as its session time zone.

    Under spark-submit the JVM engine is the default and spark-submit's master is kept.
    """
    engine, remote = resolve_engine(engine, remote)
    if engine == "jvm":
        builder = SparkSession.builder
        if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit
            builder = builder.master(os.environ.get("SPARK_MASTER", "local[2]"))
        builder = (
            builder.config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "4")
            .config("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.ui.showConsoleProgress", "false")
        )
        with _classic_builder_env():
            spark = builder.getOrCreate()
        spark.sparkContext.setLogLevel(_LOG4J[_engine_level])
    else:
        url = remote if engine == "connect" else _start_sail()
        builder = SparkSession.builder.remote(url).config("spark.sql.session.timeZone", "UTC")
        spark = builder.getOrCreate()
    log.info("engine %s ready (Spark API %s)", engine, spark.version)
    return spark


def is_connect(spark: SparkSession) -> bool:
    """True for a Spark Connect session (Sail or a remote server), False for classic JVM."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def table_format(spark: SparkSession) -> str:
    """Delta everywhere it can be written; Parquet on a classic session without Delta jars."""
    explicit = os.environ.get("LAKE_FORMAT")
    if explicit:
        return explicit
    if is_connect(spark):
        return "delta"
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    return "delta" if "DeltaSparkSessionExtension" in extensions else "parquet"
