"""Daily partial aggregates of one day's sessions: per user, per anchor, per (user, anchor).

Profiles over any window are sums of these partitions (distinct counts come from the pair
table), so each raw day is read once whatever the window length.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features.catalog import (
    ANCHORS,
    DAILY_ANCHOR_STATS,
    DAILY_USER_ANCHOR,
    DAILY_USER_STATS,
    LIVE_SCHEDULE,
    RAW_WATCH_SESSIONS,
)
from features.days import day_arg
from features.rules import BOUNCE_SECONDS, LONG_WATCH_SECONDS
from jobs.cli import job_parser, rows_summary, run_job
from jobs.lake import Lake
from jobs.maps import map_agg

JOB = "daily_stats"
OUTPUTS = (DAILY_USER_STATS, DAILY_ANCHOR_STATS, DAILY_USER_ANCHOR)


def _engagement(seconds: str = "watch_seconds", gift: str = "gift_value") -> list:
    """Per-group sums every daily table shares."""
    return [
        F.count(F.lit(1)).alias("sessions"),
        F.sum(seconds).alias("watch_seconds"),
        F.sum(F.when(F.col(seconds) <= BOUNCE_SECONDS, 1).otherwise(0)).cast("long")
        .alias("bounces"),
        F.sum(F.when(F.col(seconds) >= LONG_WATCH_SECONDS, 1).otherwise(0)).cast("long")
        .alias("long_watches"),
        F.sum(gift).alias("gift_value"),
        F.sum(F.when(F.col(gift) > 0, 1).otherwise(0)).cast("long").alias("gift_sessions"),
    ]


def build_daily_user_stats(sessions: DataFrame, anchors: DataFrame, day: str) -> DataFrame:
    """One row per user with a session on `day`: counts, sums and seconds per category.

    Args:
      sessions: raw_watch_sessions rows of `day`.
      anchors: anchor_id, category of every anchor known as of `day`.
    """
    categorised = sessions.join(anchors.select("anchor_id", "category"), "anchor_id", "left") \
        .withColumn("category", F.coalesce("category", F.lit("unknown")))
    per_category = categorised.groupBy("user_id", "category").agg(
        F.sum("watch_seconds").alias("seconds"))
    category_seconds = per_category.groupBy("user_id").agg(
        map_agg("category", "seconds").alias("category_seconds"))
    totals = sessions.groupBy("user_id").agg(*_engagement())
    return totals.join(category_seconds, "user_id").withColumn("dt", F.lit(day))


def build_daily_anchor_stats(sessions: DataFrame, live: DataFrame, day: str) -> DataFrame:
    """One row per anchor live or watched on `day`; zeros for a live anchor nobody watched."""
    watched = sessions.groupBy("anchor_id").agg(*_engagement())
    live_ids = live.select("anchor_id").distinct().withColumn("is_live", F.lit(True))
    both = watched.join(live_ids, "anchor_id", "full")
    zero = {"sessions": 0, "watch_seconds": 0.0, "bounces": 0, "long_watches": 0,
            "gift_value": 0.0, "gift_sessions": 0, "is_live": False}
    return both.fillna(zero).withColumn("dt", F.lit(day))


def build_daily_user_anchor(sessions: DataFrame, day: str) -> DataFrame:
    """One row per (user, anchor) pair watched on `day`, with its last start time."""
    return sessions.groupBy("user_id", "anchor_id").agg(
        F.count(F.lit(1)).alias("sessions"),
        F.sum("watch_seconds").alias("watch_seconds"),
        F.sum("gift_value").alias("gift_value"),
        F.max("start_time").alias("last_start_time"),
    ).withColumn("dt", F.lit(day))


def run(lake: Lake, day: str) -> dict[str, int]:
    """Build and write the three daily tables of `day` from raw_watch_sessions (an empty
    day gives empty tables and a complete day record); returns the rows written per table."""
    inputs = lake.require_complete("ingest", (RAW_WATCH_SESSIONS, LIVE_SCHEDULE), [day],
                                   f"run jobs.ingest --date {day} first")
    sessions = lake.read_days(RAW_WATCH_SESSIONS, day, day)
    anchors = lake.read(ANCHORS).where(F.col("dt") <= day)
    live = lake.read_days(LIVE_SCHEDULE, day, day)
    lake.begin_day(JOB, day)
    lake.write_partition(build_daily_user_stats(sessions, anchors, day), DAILY_USER_STATS, day)
    lake.write_partition(build_daily_anchor_stats(sessions, live, day), DAILY_ANCHOR_STATS, day)
    lake.write_partition(build_daily_user_anchor(sessions, day), DAILY_USER_ANCHOR, day)
    counts = {spec.name: lake.rows(spec, day) for spec in OUTPUTS}
    lake.finish_day(JOB, day, OUTPUTS, counts, inputs)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Build daily_user_stats, daily_anchor_stats and daily_user_anchor "
                        "for one day from raw_watch_sessions.")
    parser.add_argument("--date", required=True, type=day_arg, help="the day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    return run_job("daily_stats", args, lambda lake, _: (
        f"daily_stats {args.date}: {rows_summary(run(lake, args.date))}"))


if __name__ == "__main__":
    sys.exit(main())
