"""The partition writer: exact partitions, refused strays, schema contract, path safety."""

from __future__ import annotations

import pytest
from pyspark.sql import types as T

from features.tables import TableSpec
from jobs.lake import Lake, is_conflict, resolve_under, with_commit_retries

SPEC = TableSpec("t", "test rows", T.StructType([
    T.StructField("x", T.LongType()), T.StructField("dt", T.StringType())]))


def _write(lake: Lake, rows: list[tuple], day: str) -> None:
    lake.write_partition(lake.spark.createDataFrame(rows, SPEC.schema), SPEC, day)


def _rows(lake: Lake) -> list[tuple]:
    return sorted(tuple(r) for r in lake.read(SPEC).collect())


def test_rewrite_replaces_the_day_and_leaves_other_days(lake):
    _write(lake, [(1, "2026-01-01"), (2, "2026-01-01")], "2026-01-01")
    _write(lake, [(3, "2026-01-02")], "2026-01-02")
    _write(lake, [(4, "2026-01-01")], "2026-01-01")
    _write(lake, [(4, "2026-01-01")], "2026-01-01")
    assert _rows(lake) == [(3, "2026-01-02"), (4, "2026-01-01")]
    assert lake.days(SPEC) == {"2026-01-01", "2026-01-02"}
    assert lake.read_days(SPEC, "2026-01-02", "2026-01-05").count() == 1


def test_rows_outside_the_day_are_refused_and_nothing_is_written(lake):
    spark = lake.spark
    _write(lake, [(1, "2026-01-01")], "2026-01-01")
    stray = spark.createDataFrame([(2, "2026-01-01"), (3, "2026-01-02"), (5, None)], SPEC.schema)
    with pytest.raises(Exception, match="refusing row outside partition dt=2026-01-01"):
        lake.write_partition(stray, SPEC, "2026-01-01")
    assert _rows(lake) == [(1, "2026-01-01")]  # the failed write committed nothing


def test_empty_write_empties_the_day(lake):
    _write(lake, [(1, "2026-01-01")], "2026-01-01")
    _write(lake, [], "2026-01-01")
    assert _rows(lake) == []
    assert lake.missing_days(SPEC, ["2026-01-01"]) == ["2026-01-01"]


def test_output_must_match_the_declared_columns(lake):
    wrong = lake.spark.createDataFrame([(1, "2026-01-01")], "y long, dt string")
    with pytest.raises(ValueError, match=r"missing \['x'\], unexpected \['y'\]"):
        lake.write_partition(wrong, SPEC, "2026-01-01")


def test_paths_cannot_escape_the_lake(tmp_path):
    root = tmp_path.resolve()
    assert resolve_under(root, "a/b") == root / "a" / "b"
    for bad in ("../x", "a/../../x", "/etc/passwd", ""):
        with pytest.raises(ValueError):
            resolve_under(root, bad)


def test_commit_conflicts_are_retried_and_other_errors_are_not():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("Failed to commit transaction: version 4 already exists")

    with_commit_retries(flaky, "t")
    assert len(calls) == 3
    assert not is_conflict(ValueError("column x not found"))
    with pytest.raises(ValueError):
        with_commit_retries(lambda: (_ for _ in ()).throw(ValueError("boom")), "t")


def test_parallel_day_writes_all_land(lake):
    """Concurrent writers of disjoint days: every day ends up exactly right."""
    from concurrent.futures import ThreadPoolExecutor

    spark = lake.spark
    lake.create(SPEC)
    days = [f"2026-02-{d:02d}" for d in range(1, 9)]

    def write(i_day):
        i, day = i_day
        df = spark.createDataFrame([(i, day), (i + 100, day)], SPEC.schema)
        lake.write_partition(df, SPEC, day)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, enumerate(days)))
    assert _rows(lake) == sorted([(i, d) for i, d in enumerate(days)]
                                 + [(i + 100, d) for i, d in enumerate(days)])
