"""Engine choice: embedded Sail by default, Connect by URL, clear errors otherwise."""

from __future__ import annotations

import pytest

from jobs.engine import is_connect, resolve_engine, table_format


def test_default_is_embedded_sail(monkeypatch):
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    monkeypatch.delenv("PIPELINE_ENGINE", raising=False)
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert resolve_engine() == ("sail", None)


def test_remote_url_selects_spark_connect(monkeypatch):
    monkeypatch.setenv("SPARK_REMOTE", "sc://cluster:15002")
    assert resolve_engine() == ("connect", "sc://cluster:15002")
    assert resolve_engine(remote="sc://other:15002") == ("connect", "sc://other:15002")


def test_bad_choices_are_clear_errors(monkeypatch):
    monkeypatch.delenv("SPARK_REMOTE", raising=False)
    with pytest.raises(ValueError, match="unknown engine"):
        resolve_engine("flink")
    with pytest.raises(ValueError, match="needs a Spark Connect URL"):
        resolve_engine("connect")
    with pytest.raises(ValueError, match="must start with sc://"):
        resolve_engine(remote="http://host:15002")


def test_sail_session_writes_delta_in_utc(spark):
    assert is_connect(spark)
    assert table_format(spark) == "delta"
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.sql("SELECT 1 + 1 AS two").collect()[0]["two"] == 2
