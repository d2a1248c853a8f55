"""Profiles of M label days at window N = 1, 7, 30 against a naive recomputation of the
same tables from raw sessions (issue 19: the daily job at N=30 >= 3x faster than the naive
one), and embedded Sail against JVM Spark on the same job.

The daily job reads two rows of running totals for its window sums and the daily pairs for
the pair-based features (the long history of H days included); the naive job has no
stored intermediate: every label day regroups the raw sessions of its max(N, H) days. Both
write the same columns; the report says whether they agree on the last label day.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.common import jvm_step_seconds, report, timed
from features.catalog import ANCHORS, LIVE_SCHEDULE, RAW_WATCH_SESSIONS
from features.days import add_days, days_between, window_before
from features.rules import (
    BOUNCE_SECONDS,
    DEFAULT_HISTORY_DAYS,
    DEFAULT_HISTORY_K,
    DEFAULT_LAST_K,
    LONG_WATCH_SECONDS,
)
from jobs.cli import int_in
from jobs.schemas import table_spec
from jobs.simulator import make_landing

WINDOWS = (1, 7, 30)
COMPARED = {"user": ("sessions", "watch_seconds", "active_days", "distinct_anchors",
                     "source_min_dt", "source_max_dt", "last_anchors", "history_anchors"),
            "anchor": ("sessions", "watch_seconds", "live_days", "active_days",
                       "distinct_viewers", "distinct_gifters", "source_min_dt")}


def _window_stats() -> list:
    seconds = F.col("watch_seconds")
    return [F.count(F.lit(1)).alias("sessions"), F.sum(seconds).alias("watch_seconds"),
            F.sum((seconds <= BOUNCE_SECONDS).cast("long")).alias("bounces"),
            F.sum((seconds >= LONG_WATCH_SECONDS).cast("long")).alias("long_watches"),
            F.sum("gift_value").alias("gift_value"),
            F.sum((F.col("gift_value") > 0).cast("long")).alias("gift_sessions"),
            F.min("dt").alias("source_min_dt"), F.max("dt").alias("source_max_dt")]


def naive_profiles(raw: DataFrame, anchors: DataFrame, live: DataFrame,
                   day: str, window: int, history_days: int, last_k: int, history_k: int
                   ) -> tuple[DataFrame, DataFrame]:
    """The user and anchor profile statistics of `day` straight from raw sessions: what
    the daily partial aggregates and running totals avoid (cold rows and ratios, which
    cost the same either way, left out)."""
    from jobs import profiles

    days = window_before(day, window)
    reach = window_before(day, max(window, history_days))[0]
    recent = raw.where(F.col("dt").between(reach, days[-1]))
    sessions = recent.where(F.col("dt") >= days[0])
    pairs = recent.groupBy("user_id", "anchor_id", "dt").agg(
        F.sum("watch_seconds").alias("watch_seconds"),
        F.max("start_time").alias("last_start_time"))
    categories = (sessions.join(anchors.select("anchor_id", "category"), "anchor_id", "left")
                  .groupBy("user_id", "category").agg(F.sum("watch_seconds").alias("s"))
                  .groupBy("user_id").agg(F.map_from_entries(F.collect_list(
                      F.struct("category", "s"))).alias("category_seconds")))
    user_rows = (sessions.groupBy("user_id").agg(*_window_stats(),
                                                 F.countDistinct("dt").alias("active_days"))
                 .join(categories, "user_id", "left")
                 .join(profiles.build_window_pairs(profiles.pair_recency(
                     pairs.where(F.col("dt") >= days[0])), last_k).drop("source_min_dt"),
                       "user_id", "left")
                 .join(profiles.build_user_history(profiles.pair_weights(
                     pairs.where(F.col("dt") >= window_before(day, history_days)[0]), day),
                     history_days, history_k), "user_id", "full"))
    live_days = (live.where(F.col("dt").between(days[0], days[-1]))
                 .groupBy("anchor_id").agg(F.countDistinct("dt").alias("live_days"),
                                           F.min("dt").alias("first_live_dt")))
    anchor_rows = (sessions.groupBy("anchor_id").agg(
        *_window_stats(), F.countDistinct("dt").alias("active_days"),
        F.countDistinct("user_id").alias("distinct_viewers"),
        F.countDistinct(F.when(F.col("gift_value") > 0, F.col("user_id")))
        .alias("distinct_gifters"))
        .join(live_days, "anchor_id", "full")
        .withColumn("source_min_dt", F.least("source_min_dt", "first_live_dt"))
        .drop("first_live_dt"))
    return (user_rows.withColumn("dt", F.lit(day)), anchor_rows.withColumn("dt", F.lit(day)))


_COUNTS = ("sessions", "active_days", "distinct_anchors", "live_days", "distinct_viewers",
           "distinct_gifters")


def _canonical(frame: DataFrame, key: str, columns: tuple[str, ...]) -> DataFrame:
    """Comparable columns: counts absent -> 0, lists absent -> [], watch time to the ms."""
    def one(c: str):
        if c == "watch_seconds":
            return F.round(F.coalesce(c, F.lit(0.0)), 3).alias(c)
        if c in _COUNTS:
            return F.coalesce(c, F.lit(0)).cast("bigint").alias(c)
        if c in ("last_anchors", "history_anchors"):
            return F.coalesce(c, F.array().cast("array<bigint>")).alias(c)
        return F.col(c)
    return frame.select(key, *[one(c) for c in columns])


def _disagreements(lake, scratch, specs: dict, day: str) -> dict[str, int]:
    """Rows of the last label day where the daily job and the naive job differ, per side
    (watch seconds compared to the millisecond: the job sums in fixed point)."""
    from features.catalog import ANCHOR_PROFILES, USER_PROFILES

    out = {}
    for side, spec in (("user", USER_PROFILES), ("anchor", ANCHOR_PROFILES)):
        key = f"{side}_id"
        columns = COMPARED[side]
        seen = F.col("source_max_dt").isNotNull()
        if side == "user":  # users active only in the long history: compared too
            seen = seen | F.col("history_max_dt").isNotNull()
        job = lake.read_days(spec, day, day).where(seen)
        naive = scratch.read_days(specs[side], day, day)

        job, naive = _canonical(job, key, columns), _canonical(naive, key, columns)
        out[side] = job.exceptAll(naive).count() + naive.exceptAll(job).count()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--label-days", type=int_in(1, 365), default=3, help="M")
    parser.add_argument("--history-days", type=int_in(1, 730), default=DEFAULT_HISTORY_DAYS,
                        help="H, the long history (the job's default)")
    parser.add_argument("--lake", help="an existing lake of simulated days to reuse (its "
                                       "last M days are the label days); default: simulate")
    parser.add_argument("--jvm-days", type=int_in(0, 365), default=1,
                        help="label days the JVM comparison runs (0: skip it)")
    args = parser.parse_args()
    from jobs import daily_stats, ingest, profiles, running_totals
    from jobs.engine import spark_session
    from jobs.lake import Lake

    m, h, big = args.label_days, args.history_days, max(WINDOWS)
    with tempfile.TemporaryDirectory() as tmp:
        if args.lake:
            lake = Lake(Path(args.lake), spark_session("sail"))
            history = sorted(lake.ledger().complete_days("daily_stats"))
            start, last = history[0], add_days(history[-1], 1)
        else:
            start = "2026-03-01"
            days = max(big, h) + m - 1
            landing = make_landing(Path(tmp), start, days, args.scale, seed=11)
            lake = Lake(Path(tmp) / "lake", spark_session("sail"))
            for day in days_between(start, add_days(start, days - 1)):
                ingest.ingest_day(lake, landing, day)
                daily_stats.run(lake, day)
            last = add_days(start, days)
        label_days = days_between(add_days(last, 1 - m), last)
        print(f"history {start} .. {add_days(last, -1)}, label days {label_days[0]} .. "
              f"{label_days[-1]}", flush=True)
        sessions = lake.rows(RAW_WATCH_SESSIONS, add_days(last, -1))
        chain = timed(lambda: running_totals.ensure(lake, add_days(last, -1)))
        chain_days = len(days_between(start, add_days(last, -1)))
        print(f"running totals: {chain_days} days in {chain:.2f} s", flush=True)

        def build(window: int) -> float:
            return sum(timed(lambda d=d: profiles.run(lake, d, window, allow_partial=True,
                                                      history_days=h))
                       for d in label_days)

        build(7)  # warm-up: the engine's first queries
        job = {}
        for n in WINDOWS:
            job[n] = build(n)
            print(f"N={n}: {job[n]:.2f} s", flush=True)
        raw, scratch = lake.read(RAW_WATCH_SESSIONS), Lake(Path(tmp) / "naive", lake.spark)
        anchors, live, specs = lake.read(ANCHORS), lake.read(LIVE_SCHEDULE), {}

        def naive_day(day: str) -> None:
            for side, frame in zip(("user", "anchor"), naive_profiles(
                    raw, anchors, live, day, big, h, DEFAULT_LAST_K, DEFAULT_HISTORY_K),
                    strict=True):
                specs[side] = table_spec(f"naive_{side}_profiles", f"one row per {side}: "
                                         "profile statistics from raw sessions", frame.schema)
                scratch.write_partition(frame, specs[side], day)

        naive = timed(lambda: [naive_day(d) for d in label_days])
        print(f"naive N={big}: {naive:.2f} s", flush=True)
        differ = _disagreements(lake, scratch, specs, label_days[-1])
        jvm_days = label_days[:args.jvm_days]
        if jvm_days:  # JVM Spark (delta-spark): the same job over the same lake
            jvm = jvm_step_seconds("profiles", "--start", jvm_days[0], "--end", jvm_days[-1],
                                   "--window", str(big), "--lake", str(lake.root))
            sail = timed(lambda: [profiles.run(lake, d, big, allow_partial=True,
                                               history_days=h) for d in jvm_days])
    rows = [(f"N={n:<3} (Sail, H={h})", f"{job[n]:7.2f} s") for n in WINDOWS]
    rows += [
        (f"ratio N={big} / N=1", f"{job[big] / job[1]:7.2f}x"),
        ("running totals, per history day", f"{chain / chain_days:7.2f} s"),
        (f"naive from raw sessions, N={big}", f"{naive:7.2f} s"),
        (f"ratio naive / daily job at N={big}", f"{naive / job[big]:7.2f}x   "
                                                f"(issue 19's goal: >= 3)"),
        ("rows where naive and job differ (users, anchors)",
         f"{differ['user']}, {differ['anchor']}"),
    ]
    if jvm_days:
        rows += [(f"Sail, N={big}, {len(jvm_days)} label days", f"{sail:7.2f} s"),
                 ("JVM Spark local[2], same days (Delta)", f"{jvm:7.2f} s"),
                 ("ratio JVM / Sail", f"{jvm / sail:7.2f}x")]
    source = f"lake {args.lake}" if args.lake else f"{args.scale} scale"
    report(f"profiles for M={m} label days ({source}, {sessions:,} sessions on the last "
           f"day)", rows)


if __name__ == "__main__":
    main()
