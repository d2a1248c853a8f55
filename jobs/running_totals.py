"""Running totals of the daily stats, so a profile's window sums cost the same at any N.

Row of day d: an entity's sums of its daily stats from `since` through d, in fixed point
(watch time in milliseconds, gift value in micro-units), so the sums over days a .. b are
exactly totals(b) - totals(a - 1): two rows, whatever the window's length. Each day is
totals(d - 1) plus the daily stats of d, so the days form a chain: a day re-run invalidates
every later day (the ledger says so), and `ensure` rebuilds the chain from the last valid day.

An entity inactive for more than TOTALS_RETENTION_DAYS leaves the table and starts again
from zero (a new `since`) when it comes back, so the table holds the recently active
entities, not everyone ever seen. No window reaches that far back, so the lower row of a
difference either has the upper row's `since` or predates all of the window's activity
(`window_sums`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from features.catalog import (
    ANCHOR_TOTALS,
    DAILY_ANCHOR_STATS,
    DAILY_USER_STATS,
    USER_TOTALS,
    TableSpec,
)
from features.days import add_days, day_arg
from features.rules import TOTALS_RETENTION_DAYS
from jobs.cli import job_parser, rows_summary, run_job
from jobs.fixed_point import fixed_point
from jobs.lake import Lake
from jobs.maps import map_agg

log = logging.getLogger(__name__)
JOB = "running_totals"
OUTPUTS = (USER_TOTALS, ANCHOR_TOTALS)
SUMS = ("sessions", "watch_millis", "bounces", "long_watches", "gift_micros", "gift_sessions",
        "active_days")
ANCHOR_SUMS = (*SUMS, "live_days")


def _day_sums(daily: DataFrame) -> list[Column]:
    """One day's stats as running-total increments (fixed point)."""
    return [F.col("sessions").cast("bigint").alias("sessions"),
            fixed_point("watch_seconds", 1e3).alias("watch_millis"),
            F.col("bounces").cast("bigint").alias("bounces"),
            F.col("long_watches").cast("bigint").alias("long_watches"),
            fixed_point("gift_value", 1e6).alias("gift_micros"),
            F.col("gift_sessions").cast("bigint").alias("gift_sessions")]


def _retained(previous: DataFrame, day: str) -> DataFrame:
    return previous.where(F.col("last_dt") >= add_days(day, -TOTALS_RETENTION_DAYS))


def _advance(previous: DataFrame, today: DataFrame, key: str, sums: Sequence[str],
             day: str, latest: Sequence[str] = ()) -> DataFrame:
    """previous (rows of totals(d - 1)) plus today's increments (with since = last_dt = d):
    one row per key, `latest` columns the latest day seen. Rows inactive for longer than
    the retention leave first, so an entity back after that starts a new running total."""
    merged = (_retained(previous, day).select(key, "since", "last_dt", *latest, *sums)
              .unionByName(today))
    return merged.groupBy(key).agg(
        F.min("since").alias("since"), F.max("last_dt").alias("last_dt"),
        *[F.max(c).alias(c) for c in latest], *[F.sum(c).alias(c) for c in sums])


def build_user_totals(previous: DataFrame, daily: DataFrame, day: str) -> DataFrame:
    """user_running_totals of `day` from those of the day before (`previous`, any rows of
    it; empty at the start of history) and daily_user_stats of `day` (`daily`)."""
    today = daily.select("user_id", F.lit(day).alias("since"), F.lit(day).alias("last_dt"),
                         *_day_sums(daily), F.lit(1).cast("bigint").alias("active_days"))
    totals = _advance(previous, today, "user_id", SUMS, day)
    categories = (
        _retained(previous, day).select(
            "user_id", F.explode("category_millis").alias("category", "millis"))
        .unionByName(daily.select("user_id", F.explode("category_seconds")
                                  .alias("category", "seconds"))
                     .select("user_id", "category", fixed_point("seconds", 1e3).alias("millis")))
        .groupBy("user_id", "category").agg(F.sum("millis").alias("millis"))
        .groupBy("user_id").agg(map_agg("category", "millis").alias("category_millis")))
    return (totals.join(categories, "user_id", "left")
            .withColumn("category_millis", F.coalesce(
                "category_millis", F.create_map().cast("map<string,bigint>")))
            .withColumn("dt", F.lit(day)))


