"""Label rule at its boundaries, new-entity flags, and argument checks."""

from __future__ import annotations

from datetime import datetime

import pytest

from features.catalog import ANCHORS, LABELS, RAW_WATCH_SESSIONS, USERS
from features.rules import LabelRule
from jobs import labels
from jobs.schemas import spark_schema

DAY = "2026-05-02"


@pytest.mark.engine
def test_thresholds_at_the_boundaries(spark):
    t = datetime(2026, 5, 2, 12)
    # (user, anchor, seconds): pair totals 2 -> 0, 3 -> dropped, 29 -> dropped, 30 -> 1;
    # user 5 watches anchor 10 twice (1.5 + 1.5 = 3 s in total: dropped, not a bounce).
    watches = [(1, 10, 2.0), (2, 10, 3.0), (3, 10, 29.0), (4, 10, 30.0), (5, 10, 1.5),
               (5, 10, 1.5), (6, 11, 0.0)]
    sessions = spark.createDataFrame(
        [(i, u, a, t, s, 0.0, DAY) for i, (u, a, s) in enumerate(watches)],
        spark_schema(RAW_WATCH_SESSIONS))
    users = spark.createDataFrame(
        [(u, "2026-01-01", "F", "18-24", "c0", "ios", "2026-05-01") for u in range(1, 6)]
        + [(6, DAY, "M", "18-24", "c0", "ios", DAY)], spark_schema(USERS))
    anchors = spark.createDataFrame(
        [(10, "2026-01-01", "music", "F", "c0", "2026-04-01"),
         (11, DAY, "chat", "M", "c1", DAY)], spark_schema(ANCHORS))
    out = labels.build_labels(sessions, users, anchors, DAY, LabelRule())
    got = sorted((r.user_id, r.anchor_id, r.label, r.watch_seconds, r.is_new_user,
                  r.is_new_anchor) for r in out.collect())
    assert got == [(1, 10, 0, 2.0, False, False), (4, 10, 1, 30.0, False, False),
                   (6, 11, 0, 0.0, True, True)]
    wider = labels.build_labels(sessions, users, anchors, DAY, LabelRule(29.0, 3.0))
    assert sorted((r.user_id, r.label) for r in wider.collect()) == [
        (1, 0), (2, 0), (3, 1), (4, 1), (5, 0), (6, 0)]


@pytest.mark.unit
@pytest.mark.parametrize("positive, negative", [(30, 30), (10, 20), (30, -1)])
def test_inconsistent_thresholds_are_refused(positive, negative):
    with pytest.raises(ValueError):
        LabelRule(positive, negative)
    with pytest.raises(SystemExit):
        labels.main(["--date", DAY, "--positive-seconds", str(positive),
                     "--negative-seconds", str(negative)])


@pytest.mark.engine
def test_missing_day_is_a_clear_error(lake, capsys):
    lake.create(RAW_WATCH_SESSIONS)
    with pytest.raises(FileNotFoundError, match="missing raw_watch_sessions for 2026-05-02: "
                                                "run jobs.ingest --date 2026-05-02 first"):
        labels.run(lake, DAY)
    assert labels.main(["--date", DAY, "--lake", str(lake.root), "--engine", "sail"]) == 2
    assert capsys.readouterr().err.strip() == (
        "labels: missing raw_watch_sessions for 2026-05-02: run jobs.ingest --date "
        "2026-05-02 first")


@pytest.mark.engine
def test_the_job_prints_the_rows_it_wrote(lake, capsys):
    spark = lake.spark
    t = datetime(2026, 5, 2, 12)
    sessions = [(1, 1, 10, t, 45.0, 0.0, DAY), (2, 2, 10, t, 1.0, 0.0, DAY),
                (3, 3, 10, t, 10.0, 0.0, DAY)]  # a positive, a negative, one dropped
    lake.write_partition(spark.createDataFrame(sessions, spark_schema(RAW_WATCH_SESSIONS)),
                         RAW_WATCH_SESSIONS, DAY)
    for spec in (USERS, ANCHORS):
        lake.create(spec)
    lake.finish_day("ingest", DAY, (), {}, {})  # the day's record, as jobs.ingest leaves it
    assert labels.main(["--date", DAY, "--lake", str(lake.root), "--engine", "sail"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"labels {DAY}: labels 2 rows"
    assert lake.rows(LABELS, DAY) == 2


@pytest.mark.unit
@pytest.mark.parametrize("flag", ["--positive-seconds", "--negative-seconds"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "86401", "thirty"])
def test_thresholds_must_be_finite_and_bounded(flag, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        labels.main(["--date", DAY, flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}:" in capsys.readouterr().err
    with pytest.raises(ValueError, match="finite number of seconds"):
        LabelRule(float(value) if value != "thirty" else value, 2.0) \
            if flag == "--positive-seconds" else LabelRule(30.0, float(value)
                                                           if value != "thirty" else value)


@pytest.mark.engine
def test_watch_totals_are_compared_in_fixed_point(spark):
    """10.1 + 10.2 + 9.7 is 29.999999999999996 in floats but 30 s as written: positive;
    0.7 + 0.7 + 0.6 is 2 s: a negative (bounce)."""
    t = datetime(2026, 5, 2, 12)
    watches = [(1, 10, 10.1), (1, 10, 10.2), (1, 10, 9.7), (2, 10, 0.7), (2, 10, 0.7),
               (2, 10, 0.6)]
    sessions = spark.createDataFrame(
        [(i, u, a, t, s, 0.0, DAY) for i, (u, a, s) in enumerate(watches)],
        spark_schema(RAW_WATCH_SESSIONS))
    assert sum(s for _, _, s in watches[:3]) < 30  # the float sum misses the threshold
    empty_users = spark.createDataFrame([], spark_schema(USERS))
    empty_anchors = spark.createDataFrame([], spark_schema(ANCHORS))
    out = labels.build_labels(sessions, empty_users, empty_anchors, DAY, LabelRule())
    assert sorted((r.user_id, r.label) for r in out.collect()) == [(1, 1), (2, 0)]
