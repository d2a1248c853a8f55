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
from features.rules import (
    DEFAULT_HISTORY_DAYS,
    DEFAULT_HISTORY_K,
    DEFAULT_LAST_K,
    DEFAULT_WINDOW_DAYS,
    HISTORY_HALF_LIFE_DAYS,
)
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


def build_user_history(pairs: DataFrame, day: str, history_days: int, top_k: int,
                       half_life_days: float = HISTORY_HALF_LIFE_DAYS) -> DataFrame:
    """One row per user with a watch in `pairs` (daily_user_anchor rows of the H days before
    `day`): their `top_k` anchors by sum of log1p(watch seconds) * 0.5^(age / half life),
    age in days before `day`, strongest first (ties: smaller anchor id), with the weights.
    Each day's term is rounded to a millionth and summed as an integer: a float sum would
    depend on the engine's order of rows, and a re-run must give the same bits."""
    age = F.datediff(F.lit(day).cast("date"), F.col("dt").cast("date"))
    weight = F.log1p("watch_seconds") * F.pow(F.lit(0.5), age / F.lit(float(half_life_days)))
    micros = F.round(weight * F.lit(1e6)).cast("bigint")
    per_pair = pairs.groupBy("user_id", "anchor_id").agg(
        (F.sum(micros) / F.lit(1e6)).alias("weight"), F.max("dt").alias("last_dt"))
    strongest = Window.partitionBy("user_id").orderBy(F.col("weight").desc(), "anchor_id")
    return (per_pair.withColumn("rank", F.row_number().over(strongest))
            .where(F.col("rank") <= top_k)
            .groupBy("user_id").agg(
                F.sort_array(F.collect_list(F.struct("rank", "anchor_id", "weight"))).alias("h"),
                F.max("last_dt").alias("history_max_dt"))
            .select("user_id", F.col("h.anchor_id").alias("history_anchors"),
                    F.col("h.weight").alias("history_weights"),
                    F.lit(history_days).alias("history_days"), "history_max_dt"))


def build_user_profiles(
    users: DataFrame, user_stats: DataFrame, pairs: DataFrame, day: str, window: int,
    last_k: int, present: int, history: DataFrame | None = None, history_days: int = 0,
) -> DataFrame:
    """One row per user known as of `day` (grain: user_id, dt).

    Args:
      users: the users table (dt = day of first appearance), any days.
      user_stats / pairs: daily_user_stats / daily_user_anchor rows of the window only.
      present: how many window days had data (== window unless a partial window).
      history: `build_user_history` of the H = `history_days` days before `day` (None:
        every user's history is empty).
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
    if history is None:
        history = pairs.sparkSession.createDataFrame(
            [], "user_id bigint, history_anchors array<bigint>, history_weights array<double>, "
                "history_days int, history_max_dt string")
    profile = (base.join(sums, "user_id", "left").join(shares, "user_id", "left")
               .join(last_anchors, "user_id", "left").join(distinct, "user_id", "left")
               .join(history.drop("history_days"), "user_id", "left")
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
    ).withColumn("last_anchors", F.coalesce("last_anchors", F.array().cast("array<bigint>"))
    ).withColumn("history_anchors",
                 F.coalesce("history_anchors", F.array().cast("array<bigint>"))
    ).withColumn("history_weights",
                 F.coalesce("history_weights", F.array().cast("array<double>"))
    ).withColumn("history_days", F.lit(history_days).cast("int")
    ).withColumn(  # a user seen only before the window still has a history: not cold
        "has_history", F.col("has_history") | F.col("history_max_dt").isNotNull())


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
        allow_partial: bool = False, history_days: int = DEFAULT_HISTORY_DAYS,
        history_k: int = DEFAULT_HISTORY_K) -> dict[str, int]:
    """Build and write user_profiles and anchor_profiles for `day`; returns the rows written
    per table. The long history reaches back `history_days` days, or to the start of the
    history when that is later (a gap inside the history fails, as for the window)."""
    present, inputs = check_window(lake, day, window, allow_partial)
    _, history_inputs = check_window(lake, day, history_days, allow_partial=True)
    start, end = window_before(day, window)[0], window_before(day, window)[-1]

    def read(spec):
        return lake.read_days(spec, start, end)

    pairs = read(DAILY_USER_ANCHOR)
    history = build_user_history(
        lake.read_days(DAILY_USER_ANCHOR, window_before(day, history_days)[0], end), day,
        history_days, history_k)
    users = build_user_profiles(lake.read(USERS), read(DAILY_USER_STATS), pairs, day, window,
                                last_k, len(present), history, history_days)
    anchors = build_anchor_profiles(lake.read(ANCHORS), read(DAILY_ANCHOR_STATS), pairs, day,
                                    window, len(present))
    lake.begin_day(JOB, day)
    lake.write_partition(users, USER_PROFILES, day)
    lake.write_partition(anchors, ANCHOR_PROFILES, day)
    counts = {spec.name: lake.rows(spec, day) for spec in OUTPUTS}
    lake.finish_day(JOB, day, OUTPUTS, {**counts, "window": window, "last_k": last_k,
                                        "window_days_present": len(present),
                                        "history_days": history_days,
                                        "history_k": history_k},
                    {**history_inputs, **inputs})
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
    parser.add_argument("--history-days", type=int_in(1, 730),
                        help="H, days of the long-horizon history (default: the settings' "
                             f"history_days, $FEATURE_HISTORY_DAYS, else {DEFAULT_HISTORY_DAYS})")
    parser.add_argument("--history-k", type=int_in(1, 200),
                        help="anchors kept in the long history (default: the settings' "
                             f"history_k, $FEATURE_HISTORY_K, else {DEFAULT_HISTORY_K})")
    args = parser.parse_args(argv)

    def work(lake: Lake, settings: Settings) -> str:
        window = args.window or settings.window_days
        counts = run(lake, args.date, window, args.last_k or settings.last_k,
                     args.allow_partial, args.history_days or settings.history_days,
                     args.history_k or settings.history_k)
        return f"profiles {args.date} (window {window}): {rows_summary(counts)}"

    return run_job("profiles", args, work)


if __name__ == "__main__":
    sys.exit(main())
