"""Engine choice: embedded Sail by default, Connect by URL, clear errors otherwise; the
engines' own logging kept quiet."""

from __future__ import annotations

import logging
import os

import pytest

from jobs.cli import setup_logging
from jobs.engine import PYTHON_ENGINE_LOGGERS, is_connect, resolve_engine, table_format


@pytest.mark.unit
def test_default_is_embedded_sail(monkeypatch):
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.delenv("PIPELINE_ENGINE", raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert resolve_engine() == ("sail", None)


@pytest.mark.unit
def test_remote_url_selects_spark_connect(monkeypatch):
    monkeypatch.setenv("SPARK_REMOTE", "sc://cluster:15002")
    assert resolve_engine() == ("connect", "sc://cluster:15002")
    assert resolve_engine(remote="sc://other:15002") == ("connect", "sc://other:15002")


@pytest.mark.unit
def test_bad_choices_are_clear_errors(monkeypatch):
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    with pytest.raises(ValueError, match="unknown engine"):
        resolve_engine("flink")
    with pytest.raises(ValueError, match="needs a Spark Connect URL"):
        resolve_engine("connect")
    with pytest.raises(ValueError, match="must start with sc://"):
        resolve_engine(remote="http://host:15002")


@pytest.mark.engine
def test_sail_session_writes_delta_in_utc(spark):
    assert is_connect(spark)
    assert table_format(spark) == "delta"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.sql("SELECT 1 + 1 AS two").collect()[0]["two"] == 2


@pytest.mark.unit
def test_engine_logs_are_quiet_unless_debugging(monkeypatch):
    monkeypatch.delenv("RUST_LOG", raising=False)
    for name in PYTHON_ENGINE_LOGGERS:
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    setup_logging("INFO")
    assert os.environ["RUST_LOG"].startswith("warn")  # Sail: warnings only
    assert all(logging.getLogger(n).level == logging.WARNING for n in PYTHON_ENGINE_LOGGERS)
    monkeypatch.delenv("RUST_LOG")
    setup_logging("debug")
    assert os.environ["RUST_LOG"] == "info"  # DEBUG brings the engines' INFO lines back
    assert logging.getLogger("py4j").level == logging.INFO
    monkeypatch.setenv("RUST_LOG", "sail=trace")
    setup_logging("ERROR")
    assert os.environ["RUST_LOG"] == "sail=trace"  # a user's filter wins


@pytest.mark.engine
def test_each_connect_url_gets_its_own_session(spark):
    """A process holding the embedded Sail session that asks for another Connect server (a
    DAG run in one process, whose connection names a cluster) gets that server's session,
    not the active one (PySpark's getOrCreate would return Sail's)."""
    from pysail.spark import SparkConnectServer

    from jobs.engine import spark_session, stop_connect_sessions

    server = SparkConnectServer(ip="127.0.0.1", port=0)
    server.start(background=True)
    try:
        _, port = server.listening_address
        other = spark_session(remote=f"sc://127.0.0.1:{port}")
        assert other is not spark
        assert other.client._builder.endpoint == f"127.0.0.1:{port}"
        assert spark_session(remote=f"sc://127.0.0.1:{port}") is other
        assert spark_session("sail") is spark
        assert other.sql("SELECT 2 AS two").collect()[0]["two"] == 2
    finally:
        # closed before its server goes: PySpark's exit hook would retry calls to it
        stop_connect_sessions()
        server.stop()
    assert other.client.is_closed and not spark.client.is_closed  # Sail's stays open
    assert spark.sql("SELECT 1 AS one").collect()[0]["one"] == 1
