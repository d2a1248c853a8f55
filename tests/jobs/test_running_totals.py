"""Running totals: exact against a direct sum, a chain that heals itself, bounded by retention."""

from __future__ import annotations

import pandas as pd
import pytest

from features import day_status
from features.catalog import DAILY_USER_STATS, USER_TOTALS
from features.days import add_days, days_between
from features.rules import TOTALS_RETENTION_DAYS
from jobs import daily_stats, profiles, running_totals
from jobs.schemas import spark_schema
from tests.jobs import tiny_lake
from tests.jobs.tiny_lake import DAYS

JOB = running_totals.JOB


def _direct(lake, start: str, end: str) -> pd.DataFrame:
    """Per user, sums of daily_user_stats over start .. end, in fixed point, in pandas."""
    daily = lake.read_days(DAILY_USER_STATS, start, end).toPandas()
    daily["watch_millis"] = (daily.watch_seconds * 1000).round().astype("int64")
    daily["gift_micros"] = (daily.gift_value * 1e6).round().astype("int64")
    return daily.groupby("user_id").agg(
        sessions=("sessions", "sum"), watch_millis=("watch_millis", "sum"),
        bounces=("bounces", "sum"), gift_micros=("gift_micros", "sum"),
        active_days=("dt", "nunique"), last_dt=("dt", "max")).sort_index()


def _totals(lake, day: str) -> pd.DataFrame:
    got = lake.read_days(USER_TOTALS, day, day).toPandas().set_index("user_id").sort_index()
    return got[["sessions", "watch_millis", "bounces", "gift_micros", "active_days", "last_dt"]]


def _tokens(lake, days) -> dict[str, str | None]:
    ledger = lake.ledger()
    return {d: ledger.token(JOB, d) for d in days}


@pytest.mark.engine
def test_totals_equal_direct_sums_and_a_rerun_day_rebuilds_the_chain_after_it(lake):
    tiny_lake.build(lake, seed=7)
    for d in DAYS[:6]:
        daily_stats.run(lake, d)
    assert running_totals.ensure(lake, DAYS[5]) is not None
    pd.testing.assert_frame_equal(_totals(lake, DAYS[5]), _direct(lake, DAYS[0], DAYS[5]),
                                  check_dtype=False)
    before = _tokens(lake, DAYS[:6])
    assert running_totals.ensure(lake, DAYS[5]) == before[DAYS[5]]  # valid: nothing rebuilt

    rows = tiny_lake.sessions_for(DAYS[2], seed=99)
    tiny_lake.write_sessions(lake, DAYS[2], rows)
    daily_stats.run(lake, DAYS[2])
    problem, detail = lake.ledger().state(JOB, DAYS[5])
    assert problem == day_status.STALE and DAYS[4] in detail  # stale through the chain
    running_totals.ensure(lake, DAYS[5])
    after = _tokens(lake, DAYS[:6])
    assert [after[d] == before[d] for d in DAYS[:6]] == [True, True, False, False, False, False]
    pd.testing.assert_frame_equal(_totals(lake, DAYS[5]), _direct(lake, DAYS[0], DAYS[5]),
                                  check_dtype=False)


@pytest.mark.engine
def test_earlier_history_added_later_restarts_the_chain_and_a_gap_is_named(lake):
    tiny_lake.build(lake, seed=8)
    for d in DAYS[2:5]:
        daily_stats.run(lake, d)
    running_totals.ensure(lake, DAYS[4])
    assert _tokens(lake, DAYS[:2]) == {DAYS[0]: None, DAYS[1]: None}
    for d in DAYS[:2]:  # a backfill of older days
        daily_stats.run(lake, d)
    running_totals.ensure(lake, DAYS[4])
    pd.testing.assert_frame_equal(_totals(lake, DAYS[4]), _direct(lake, DAYS[0], DAYS[4]),
                                  check_dtype=False)
    with pytest.raises(FileNotFoundError, match=rf"missing daily_user_stats.* for {DAYS[5]}: "
                                                rf"run jobs.daily_stats --date {DAYS[5]}"):
        running_totals.ensure(lake, DAYS[6])  # DAYS[5] was never built


@pytest.mark.engine
def test_an_entity_away_longer_than_the_retention_restarts_from_zero(spark):
    day = "2027-06-01"
    long_ago = add_days(day, -TOTALS_RETENTION_DAYS - 1)
    recently = add_days(day, -TOTALS_RETENTION_DAYS)
    previous = spark.createDataFrame(
        [(1, "2026-01-01", long_ago, 5, 5000, 0, 0, 0, 0, 3, {"music": 5000}, add_days(day, -1)),
         (2, "2026-01-01", recently, 4, 4000, 0, 0, 0, 0, 2, {"chat": 4000}, add_days(day, -1)),
         (3, "2026-01-01", long_ago, 1, 1000, 0, 0, 0, 0, 1, {"chat": 1000}, add_days(day, -1))],
        spark_schema(USER_TOTALS))
    daily = spark.createDataFrame(  # user 3 comes back today
        [(3, 2, 10.5, 0, 0, 0.0, 0, {"games": 10.5}, day)], spark_schema(DAILY_USER_STATS))
    rows = {r.user_id: r for r in running_totals.build_user_totals(previous, daily, day)
            .collect()}
    assert sorted(rows) == [2, 3]  # 1 left: inactive for longer than the retention
    assert (rows[2].since, rows[2].sessions, dict(rows[2].category_millis)) == (
        "2026-01-01", 4, {"chat": 4000})
    assert (rows[3].since, rows[3].last_dt, rows[3].sessions, rows[3].watch_millis,
            dict(rows[3].category_millis)) == (day, day, 2, 10500, {"games": 10500})

    # a window difference counts a lower row of the same running total only
    upper = running_totals.build_user_totals(previous, daily, day)
    sums = {r.user_id: r for r in profiles.window_sums(
        upper, previous, "user_id", running_totals.SUMS, day).collect()}
    assert sums[3].sessions == 2 and sums[3].watch_millis == 10500  # restarted: nothing taken
    assert 2 not in sums  # not active in the window


@pytest.mark.unit
def test_the_ledger_walks_a_chain_longer_than_the_recursion_limit(tmp_path):
    days = days_between("2020-01-01", "2024-12-31")  # 1,827 days of totals
    token = None
    for d in days:
        inputs = {} if token is None else {day_status.key(JOB, add_days(d, -1)): token}
        token = day_status.finish(tmp_path, JOB, d, {}, {}, inputs).token
    assert day_status.Ledger(tmp_path).token(JOB, days[-1]) == token
    day_status.begin(tmp_path, JOB, days[100])  # a day in the middle is being re-run
    problem, detail = day_status.Ledger(tmp_path).state(JOB, days[-1])
    assert problem == day_status.STALE and days[-2] in detail
