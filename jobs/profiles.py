"""User and anchor profiles as of day D, from the daily partial aggregates of D-N .. D-1.

The label day D itself is never read: profiles for the labels of D see only the past.
Every row records its window (`window_days`, `window_days_present`) and the first and
last source day that contributed (`source_min_dt`, `source_max_dt`), which the leakage
audit checks. Users and anchors known as of D with no activity in the window get a row
with `has_history = false` and zero statistics (cold start).

One job builds a range of profile days D1 .. D2 in a single pass over the daily tables of
D1-N .. D2-1 (features/sliding.py): a row of day e only ever reaches the profiles of days
e+1 .. e+N, so building many days at once cannot leak either. A single day is the range
D .. D.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from features.days import add_days, days_between, window_before
from features.rules import DEFAULT_LAST_K, DEFAULT_WINDOW_DAYS
from features.sliding import (
    DAY,
    EXACT,
    day_number,
    day_text,
    first_in_window,
    grid,
    marker_events,
    running_totals,
    window_events,
    with_previous,
)
from features.tables import (
    ANCHOR_PROFILES,
    ANCHORS,
    DAILY_ANCHOR_STATS,
    DAILY_USER_ANCHOR,
    DAILY_USER_STATS,
    USER_PROFILES,
    USERS,
)
from jobs.cli import int_in, iso_day, job_parser, run_job
from jobs.lake import Lake

log = logging.getLogger(__name__)
WINDOW_TABLES = (DAILY_USER_STATS, DAILY_ANCHOR_STATS, DAILY_USER_ANCHOR)
_COUNTS = ("sessions", "bounces", "long_watches", "gift_sessions")
_AMOUNTS = ("watch_seconds", "gift_value")  # fractional: summed exactly as decimals


def first_appearance(dimension: DataFrame, key: str, day: str) -> DataFrame:
    """One row per entity known as of `day`: the attributes of its first appearance."""
    first = Window.partitionBy(key).orderBy("dt")
    return (dimension.where(F.col("dt") <= day)
            .withColumn("_rank", F.row_number().over(first))
            .where("_rank = 1").drop("_rank").withColumnRenamed("dt", "first_dt"))


def _ratio(numerator: str, denominator: str) -> Column:
    num, den = F.col(numerator).cast("double"), F.col(denominator).cast("double")
    return F.when(den > 0, num / den).otherwise(0.0)


def _engagement(extra: dict[str, Column]) -> dict[str, Column]:
    """The summed statistics of a daily row, fractional ones as exact decimals."""
    return {**{c: F.col(c) for c in _COUNTS}, **{c: F.col(c).cast(EXACT) for c in _AMOUNTS},
            **extra}


def _source_days(rows: DataFrame, key: str, window: int, days: int) -> list[DataFrame]:
    """Markers for the last (`last_e`) and the first (`first_e`) source day in the window."""
    return [marker_events(rows, [key], days, "last_e", F.col("e"), F.col("e") + 1),
            marker_events(rows, [key], days, "first_e", F.col("e"), first_in_window(window))]


def _distinct(pairs: DataFrame, key: str, name: str, window: int, days: int) -> DataFrame:
    """Events counting the distinct pairs (rows carry `p`, the pair's previous day) per key."""
    return window_events(pairs, [key], window, days, {name: F.lit(1).cast("long")},
                         enter=first_in_window(window))


def _window_columns(first: str, window: int, present: Sequence[int]) -> list[Column]:
    """has_history, source days, the window and dt of a running-totals row."""
    has = F.coalesce(F.col("last_e") >= F.col(DAY) - window, F.lit(False))
    return [F.lit(window).alias("window_days"),
            F.element_at(F.array(*[F.lit(n) for n in present]), F.col(DAY) + 1)
            .alias("window_days_present"),
            has.alias("has_history"),
            F.when(has, day_text(first, F.col("first_e"))).alias("source_min_dt"),
            F.when(has, day_text(first, F.col("last_e"))).alias("source_max_dt"),
            day_text(first, F.col(DAY)).alias("dt")]


def _recent_anchors(pairs: DataFrame, last_k: int) -> DataFrame:
    """Per user and active day `last_e`: the watches (t, -anchor, e) of the user's last K
    active days up to it, most recent first (one entry per anchor and day)."""
    watch = F.struct(F.col("last_start_time").alias("t"), (-F.col("anchor_id")).alias("a"),
                     F.col("e").alias("e"))
    per_day = pairs.groupBy("user_id", "e").agg(
        F.slice(F.sort_array(F.collect_list(watch), asc=False), 1, last_k).alias("day"))
    last_days = Window.partitionBy("user_id").orderBy("e").rowsBetween(-(last_k - 1), 0)
    return per_day.select(
        "user_id", F.col("e").alias("last_e"),
        F.sort_array(F.flatten(F.collect_list("day").over(last_days)), asc=False)
        .alias("recent"))


def build_user_profiles(
    users: DataFrame, user_stats: DataFrame, pairs: DataFrame, days: Sequence[str],
    window: int, last_k: int, present: Sequence[int], categories: Sequence[str],
) -> DataFrame:
    """One row per user known as of each profile day (grain: user_id, dt).

    Args:
      users: the users table (dt = day of first appearance), any days.
      user_stats / pairs: daily_user_stats / daily_user_anchor rows of days[0]-N ..
        days[-1]-1 with `e`, their day number from days[0].
      present: per profile day, how many window days had data (== window unless partial).
      categories: every key of `category_seconds` in `user_stats`.
    """
    first, m = days[0], len(days)
    stats = with_previous(user_stats, ["user_id"])
    share_of = {f"_cat{j}": F.coalesce(F.col("category_seconds")[c], F.lit(0)).cast(EXACT)
                for j, c in enumerate(categories)}
    sums = _engagement({"active_days": F.lit(1).cast("long"), **share_of})
    base = first_appearance(users, "user_id", days[-1])
    totals = running_totals(
        grid(base, ["user_id"], day_number(first, "first_dt"), m),
        [window_events(stats, ["user_id"], window, m, sums),
         *_source_days(stats, "user_id", window, m),
         _distinct(with_previous(pairs, ["user_id", "anchor_id"]), "user_id",
                   "distinct_anchors", window, m)],
        ["user_id"], [*sums, "distinct_anchors"], ["first_e", "last_e"])
    shares = F.array(*[F.struct(F.lit(c).alias("key"), _ratio(f"_cat{j}", "watch_seconds")
                                .alias("value")) for j, c in enumerate(categories)])
    recent = F.filter("recent", lambda w: w["e"] >= F.col(DAY) - window)
    category_shares = (F.map_from_entries(F.filter(shares, lambda s: s["value"] > 0))
                       if categories else F.create_map().cast("map<string,double>"))
    profile = (totals.join(base, "user_id")
               .join(_recent_anchors(pairs, last_k), ["user_id", "last_e"], "left"))
    day = F.to_date(day_text(first, F.col(DAY)))
    return profile.select(
        "user_id", "gender", "age_bucket", "city", "device",
        F.datediff(day, F.to_date("signup_date")).cast("int").alias("tenure_days"),
        *[F.col(c) for c in (*_COUNTS, "distinct_anchors")],
        *[F.col(c).cast("double").alias(c) for c in _AMOUNTS],
        F.col("active_days").cast("int").alias("active_days"),
        _ratio("bounces", "sessions").alias("bounce_rate"),
        _ratio("watch_seconds", "sessions").alias("avg_watch_seconds"),
        category_shares.alias("category_shares"),
        F.coalesce(F.slice(F.array_distinct(F.transform(recent, lambda w: -w["a"])), 1, last_k),
                   F.array().cast("array<bigint>")).alias("last_anchors"),
        F.when(F.col("last_e") >= F.col(DAY) - window, F.col(DAY) - F.col("last_e"))
        .cast("int").alias("days_since_last_active"),
        *_window_columns(first, window, present))


def build_anchor_profiles(
    anchors: DataFrame, anchor_stats: DataFrame, pairs: DataFrame, days: Sequence[str],
    window: int, present: Sequence[int],
) -> DataFrame:
    """One row per anchor known as of each profile day (grain: anchor_id, dt); inputs as for
    users."""
    first, m = days[0], len(days)
    stats = with_previous(anchor_stats, ["anchor_id"])
    sums = _engagement({"live_days": F.col("is_live").cast("long"),
                        "active_days": (F.col("sessions") > 0).cast("long")})
    gifts = pairs.where(F.col("gift_value") > 0)
    base = first_appearance(anchors, "anchor_id", days[-1])
    totals = running_totals(
        grid(base, ["anchor_id"], day_number(first, "first_dt"), m),
        [window_events(stats, ["anchor_id"], window, m, sums),
         *_source_days(stats, "anchor_id", window, m),
         marker_events(stats.where("is_live"), ["anchor_id"], m, "live_e", F.col("e"),
                       F.col("e") + 1),
         _distinct(with_previous(pairs, ["user_id", "anchor_id"]), "anchor_id",
                   "distinct_viewers", window, m),
         _distinct(with_previous(gifts, ["user_id", "anchor_id"]), "anchor_id",
                   "distinct_gifters", window, m)],
        ["anchor_id"], [*sums, "distinct_viewers", "distinct_gifters"],
        ["first_e", "last_e", "live_e"])
    day = F.to_date(day_text(first, F.col(DAY)))
    return totals.join(base, "anchor_id").select(
        "anchor_id", "category", "gender", "city",
        F.datediff(day, F.to_date("debut_date")).cast("int").alias("days_since_debut"),
        *[F.col(c) for c in (*_COUNTS, "distinct_viewers", "distinct_gifters")],
        *[F.col(c).cast("double").alias(c) for c in _AMOUNTS],
        *[F.col(c).cast("int").alias(c) for c in ("live_days", "active_days")],
        _ratio("bounces", "sessions").alias("bounce_rate"),
        _ratio("watch_seconds", "sessions").alias("avg_watch_seconds"),
        F.when(F.col("live_e") >= F.col(DAY) - window, F.col(DAY) - F.col("live_e"))
        .cast("int").alias("days_since_last_live"),
        *_window_columns(first, window, present))


def check_windows(lake: Lake, days: Sequence[str], window: int,
                  allow_partial: bool) -> list[int]:
    """Per profile day, how many of its window days have data; fails naming missing days
    unless they precede all history and `allow_partial` is set."""
    have = [lake.days(spec) for spec in WINDOW_TABLES]
    start = min(have[1]) if have[1] else None
    present = []
    for day in days:
        wanted = window_before(day, window)
        missing = sorted({d for d in wanted for got in have if d not in got})
        before_history = all(start is None or d < start for d in missing)
        if missing and not (allow_partial and before_history):
            hint = (" (use --allow-partial at the start of history)" if before_history else
                    " (a gap inside the history: run daily_stats for these days)")
            raise FileNotFoundError(f"profiles {day} window {window}: daily stats missing "
                                    f"for {', '.join(missing)}{hint}")
        if missing:
            log.warning("profiles %s: partial window, %d of %d days", day,
                        window - len(missing), window)
        present.append(window - len(missing))
    return present


def run_range(lake: Lake, first: str, last: str, window: int = DEFAULT_WINDOW_DAYS,
              last_k: int = DEFAULT_LAST_K, allow_partial: bool = False) -> None:
    """Build and write user_profiles and anchor_profiles for every day first .. last."""
    days = days_between(first, last)
    present = check_windows(lake, days, window, allow_partial)

    def read(spec):
        rows = lake.read_days(spec, add_days(first, -window), add_days(last, -1))
        return rows.withColumn("e", day_number(first))

    pairs, user_stats = read(DAILY_USER_ANCHOR), read(DAILY_USER_STATS)
    categories = sorted(r[0] for r in user_stats.select(
        F.explode(F.map_keys("category_seconds"))).distinct().collect())
    users = build_user_profiles(lake.read(USERS), user_stats, pairs, days, window, last_k,
                                present, categories)
    anchors = build_anchor_profiles(lake.read(ANCHORS), read(DAILY_ANCHOR_STATS), pairs, days,
                                    window, present)
    lake.write_days(users, USER_PROFILES, first, last)
    lake.write_days(anchors, ANCHOR_PROFILES, first, last)


def run(lake: Lake, day: str, window: int = DEFAULT_WINDOW_DAYS, last_k: int = DEFAULT_LAST_K,
        allow_partial: bool = False) -> None:
    """Build and write user_profiles and anchor_profiles for `day`."""
    run_range(lake, day, day, window, last_k, allow_partial)


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Build user_profiles and anchor_profiles as of one day (or each day "
                        "of a range) from the daily stats of the N days before it (never the "
                        "day itself).")
    parser.add_argument("--date", required=True, type=iso_day, help="profile day D, YYYY-MM-DD")
    parser.add_argument("--end", type=iso_day,
                        help="build every day D .. END in one pass (default: D only)")
    parser.add_argument("--window", type=int_in(1, 365), default=DEFAULT_WINDOW_DAYS,
                        help=f"N, days before D to aggregate (default {DEFAULT_WINDOW_DAYS})")
    parser.add_argument("--last-k", type=int_in(1, 200), default=DEFAULT_LAST_K,
                        help=f"K, recent anchors kept per user (default {DEFAULT_LAST_K})")
    parser.add_argument("--allow-partial", action="store_true",
                        help="accept a window cut short by the start of history")
    args = parser.parse_args(argv)
    end = args.end or args.date
    if end < args.date:
        parser.error(f"--end {end} is before --date {args.date}")

    def work(lake: Lake) -> dict:
        started = time.perf_counter()
        run_range(lake, args.date, end, args.window, args.last_k, args.allow_partial)
        return {"first": args.date, "last": end, "window": args.window,
                "seconds": round(time.perf_counter() - started, 2)}

    return run_job("profiles", args, work)


if __name__ == "__main__":
    sys.exit(main())
