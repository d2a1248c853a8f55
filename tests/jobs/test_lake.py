"""The partition writer: exact partitions, refused strays, schema contract, path safety;
the one input-presence check and its errors."""

from __future__ import annotations

import pytest

from features.catalog import LABELS, USER_PROFILES, TableSpec
from jobs.lake import Lake, day_ranges, is_conflict, lake_root, resolve_under, with_commit_retries
from jobs.schemas import spark_schema

SPEC = TableSpec("t", "test rows", (("x", "bigint"), ("dt", "string")))


def _write(lake: Lake, rows: list[tuple], day: str) -> None:
    lake.write_partition(lake.spark.createDataFrame(rows, spark_schema(SPEC)), SPEC, day)


def _rows(lake: Lake) -> list[tuple]:
    return sorted(tuple(r) for r in lake.read(SPEC).collect())


@pytest.mark.engine
def test_rewrite_replaces_the_day_and_leaves_other_days(lake):
    _write(lake, [(1, "2026-01-01"), (2, "2026-01-01")], "2026-01-01")
    _write(lake, [(3, "2026-01-02")], "2026-01-02")
    _write(lake, [(4, "2026-01-01")], "2026-01-01")
    _write(lake, [(4, "2026-01-01")], "2026-01-01")
    assert _rows(lake) == [(3, "2026-01-02"), (4, "2026-01-01")]
    assert lake.days(SPEC) == {"2026-01-01", "2026-01-02"}
    assert lake.read_days(SPEC, "2026-01-02", "2026-01-05").count() == 1


@pytest.mark.engine
def test_rows_outside_the_day_are_refused_and_nothing_is_written(lake):
    spark = lake.spark
    _write(lake, [(1, "2026-01-01")], "2026-01-01")
    stray = spark.createDataFrame([(2, "2026-01-01"), (3, "2026-01-02"), (5, None)],
                                  spark_schema(SPEC))
    with pytest.raises(Exception, match="refusing row outside partition dt=2026-01-01"):
        lake.write_partition(stray, SPEC, "2026-01-01")
    assert _rows(lake) == [(1, "2026-01-01")]  # the failed write committed nothing


@pytest.mark.engine
def test_empty_write_empties_the_day(lake):
    _write(lake, [(1, "2026-01-01")], "2026-01-01")
    _write(lake, [], "2026-01-01")
    assert _rows(lake) == []
    assert lake.missing_days(SPEC, ["2026-01-01"]) == ["2026-01-01"]


@pytest.mark.engine
def test_output_must_match_the_declared_columns(lake):
    wrong = lake.spark.createDataFrame([(1, "2026-01-01")], "y long, dt string")
    with pytest.raises(ValueError, match=r"missing \['x'\], unexpected \['y'\]"):
        lake.write_partition(wrong, SPEC, "2026-01-01")


@pytest.mark.unit
def test_paths_cannot_escape_the_lake(tmp_path):
    root = tmp_path.resolve()
    assert resolve_under(root, "a/b") == root / "a" / "b"
    for bad in ("../x", "a/../../x", "/etc/passwd", ""):
        with pytest.raises(ValueError):
            resolve_under(root, bad)


@pytest.mark.unit
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


@pytest.mark.engine
def test_parallel_day_writes_all_land(lake):
    """Concurrent writers of disjoint days: every day ends up exactly right."""
    from concurrent.futures import ThreadPoolExecutor

    spark = lake.spark
    lake.create(SPEC)
    days = [f"2026-02-{d:02d}" for d in range(1, 9)]

    def write(i_day):
        i, day = i_day
        df = spark.createDataFrame([(i, day), (i + 100, day)], spark_schema(SPEC))
        lake.write_partition(df, SPEC, day)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, enumerate(days)))
    assert _rows(lake) == sorted([(i, d) for i, d in enumerate(days)]
                                 + [(i + 100, d) for i, d in enumerate(days)])


