"""Anchor item-CF neighbours as of day D, from the co-watching of days D-W .. D-1 only.

The similarity of anchors i and j is the shrunk cosine of their viewer sets over the window,

    |V_i & V_j| / (sqrt(|V_i| |V_j|) + shrinkage),

and each anchor keeps its `top_n` most similar other anchors (never itself; ties go to the
smaller neighbour id), one row per (anchor_id, neighbour_id) in partition dt=D of
`anchor_neighbours`. Day D itself is never read, like profiles: the neighbours of D are what
a scorer of D may use. The item_cf baseline (training/models/item_cf.py) reads them, and
computes the same numbers in NumPy where the partition is missing.

Co-viewer counts come from a self-join of the window's distinct (user, anchor) pairs on the
user, which costs sum over users of k_u^2 / 2 rows for a user with k_u anchors: one user
with 20,000 anchors (a crawler, a shared account) would emit 2e8 rows alone. So a user votes
with at most `max_user_anchors` (default MAX_USER_ANCHORS = 200) anchors, their most watched
in the window (summed watch seconds, ties to the smaller anchor id); the user's other
anchors are left out of the viewer sets too, so the similarity stays a cosine of the capped
viewer sets. The join then emits at most 200 * 199 / 2 = 19,900 rows per user.

The window may reach before the first day of the history (those days are absent, like a
partial profile window); a day inside the history must be complete per the day ledger
(`daily_stats` built daily_user_anchor), else the job fails naming the days. An empty
window gives an empty partition, recorded as a complete day.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from features import day_status
from features.catalog import ANCHOR_NEIGHBOURS, DAILY_USER_ANCHOR
from features.days import day_arg, window_before
from features.rules import (
    ITEM_CF_MAX_USER_ANCHORS,
    ITEM_CF_SHRINKAGE,
    ITEM_CF_TOP_N,
    ITEM_CF_WINDOW_DAYS,
)
from features.settings import Settings
from jobs.cli import float_in, int_in, job_parser, rows_summary, run_job
from jobs.lake import Lake

log = logging.getLogger(__name__)
JOB = "anchor_neighbours"
INPUT_JOB = "daily_stats"  # writes daily_user_anchor
DEFAULT_WINDOW_DAYS = ITEM_CF_WINDOW_DAYS
DEFAULT_SHRINKAGE = ITEM_CF_SHRINKAGE
DEFAULT_TOP_N = ITEM_CF_TOP_N
MAX_USER_ANCHORS = ITEM_CF_MAX_USER_ANCHORS  # anchors per user that vote (module doc)
_MICROS = 1e6


def voting_pairs(rows: DataFrame, max_user_anchors: int = MAX_USER_ANCHORS) -> DataFrame:
    """Distinct (user_id, anchor_id) of daily_user_anchor `rows`, each user keeping their
    `max_user_anchors` most watched anchors: summed floor(watch seconds * 1e6) over the days,
    an integer sum so that a re-run (and NumPy) ranks the same, ties to the smaller id."""
    micros = F.floor(F.coalesce(F.col("watch_seconds"), F.lit(0.0)) * F.lit(_MICROS))
    per_pair = rows.groupBy("user_id", "anchor_id").agg(F.sum(micros).alias("_micros"))
    most_watched = Window.partitionBy("user_id").orderBy(F.col("_micros").desc(), "anchor_id")
    return (per_pair.withColumn("_rank", F.row_number().over(most_watched))
            .where(F.col("_rank") <= max_user_anchors).select("user_id", "anchor_id"))


def neighbours(pairs: DataFrame, shrinkage: float, top_n: int) -> DataFrame:
    """(anchor_id, neighbour_id, similarity, co_viewers): each anchor's `top_n` most similar
    other anchors by shrunk cosine of viewer sets, ties to the smaller neighbour id.

    Args:
      pairs: (user_id, anchor_id) of the window (duplicates count once); bound each user's
        anchors first (`voting_pairs`): the self-join is quadratic in them.
      shrinkage: added to the cosine's denominator, >= 0.
    """
    pairs = pairs.select("user_id", "anchor_id").distinct()
    viewers = pairs.groupBy("anchor_id").agg(F.count(F.lit(1)).alias("viewers"))
    left = pairs.withColumnRenamed("anchor_id", "i")
    right = pairs.withColumnRenamed("anchor_id", "j")
    # each unordered pair once (i < j): half the join's rows, mirrored after the counting
    co = (left.join(right, "user_id").where(F.col("i") < F.col("j"))
          .groupBy("i", "j").agg(F.count(F.lit(1)).alias("co_viewers"))
          .join(viewers.withColumnRenamed("anchor_id", "i")
                .withColumnRenamed("viewers", "n_i"), "i")
          .join(viewers.withColumnRenamed("anchor_id", "j")
                .withColumnRenamed("viewers", "n_j"), "j"))
    # counts are exact integers: sqrt of their product, then one division, gives the same
    # bits on every engine and in NumPy (training.models.item_cf.anchor_similarity)
    similarity = (F.col("co_viewers").cast("double")
                  / (F.sqrt((F.col("n_i") * F.col("n_j")).cast("double"))
                     + F.lit(float(shrinkage))))
    scored = co.select("i", "j", "co_viewers", similarity.alias("similarity"))
    both = scored.select(F.col("i").alias("anchor_id"), F.col("j").alias("neighbour_id"),
                         "similarity", "co_viewers").unionByName(
        scored.select(F.col("j").alias("anchor_id"), F.col("i").alias("neighbour_id"),
                      "similarity", "co_viewers"))
    nearest = Window.partitionBy("anchor_id").orderBy(F.col("similarity").desc(),
                                                      "neighbour_id")
    return (both.withColumn("_rank", F.row_number().over(nearest))
            .where(F.col("_rank") <= top_n)
            .select("anchor_id", "neighbour_id", "similarity", "co_viewers"))


def check_window(lake: Lake, day: str, window: int) -> tuple[list[str], dict[str, str]]:
    """The window days with data (complete daily_stats days) and their ledger tokens.

    Days never built that precede the first recorded daily_stats day are left out (a
    partial window); any other day that is missing, interrupted or out of date fails,
    naming the days, as does a lake root without tables.
    """
    problem = lake.root_problem()
    if problem:
        raise FileNotFoundError(problem)
    days = window_before(day, window)
    ledger = lake.ledger()
    problems = ledger.problems(INPUT_JOB, days)
    history = ledger.recorded_days(INPUT_JOB)
    start = min(history) if history else None
    built = lake.days(DAILY_USER_ANCHOR)
    inside = {d: p for d, p in problems.items()
              if not (p[0] == day_status.MISSING and d not in built
                      and (start is None or d < start))}
    if inside:
        raise lake.incomplete_input(INPUT_JOB, (DAILY_USER_ANCHOR,), inside,
                                    f"{JOB} {day} window {window}: run jobs.daily_stats "
                                    f"for these days")
    present = [d for d in days if d not in problems]
    if len(present) < window:
        log.warning("%s %s: partial window, %d of %d days", JOB, day, len(present), window)
    return present, {day_status.key(INPUT_JOB, d): ledger.token(INPUT_JOB, d)
                     for d in present}


def _check_settings(window: int, shrinkage: float, top_n: int, max_user_anchors: int) -> None:
    problems = []
    if window < 1:
        problems.append(f"window {window} < 1")
    if not (math.isfinite(shrinkage) and shrinkage >= 0):
        problems.append(f"shrinkage {shrinkage} is not a finite number >= 0")
    if top_n < 1:
        problems.append(f"top_n {top_n} < 1")
    if max_user_anchors < 2:
        problems.append(f"max_user_anchors {max_user_anchors} < 2 (no pair to count)")
    if problems:
        raise ValueError(f"{JOB}: {'; '.join(problems)}")


def run(lake: Lake, day: str, window: int = DEFAULT_WINDOW_DAYS,
        shrinkage: float = DEFAULT_SHRINKAGE, top_n: int = DEFAULT_TOP_N,
        max_user_anchors: int = MAX_USER_ANCHORS) -> dict[str, int]:
    """Build and write partition dt=`day` of anchor_neighbours from daily_user_anchor of the
    `window` days before it; returns the rows written (and the anchors that have any)."""
    _check_settings(window, shrinkage, top_n, max_user_anchors)
    present, inputs = check_window(lake, day, window)
    if present:
        rows = (lake.read_days(DAILY_USER_ANCHOR, present[0], present[-1])
                .where(F.col("dt").isin(present)))
    else:
        rows = lake.spark.createDataFrame(
            [], "user_id bigint, anchor_id bigint, watch_seconds double")
    out = neighbours(voting_pairs(rows, max_user_anchors), shrinkage, top_n).select(
        "*", F.lit(window).alias("window_days"), F.lit(day).alias("dt"))
    lake.begin_day(JOB, day)
    lake.write_partition(out, ANCHOR_NEIGHBOURS, day)
    written = lake.rows(ANCHOR_NEIGHBOURS, day)
    anchors = (lake.read_days(ANCHOR_NEIGHBOURS, day, day).select("anchor_id").distinct()
               .count() if written else 0)
    counts = {ANCHOR_NEIGHBOURS.name: written, "anchors": anchors}
    lake.finish_day(JOB, day, (ANCHOR_NEIGHBOURS,),
                    {**counts, "window": window, "window_days_present": len(present),
                     "shrinkage": shrinkage, "top_n": top_n,
                     "max_user_anchors": max_user_anchors}, inputs)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Build anchor_neighbours as of one day: each anchor's most similar "
                        "anchors by shrunk cosine of co-watching over the W days before it "
                        "(never the day itself).")
    parser.add_argument("--date", required=True, type=day_arg, help="day D, YYYY-MM-DD")
    parser.add_argument("--window", type=int_in(1, 365), default=DEFAULT_WINDOW_DAYS,
                        help=f"W, days before D of co-watching (default {DEFAULT_WINDOW_DAYS})")
    parser.add_argument("--shrinkage", type=float_in(0.0, 1e6), default=DEFAULT_SHRINKAGE,
                        help="added to the cosine's denominator: damps similarities resting "
                             f"on few viewers (default {DEFAULT_SHRINKAGE:g})")
    parser.add_argument("--top-n", type=int_in(1, 1000), default=DEFAULT_TOP_N,
                        help=f"neighbours kept per anchor (default {DEFAULT_TOP_N})")
    parser.add_argument("--max-user-anchors", type=int_in(2, 10_000), default=MAX_USER_ANCHORS,
                        help="a user's most watched anchors that vote: bounds the quadratic "
                             f"self-join (default {MAX_USER_ANCHORS})")
    args = parser.parse_args(argv)

    def work(lake: Lake, settings: Settings) -> str:
        counts = run(lake, args.date, args.window, args.shrinkage, args.top_n,
                     args.max_user_anchors)
        return (f"{JOB} {args.date} (window {args.window}, shrinkage {args.shrinkage:g}, "
                f"top {args.top_n}): {rows_summary({JOB: counts[JOB]})}, "
                f"{counts['anchors']:,} anchors")

    return run_job(JOB, args, work)


if __name__ == "__main__":
    sys.exit(main())
