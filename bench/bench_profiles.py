"""Profiles for M label days: window N=30 vs N=1, against a naive recomputation from raw
sessions (issue 19's goal: the daily job at N=30 >= 3x faster), and embedded Sail vs JVM
Spark on the same job."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from bench.common import jvm_step_seconds, report, timed
from features.days import add_days, days_between, window_before
from features.rules import BOUNCE_SECONDS
from jobs.cli import int_in
from jobs.schemas import table_spec
from jobs.simulator import make_landing


def naive_user_profiles(raw: DataFrame, day: str, window: int) -> DataFrame:
    """The user-side window statistics straight from raw sessions (what the daily partial
    aggregates avoid): every profile day re-reads its N raw days."""
    days = window_before(day, window)
    sessions = raw.where(F.col("dt").between(days[0], days[-1]))
    return sessions.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("sessions"), F.sum("watch_seconds").alias("watch_seconds"),
        F.countDistinct("dt").alias("active_days"),
        F.countDistinct("anchor_id").alias("distinct_anchors"),
        F.sum((F.col("watch_seconds") <= BOUNCE_SECONDS).cast("long")).alias("bounces"),
        F.sum("gift_value").alias("gift_value"), F.max("dt").alias("source_max_dt"),
    ).withColumn("dt", F.lit(day))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--label-days", type=int_in(1, 365), default=30, help="M")
    parser.add_argument("--window", type=int_in(1, 365), default=30, help="N")
    parser.add_argument("--jvm-days", type=int_in(1, 365), default=10,
                        help="label days the JVM comparison runs (JVM Spark is the slow part)")
    args = parser.parse_args()
    from jobs import daily_stats, ingest, profiles
    from jobs.engine import spark_session
    from jobs.lake import Lake

    start = "2026-03-01"
    history = args.window + args.label_days - 1
    label_days = days_between(add_days(start, args.window), add_days(start, history))
    with tempfile.TemporaryDirectory() as tmp:
        landing = make_landing(Path(tmp), start, history, args.scale, seed=11)
        print(f"simulated {history} days ({args.scale} scale)", flush=True)
        lake = Lake(Path(tmp) / "lake", spark_session("sail"))
        for day in days_between(start, add_days(start, history - 1)):
            ingest.ingest_day(lake, landing, day)
            daily_stats.run(lake, day)
        print("ingested, daily partials built", flush=True)
        sessions = lake.read_days(ingest.RAW_WATCH_SESSIONS, start, start).count()

        def build(window: int) -> list[float]:
            return [timed(lambda d=d: profiles.run(lake, d, window, allow_partial=True))
                    for d in label_days]

        small = sum(build(1))
        print(f"N=1: {small:.2f} s", flush=True)
        per_day = build(args.window)
        large = sum(per_day)
        print(f"N={args.window}: {large:.2f} s", flush=True)
        raw = lake.read(ingest.RAW_WATCH_SESSIONS)
        scratch = Lake(Path(tmp) / "naive", lake.spark)
        naive_spec = table_spec("naive_user_profiles", "user window stats from raw sessions",
                                naive_user_profiles(raw, label_days[0], args.window).schema)
        naive = timed(lambda: [scratch.write_partition(
            naive_user_profiles(raw, d, args.window), naive_spec, d) for d in label_days])
        print(f"naive: {naive:.2f} s", flush=True)
        # JVM Spark (delta-spark): the same profile job over the same lake (a lake is
        # engine-neutral; the job rewrites the profile days Sail built, with their records)
        jvm_days = label_days[:args.jvm_days]
        jvm = jvm_step_seconds("profiles", "--start", jvm_days[0], "--end", jvm_days[-1],
                               "--window", str(args.window), "--lake", str(lake.root))
        sail = sum(per_day[:len(jvm_days)])
    m, n = args.label_days, args.window
    report(f"profiles for M={m} label days ({args.scale} scale, ~{sessions:,} sessions/day)", [
        ("N=1   (Sail)", f"{small:7.2f} s"),
        (f"N={n}  (Sail)", f"{large:7.2f} s"),
        (f"ratio N={n} / N=1", f"{large / small:7.2f}x"),
        (f"naive user stats from raw, N={n}", f"{naive:7.2f} s"),
        ("ratio naive (users only) / incremental (users + anchors)",
         f"{naive / large:7.2f}x   (issue 19's goal: >= 3)"),
        (f"Sail, N={n}, first {len(jvm_days)} label days", f"{sail:7.2f} s"),
        ("JVM Spark local[2], same days (Delta)", f"{jvm:7.2f} s"),
        ("ratio JVM / Sail", f"{jvm / sail:7.2f}x"),
    ])


if __name__ == "__main__":
    main()