@pytest.mark.engine
def test_rows_counts_a_partition_from_the_log(lake):
    _write(lake, [(1, "2026-01-01"), (2, "2026-01-01")], "2026-01-01")
    _write(lake, [(3, "2026-01-02")], "2026-01-02")
    assert (lake.rows(SPEC, "2026-01-01"), lake.rows(SPEC, "2026-01-02")) == (2, 1)
    assert lake.rows(SPEC) == 3 and lake.rows(SPEC, "2026-01-03") == 0
    assert lake.rows(LABELS) == 0  # no table yet: nothing written


@pytest.mark.unit
def test_day_ranges_join_consecutive_days():
    days = ["2026-01-03", "2026-01-01", "2026-01-02", "2026-01-07", "2026-02-28", "2026-03-01"]
    assert day_ranges(days) == "2026-01-01..2026-01-03, 2026-01-07, 2026-02-28..2026-03-01"
    assert day_ranges([]) == ""


@pytest.mark.engine
def test_require_days_names_each_table_its_days_and_what_to_run(lake):
    spark = lake.spark
    lake.write_partition(spark.createDataFrame([], spark_schema(LABELS)),
                         LABELS, "2026-01-01")  # an empty day is not a present day
    _write(lake, [(1, "2026-01-02")], "2026-01-02")
    lake.require_days([SPEC], ["2026-01-02"], "never raised")
    with pytest.raises(FileNotFoundError) as error:
        lake.require_days([SPEC, LABELS, USER_PROFILES],
                          ["2026-01-01", "2026-01-02", "2026-01-03"], "run jobs.x first")
    # tables missing the same days are named together; the message is one line
    assert str(error.value) == (
        "missing t for 2026-01-01, 2026-01-03; labels, user_profiles for "
        "2026-01-01..2026-01-03: run jobs.x first")


@pytest.mark.unit
def test_a_mistyped_lake_root_is_reported_as_such(tmp_path, monkeypatch):
    """No engine is needed: the check reads folders only."""
    monkeypatch.delenv("PIPELINE_CONFIG", raising=False)
    missing = Lake(tmp_path / "lkae", spark=None, fmt="delta")
    with pytest.raises(FileNotFoundError, match=r"^lake root .*lkae does not exist: check "
                                                r"--lake or \$LAKE_ROOT$"):
        missing.require_days([LABELS], ["2026-01-01"], "run jobs.labels")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a table")
    empty = Lake(tmp_path / "empty", spark=None, fmt="delta")
    with pytest.raises(FileNotFoundError, match="empty has no tables: check --lake"):
        empty.require_days([LABELS], ["2026-01-01"], "run jobs.labels")
    with pytest.raises(FileNotFoundError, match="empty has no tables"):
        empty.read(LABELS)


@pytest.mark.unit
def test_lake_root_comes_from_the_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("PIPELINE_CONFIG", raising=False)
    monkeypatch.setenv("LAKE_ROOT", str(tmp_path / "env"))
    assert lake_root() == tmp_path / "env"
    assert lake_root(str(tmp_path / "flag")) == tmp_path / "flag"  # the flag wins
    monkeypatch.setenv("LAKE_ROOT", "/")
    with pytest.raises(ValueError, match=r"lake_root \(from \$LAKE_ROOT\)"):
        lake_root()


@pytest.mark.engine
def test_a_file_uri_root_is_its_folder_and_confined_the_same(tmp_path, spark):
    lake = Lake(f"file://{tmp_path}/lake", spark)
    assert lake.root == (tmp_path / "lake").resolve()
    _write(lake, [(1, "2026-01-01")], "2026-01-01")
    assert (tmp_path / "lake" / "t" / "_delta_log").is_dir()
    assert _rows(Lake(tmp_path / "lake", spark)) == [(1, "2026-01-01")]
    with pytest.raises(ValueError, match="escapes the lake root"):
        lake.path("../elsewhere")
    assert lake_root(f"file://localhost{tmp_path}/lake") == lake.root
    with pytest.raises(ValueError, match="object-store roots"):
        Lake("s3a://bucket/lake", spark)
