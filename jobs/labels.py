"""Labels of day D: per (user, anchor) watched on D, positive for a long total watch,
negative for a bounce, dropped in between (ambiguous intent)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features.catalog import ANCHORS, LABELS, RAW_WATCH_SESSIONS, USERS
from features.days import day_arg
from features.rules import MAX_THRESHOLD_SECONDS, LabelRule
from jobs.cli import float_in, job_parser, rows_summary, run_job
from jobs.fixed_point import fixed_point
from jobs.lake import Lake

JOB = "labels"


def build_labels(
    sessions: DataFrame, users: DataFrame, anchors: DataFrame, day: str, rule: LabelRule
) -> DataFrame:
    """One row per (user_id, anchor_id) of `day` with a clear label.

    Args:
      sessions: raw_watch_sessions rows of `day`.
      users / anchors: the dimension tables (dt = first appearance), to flag new entities.
    Returns:
      label 1 when the pair's total watch on `day` >= rule.positive_seconds, 0 when <=
      rule.negative_seconds; watch_seconds (a weight input), sessions, gift_value, and
      is_new_user / is_new_anchor (first appeared on `day`).
    """
    # Totals are compared in whole milliseconds (fixed point): a float sum of 10.1, 10.2 and
    # 9.7 is 29.999999999999996 and would miss a 30 s threshold the log itself meets.
    millis = fixed_point("watch_seconds", 1000)
    pairs = sessions.groupBy("user_id", "anchor_id").agg(
        F.sum("watch_seconds").alias("watch_seconds"),
        F.sum(millis).alias("_millis"),
        F.count(F.lit(1)).alias("sessions"),
        F.sum("gift_value").alias("gift_value"),
    )
    label = (F.when(F.col("_millis") >= rule.positive_millis, 1)
             .when(F.col("_millis") <= rule.negative_millis, 0))
    new_users = users.groupBy("user_id").agg((F.min("dt") == day).alias("is_new_user"))
    new_anchors = anchors.groupBy("anchor_id").agg((F.min("dt") == day).alias("is_new_anchor"))
    return (pairs.withColumn("label", label).where(F.col("label").isNotNull()).drop("_millis")
            .join(new_users, "user_id", "left").join(new_anchors, "anchor_id", "left")
            .fillna({"is_new_user": False, "is_new_anchor": False})
            .withColumn("dt", F.lit(day)))


def run(lake: Lake, day: str, rule: LabelRule | None = None) -> dict[str, int]:
    """Build and write the labels of `day`; returns the rows written."""
    rule = rule or LabelRule()
    inputs = lake.require_complete("ingest", (RAW_WATCH_SESSIONS,), [day],
                                   f"run jobs.ingest --date {day} first")
    sessions = lake.read_days(RAW_WATCH_SESSIONS, day, day)
    users = lake.read(USERS).where(F.col("dt") <= day)
    anchors = lake.read(ANCHORS).where(F.col("dt") <= day)
    lake.begin_day(JOB, day)
    lake.write_partition(build_labels(sessions, users, anchors, day, rule), LABELS, day)
    counts = {LABELS.name: lake.rows(LABELS, day)}
    lake.finish_day(JOB, day, (LABELS,), {**counts, "positive_seconds": rule.positive_seconds,
                                          "negative_seconds": rule.negative_seconds}, inputs)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Build the labels of one day from its watch sessions.")
    parser.add_argument("--date", required=True, type=day_arg, help="label day, YYYY-MM-DD")
    parser.add_argument("--positive-seconds", type=float_in(0.0, MAX_THRESHOLD_SECONDS),
                        default=LabelRule.positive_seconds,
                        help="total watch >= this is a positive (default %(default)s)")
    parser.add_argument("--negative-seconds", type=float_in(0.0, MAX_THRESHOLD_SECONDS),
                        default=LabelRule.negative_seconds,
                        help="total watch <= this is a negative (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        rule = LabelRule(args.positive_seconds, args.negative_seconds)
    except ValueError as error:
        parser.error(str(error))
    return run_job("labels", args, lambda lake, _: (
        f"labels {args.date}: {rows_summary(run(lake, args.date, rule))}"))


if __name__ == "__main__":
    sys.exit(main())