def build_anchor_totals(previous: DataFrame, daily: DataFrame, day: str) -> DataFrame:
    """anchor_running_totals of `day`, as for users; a live anchor nobody watched has a
    daily row too (is_live), so it counts as present."""
    today = daily.select(
        "anchor_id", F.lit(day).alias("since"), F.lit(day).alias("last_dt"),
        F.when(F.col("is_live"), F.lit(day)).alias("last_live_dt"), *_day_sums(daily),
        (F.col("sessions") > 0).cast("bigint").alias("active_days"),
        F.col("is_live").cast("bigint").alias("live_days"))
    return (_advance(previous, today, "anchor_id", ANCHOR_SUMS, day, ["last_live_dt"])
            .withColumn("dt", F.lit(day)))


def history_start(lake: Lake) -> str | None:
    """The first day of daily stats on record: totals before it are zero."""
    days = lake.ledger().recorded_days("daily_stats")
    return min(days) if days else None


def _previous(lake: Lake, spec: TableSpec, day: str, start: str) -> DataFrame:
    """The totals of the day before `day`; none before the first day of history."""
    if day == start:
        return lake.empty(spec)
    return lake.read_days(spec, add_days(day, -1), add_days(day, -1))


def _chain_start(lake: Lake, day: str) -> str | None:
    record = lake.ledger_record(JOB, day)
    return None if record is None else record.get("chain_start")


def _build_day(lake: Lake, day: str, start: str) -> dict[str, int]:
    """Build the running totals of `day` (history from `start`) from those of the day
    before, which must be complete, and the daily stats of `day`; rows per table."""
    inputs = lake.require_complete("daily_stats", (DAILY_USER_STATS, DAILY_ANCHOR_STATS), [day],
                                   f"run jobs.daily_stats --date {day} first")
    if day > start:
        inputs |= lake.require_complete(JOB, OUTPUTS, [add_days(day, -1)],
                                        f"run jobs.running_totals --date {day}")
    users = build_user_totals(_previous(lake, USER_TOTALS, day, start),
                              lake.read_days(DAILY_USER_STATS, day, day), day)
    anchors = build_anchor_totals(_previous(lake, ANCHOR_TOTALS, day, start),
                                  lake.read_days(DAILY_ANCHOR_STATS, day, day), day)
    lake.begin_day(JOB, day)
    lake.write_partition(users, USER_TOTALS, day)
    lake.write_partition(anchors, ANCHOR_TOTALS, day)
    counts = {spec.name: lake.rows(spec, day) for spec in OUTPUTS}
    lake.finish_day(JOB, day, OUTPUTS, {**counts, "chain_start": start}, inputs)
    return counts


def ensure(lake: Lake, day: str) -> str | None:
    """The token of the running totals of `day`, building first every day of the chain
    that is missing or out of date, from the last valid one (None: `day` precedes the
    history, its totals are zero). A chain started before daily stats of earlier days
    were added is rebuilt from the new start. A gap in the daily stats fails naming it."""
    start = history_start(lake)
    if start is None or day < start:
        return None
    todo, ledger = [], lake.ledger()
    while day >= start and (ledger.state(JOB, day)[0] is not None
                            or _chain_start(lake, day) != start):
        todo.append(day)
        day = add_days(day, -1)
    for missing in reversed(todo):
        log.info("running totals %s: %s", missing, _build_day(lake, missing, start))
    return lake.ledger().token(JOB, todo[0] if todo else day)


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Build user_running_totals and anchor_running_totals through one day "
                        "(and every missing or out-of-date day before it) from the daily "
                        "stats.")
    parser.add_argument("--date", required=True, type=day_arg, help="the day, YYYY-MM-DD")
    args = parser.parse_args(argv)

    def work(lake: Lake, _) -> str:
        ensure(lake, args.date)
        counts = {spec.name: lake.rows(spec, args.date) for spec in OUTPUTS}
        return f"running_totals {args.date}: {rows_summary(counts)}"

    return run_job("running_totals", args, work)


if __name__ == "__main__":
    sys.exit(main())
