"""User and anchor profiles as of day D, from the daily partial aggregates of D-N .. D-1.

The label day D itself is never read: profiles for the labels of D see only the past.
Every row records its window (`window_days`, `window_days_present`) and the first and
last source day that contributed (`source_min_dt`, `source_max_dt`), which the leakage
audit checks. Users and anchors known as of D with no activity in the window get a row
with `has_history = false` and zero statistics (cold start).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from features import day_status
from features.catalog import (
    ANCHOR_PROFILES,
    ANCHORS,
    DAILY_ANCHOR_STATS,
    DAILY_USER_ANCHOR,
    DAILY_USER_STATS,
    USER_PROFILES,
    USERS,
)
from features.days import day_arg, window_before
from features.rules import DEFAULT_LAST_K, DEFAULT_WINDOW_DAYS
from features.settings import Settings
from jobs.cli import int_in, job_parser, rows_summary, run_job
from jobs.lake import Lake
from jobs.maps import map_agg

log = logging.getLogger(__name__)
JOB = "profiles"
WINDOW_TABLES = (DAILY_USER_STATS, DAILY_ANCHOR_STATS, DAILY_USER_ANCHOR)
OUTPUTS = (USER_PROFILES, ANCHOR_PROFILES)


def first_appearance(dimension: DataFrame, key: str, day: str) -> DataFrame:
    """One row per entity known as of `day`: the attributes of its first appearance."""
    first = Window.partitionBy(key).orderBy("dt")
    return (dimension.where(F.col("dt") <= day)
            .withColumn("_rank", F.row_number().over(first))
            .where("_rank = 1").drop("_rank").withColumnRenamed("dt", "first_dt"))


def _ratio(numerator: str, denominator: str) -> Column:
    return F.when(F.col(denominator) > 0, F.col(numerator) / F.col(denominator)).otherwise(0.0)


def _window_columns(day: str, window: int, present: int) -> list[Column]:
    return [F.lit(window).alias("window_days"), F.lit(present).alias("window_days_present"),
            F.col("source_max_dt").isNotNull().alias("has_history"), F.lit(day).alias("dt")]


_SUMS = ("sessions", "watch_seconds", "bounces", "long_watches", "gift_value", "gift_sessions")
_ZEROS = {"sessions": 0, "watch_seconds": 0.0, "bounces": 0, "long_watches": 0,
          "gift_value": 0.0, "gift_sessions": 0, "active_days": 0}


def build_user_profiles(
    users: DataFrame, user_stats: DataFrame, pairs: DataFrame, day: str, window: int,
    last_k: int, present: int,
) -> DataFrame:
    """One row per user known as of `day` (grain: user_id, dt).

    Args:
      users: the users table (dt = day of first appearance), any days.
      user_stats / pairs: daily_user_stats / daily_user_anchor rows of the window only.
      present: how many window days had data (== window unless a partial window).
    """
    sums = user_stats.groupBy("user_id").agg(
        *[F.sum(c).alias(c) for c in _SUMS],
        F.countDistinct("dt").cast("int").alias("active_days"),
        F.min("dt").alias("source_min_dt"), F.max("dt").alias("source_max_dt"),
    )
    per_category = (user_stats.select("user_id", F.explode("category_seconds")
                                      .alias("category", "seconds"))
                    .groupBy("user_id", "category").agg(F.sum("seconds").alias("seconds")))
    shares = (per_category.join(sums.select("user_id", "watch_seconds"), "user_id")
              .withColumn("share", _ratio("seconds", "watch_seconds"))
              .groupBy("user_id").agg(map_agg("category", "share").alias("category_shares")))
    latest = pairs.groupBy("user_id", "anchor_id").agg(F.max("last_start_time").alias("t"))
    recency = Window.partitionBy("user_id").orderBy(F.col("t").desc(), F.col("anchor_id"))
    last_anchors = (latest.withColumn("rank", F.row_number().over(recency))
                    .where(F.col("rank") <= last_k)
                    .groupBy("user_id").agg(
                        F.sort_array(F.collect_list(F.struct("rank", "anchor_id"))).alias("s"))
                    .select("user_id", F.col("s.anchor_id").alias("last_anchors")))
    distinct = latest.groupBy("user_id").agg(F.count(F.lit(1)).alias("distinct_anchors"))
    base = first_appearance(users, "user_id", day).select(
        "user_id", "gender", "age_bucket", "city", "device",
        F.datediff(F.lit(day).cast("date"), F.col("signup_date").cast("date"))
        .cast("int").alias("tenure_days"))
    profile = (base.join(sums, "user_id", "left").join(shares, "user_id", "left")
               .join(last_anchors, "user_id", "left").join(distinct, "user_id", "left")
               .fillna({**_ZEROS, "distinct_anchors": 0}))
    return profile.select(
        "*",
        _ratio("bounces", "sessions").alias("bounce_rate"),
        _ratio("watch_seconds", "sessions").alias("avg_watch_seconds"),
        F.datediff(F.lit(day).cast("date"), F.col("source_max_dt").cast("date"))
        .cast("int").alias("days_since_last_active"),
        *_window_columns(day, window, present),
    ).withColumn("category_shares", F.coalesce(
        "category_shares", F.create_map().cast("map<string,double>"))
    ).withColumn("last_anchors", F.coalesce("last_anchors", F.array().cast("array<bigint>")))


def build_anchor_profiles(
    anchors: DataFrame, anchor_stats: DataFrame, pairs: DataFrame, day: str, window: int,
    present: int,
) -> DataFrame:
    """One row per anchor known as of `day` (grain: anchor_id, dt); inputs as for users."""
    sums = anchor_stats.groupBy("anchor_id").agg(
        *[F.sum(c).alias(c) for c in _SUMS],
        F.sum(F.col("is_live").cast("int")).cast("int").alias("live_days"),
        F.sum((F.col("sessions") > 0).cast("int")).cast("int").alias("active_days"),
        F.max(F.when(F.col("is_live"), F.col("dt"))).alias("last_live_dt"),
        F.min("dt").alias("source_min_dt"), F.max("dt").alias("source_max_dt"),
    )
    audience = pairs.groupBy("anchor_id").agg(
        F.countDistinct("user_id").alias("distinct_viewers"),
        F.countDistinct(F.when(F.col("gift_value") > 0, F.col("user_id")))
        .alias("distinct_gifters"))
    base = first_appearance(anchors, "anchor_id", day).select(
        "anchor_id", "category", "gender", "city",
        F.datediff(F.lit(day).cast("date"), F.col("debut_date").cast("date"))
        .cast("int").alias("days_since_debut"))
    profile = (base.join(sums, "anchor_id", "left").join(audience, "anchor_id", "left")
               .fillna({**_ZEROS, "live_days": 0, "distinct_viewers": 0,
                        "distinct_gifters": 0}))
    return profile.select(
        "*",
        _ratio("bounces", "sessions").alias("bounce_rate"),
        _ratio("watch_seconds", "sessions").alias("avg_watch_seconds"),
        F.datediff(F.lit(day).cast("date"), F.col("last_live_dt").cast("date"))
        .cast("int").alias("days_since_last_live"),
        *_window_columns(day, window, present),
    ).drop("last_live_dt")


def check_window(lake: Lake, day: str, window: int, allow_partial: bool
                 ) -> tuple[list[str], dict[str, str]]:
    """The window days that are complete (an empty day counts: it had zero activity) and
    their daily_stats tokens; fails naming days missing, interrupted or out of date, unless
    they all precede the history and `allow_partial` is set."""
    days = window_before(day, window)
    ledger = lake.ledger()
    problems = ledger.problems("daily_stats", days)
    present = [d for d in days if d not in problems]
    tokens = {day_status.key("daily_stats", d): ledger.token("daily_stats", d) for d in present}
    if not problems:
        return days, tokens
    # Only days never built can precede the history: a stale or interrupted day is inside it.
    history = ledger.recorded_days("daily_stats")
    start = min(history) if history else None
    built = set().union(*(lake.days(spec) for spec in WINDOW_TABLES))
    before_history = all(kind == day_status.MISSING and d not in built
                         and (start is None or d < start) for d, (kind, _) in problems.items())
    if not (allow_partial and before_history):
        hint = ("the window starts before the history: use --allow-partial" if before_history
                else "a gap inside the history: run jobs.daily_stats for these days")
        raise lake.incomplete_input("daily_stats", WINDOW_TABLES, problems,
                                    f"profiles {day} window {window}: {hint}")
    log.warning("profiles %s: partial window, %d of %d days", day, len(present), window)
    return present, tokens


def run(lake: Lake, day: str, window: int = DEFAULT_WINDOW_DAYS, last_k: int = DEFAULT_LAST_K,
        allow_partial: bool = False) -> dict[str, int]:
    """Build and write user_profiles and anchor_profiles for `day`; returns the rows written
    per table."""
    present, inputs = check_window(lake, day, window, allow_partial)
    start, end = window_before(day, window)[0], window_before(day, window)[-1]

    def read(spec):
        return lake.read_days(spec, start, end)

    pairs = read(DAILY_USER_ANCHOR)
    users = build_user_profiles(lake.read(USERS), read(DAILY_USER_STATS), pairs, day, window,
                                last_k, len(present))
    anchors = build_anchor_profiles(lake.read(ANCHORS), read(DAILY_ANCHOR_STATS), pairs, day,
                                    window, len(present))
    lake.begin_day(JOB, day)
    lake.write_partition(users, USER_PROFILES, day)
    lake.write_partition(anchors, ANCHOR_PROFILES, day)
    counts = {spec.name: lake.rows(spec, day) for spec in OUTPUTS}
    lake.finish_day(JOB, day, OUTPUTS, {**counts, "window": window, "last_k": last_k,
                                        "window_days_present": len(present)}, inputs)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Build user_profiles and anchor_profiles as of one day from the "
                        "daily stats of the N days before it (never the day itself).")
    parser.add_argument("--date", required=True, type=day_arg, help="profile day D, YYYY-MM-DD")
    parser.add_argument("--window", type=int_in(1, 365),
                        help="N, days before D to aggregate (default: the settings' "
                             "window_days, $FEATURE_WINDOW_DAYS, else "
                             f"{DEFAULT_WINDOW_DAYS})")
    parser.add_argument("--last-k", type=int_in(1, 200),
                        help="K, recent anchors kept per user (default: the settings' "
                             f"last_k, $FEATURE_LAST_K, else {DEFAULT_LAST_K})")
    parser.add_argument("--allow-partial", action="store_true",
                        help="accept a window cut short by the start of history")
    args = parser.parse_args(argv)

    def work(lake: Lake, settings: Settings) -> str:
        window = args.window or settings.window_days
        counts = run(lake, args.date, window, args.last_k or settings.last_k,
                     args.allow_partial)
        return f"profiles {args.date} (window {window}): {rows_summary(counts)}"

    return run_job("profiles", args, work)


if __name__ == "__main__":
    sys.exit(main())
