"""Training set of one run: M label days joined with the profiles of the same day; the
last day(s) held out as test days, the V days before them as validation days (they choose:
early stopping, tuning), the rest shuffled globally (piles, below). Validation and test
rows share the `validation` table (told apart by dt and the manifest), never shuffled in.

Profiles of dt = D were built from D-N .. D-1, so joining on the same dt cannot leak.
The global shuffle is the two-stage Rao-Sandelius shuffle, split between this job and the
reader. Here, stage one: each training row goes to a pile by a deterministic hash of
(seed, dt, user_id, anchor_id), kept in the rows as `shuffle_key` (pile = `shard` = key
mod P, one folder and one file per pile). A hash, never rand(): a retried task must place
a row where its first attempt did (SPARK-23207). Piles are written unordered, in the order
rows reach the writer: no sort is paid. Stage two is `training.reader`: it permutes each
pile completely in memory and reads the piles in a random order per (seed, epoch), which
makes every epoch a uniform random permutation. P is derived from the row count so that
a pile holds at most about MAX_PILE_ROWS rows.

Layout under the lake: training_sets/<run_id>/{train,validation,candidates} tables and
manifest.json, written last (a run without a manifest is incomplete).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features import day_status
from features.catalog import (
    ANCHOR_PROFILES,
    ANCHORS,
    LABELS,
    LIVE_SCHEDULE,
    USER_PROFILES,
    USERS,
    TableSpec,
)
from features.days import add_days, day_arg, days_between
from features.examples import (
    ANCHOR_CATEGORICAL,
    CANDIDATES,
    TRAIN_EXAMPLES,
    USER_CATEGORICAL,
    VALIDATION_EXAMPLES,
)
from features.manifest import Counts, SplitCounts, Tables, TrainingSetManifest, run_folder
from jobs.cli import int_in, job_parser, rows_summary, run_job
from jobs.example_columns import anchor_feature_columns, user_feature_columns
from jobs.lake import Lake

# The memory bound of a pile, which the reader holds whole: at the demo's 52 columns an
# Arrow row is about 750 bytes (measured), so a pile is at most ~75 MB of the columns read
# and about twice that while it is permuted.
MAX_PILE_ROWS = 100_000
# Training workers split the train files between them (training.loop): at least 8 piles
# (as many as the shards before piles) so up to 8 workers each get whole piles.
MIN_PILES = 8


def examples(labels: DataFrame, users: DataFrame, anchors: DataFrame,
             categories: Sequence[str]) -> DataFrame:
    """One row per labelled (user, anchor, dt): the label with both profiles of that dt.

    Inner joins: a label whose user or anchor has no profile that day is a data error the
    data gate counts (profiles cover every known entity), not a row to invent.
    """
    return (labels.join(users.select(*user_feature_columns(categories)), ["user_id", "dt"])
            .join(anchors.select(*anchor_feature_columns()), ["anchor_id", "dt"]))


def pile_count(rows: int, min_piles: int = 1) -> int:
    """Piles for `rows` rows: enough that the expected pile holds at most MAX_PILE_ROWS
    (hashing spreads rows evenly: a pile of 100,000 expected rows varies by about 0.3%)."""
    return max(min_piles, math.ceil(rows / MAX_PILE_ROWS), 1)


def assign_piles(df: DataFrame, seed: int, piles: int) -> DataFrame:
    """Add shuffle_key (the row's hash), shard (its pile) and pos (null: a pile has no
    order; the column stays until features.examples drops it), with each pile in one
    partition, so one task writes it as one file. See the module doc."""
    key = F.xxhash64(F.lit(seed), "dt", "user_id", "anchor_id")
    return (df.withColumn("shuffle_key", key)
            .withColumn("shard", F.pmod("shuffle_key", F.lit(piles)).cast("int"))
            .withColumn("pos", F.lit(None).cast("int"))
            .repartition(piles, "shard"))


def _table_version(lake: Lake, spec: TableSpec) -> int | None:
    if lake.format != "delta":
        return None
    from deltalake import DeltaTable

    return DeltaTable(str(lake.path(spec))).version()


def _vocabulary(df: DataFrame, column: str) -> list[str]:
    return sorted(r[0] for r in df.select(column).distinct().collect() if r[0] is not None)


def run(lake: Lake, end: str, days: int, window: int, run_id: str, holdout_days: int = 1,
        seed: int = 7, shards: int = MIN_PILES, validation_days: int = 0
        ) -> TrainingSetManifest:
    """Build the training set of `run_id` and write its manifest last; returns it.

    The train table has at least `shards` piles, more when its rows need them to keep
    each pile under MAX_PILE_ROWS; the manifest's `shards` is the count used."""
    base = run_folder(run_id)  # a safe folder name, checked before any work
    if not 1 <= holdout_days < days:
        raise ValueError(f"holdout days must be in [1, {days - 1}], got {holdout_days}")
    if not 0 <= validation_days < days - holdout_days:
        raise ValueError(f"validation days must be in [0, {days - holdout_days - 1}] (at "
                         f"least one training day is left), got {validation_days}")
    label_days = days_between(add_days(end, -(days - 1)), end)
    kept_out = holdout_days + validation_days
    train_days, holdout = label_days[:-kept_out], label_days[-holdout_days:]
    validation = label_days[-kept_out:-holdout_days] if validation_days else []
    hint = ("a training set needs every label day and its profiles: run jobs.run_days (or "
            "jobs.profiles and jobs.labels) for these days")
    ledger = lake.ledger()
    wanted = [(job, tables, ledger.problems(job, label_days))
              for job, tables in (("labels", (LABELS,)),
                                  ("profiles", (USER_PROFILES, ANCHOR_PROFILES)))]
    if any(problems for _, _, problems in wanted):
        raise lake.incomplete_inputs(wanted, hint)
    # A label day without labels (no sessions, or none outside the dropped band) is a
    # valid day with zero examples: kept in the range and named in the manifest.
    label_rows = {d: (lake.ledger_record("labels", d) or {}).get("labels", 0)
                  for d in label_days}
    empty_days = [d for d in label_days if label_rows[d] == 0]
    users = lake.read_days(USER_PROFILES, label_days[0], end)
    anchors = lake.read_days(ANCHOR_PROFILES, label_days[0], end)
    windows = {r[0] for r in users.select("window_days").distinct().collect()}
    if windows != {window}:
        raise ValueError(f"profiles of {label_days[0]}..{end} were built with windows "
                         f"{sorted(windows)}, not the requested {window}: rebuild them")
    categories = _vocabulary(lake.read(ANCHORS), "category")
    rows = examples(lake.read_days(LABELS, label_days[0], end), users, anchors, categories)

    train_spec = TRAIN_EXAMPLES.renamed(f"{base}/train")
    train = rows.where(F.col("dt").isin(train_days))
    # The label counts bound the train rows (a label without profiles is no row) and are
    # in the day records already: no pass over the data to size the piles.
    piles = pile_count(sum(label_rows[d] for d in train_days), shards)
    lake.overwrite_table(assign_piles(train, seed, piles), train_spec, partition_by="shard")
    validation_spec = VALIDATION_EXAMPLES.renamed(f"{base}/validation")
    lake.overwrite_table(rows.where(F.col("dt").isin([*validation, *holdout]))
                         .orderBy("dt", "user_id", "anchor_id"), validation_spec)
    live = lake.read_days(LIVE_SCHEDULE, (validation or holdout)[0], holdout[-1])
    candidates_spec = CANDIDATES.renamed(f"{base}/candidates")
    lake.overwrite_table(anchors.join(live, ["anchor_id", "dt"])
                         .select(*anchor_feature_columns()), candidates_spec)

    def count(spec: TableSpec) -> SplitCounts:
        out = lake.read(spec).groupBy().agg(F.count(F.lit(1)).alias("rows"),
                                            F.avg("label").alias("positive_rate")).collect()[0]
        return SplitCounts(rows=out["rows"], positive_rate=out["positive_rate"])

    manifest = TrainingSetManifest(
        run_id=run_id, end=end, days=days, window=window, seed=seed, shards=piles,
        train_days=train_days, validation_days=validation, holdout_days=holdout,
        empty_days=empty_days,
        tables=Tables(train=train_spec.name, validation=validation_spec.name,
                      candidates=candidates_spec.name),
        format=lake.format,
        counts=Counts(train=count(train_spec), validation=count(validation_spec),
                      candidates=lake.rows(candidates_spec)),
        source_versions={spec.name: _table_version(lake, spec)
                         for spec in (LABELS, USER_PROFILES, ANCHOR_PROFILES, ANCHORS, USERS,
                                      LIVE_SCHEDULE)},
        inputs={day_status.key(job, d): ledger.token(job, d)
                for job, _, _ in wanted for d in label_days},
        vocabularies={
            "category": categories,
            **{f"user_{c}": _vocabulary(lake.read(USERS), c) for c in USER_CATEGORICAL},
            **{f"anchor_{c}": _vocabulary(lake.read(ANCHORS), c) for c in ANCHOR_CATEGORICAL},
        },
    )
    manifest.save(lake.root)  # atomic, and last: readers see a run only once it exists
    return manifest


def summary_line(manifest: TrainingSetManifest) -> str:
    counts = manifest.counts
    return (f"training_set {manifest.run_id}: " + rows_summary({
        "train": counts.train.rows, "validation": counts.validation.rows,
        "candidates": counts.candidates}) + f" (under {run_folder(manifest.run_id)})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Assemble a globally shuffled training set from M label days.")
    parser.add_argument("--end", required=True, type=day_arg, help="last label day D")
    parser.add_argument("--days", type=int_in(2, 365), required=True, help="M label days")
    parser.add_argument("--window", type=int_in(1, 365), required=True,
                        help="N: the profile window the profiles must have been built with")
    parser.add_argument("--run-id", help="name of the run (default: end-D_M-m_N-n)")
    parser.add_argument("--holdout-days", type=int_in(1, 364), default=1,
                        help="test days: the last label days, for evaluation and the gate")
    parser.add_argument("--validation-days", type=int_in(0, 363), default=1,
                        help="validation days before the test days, for early stopping and "
                             "tuning (default 1; 0: none)")
    parser.add_argument("--seed", type=int_in(0, 2**63 - 1), default=7)
    parser.add_argument("--shards", type=int_in(1, 4096), default=MIN_PILES,
                        help=f"the least number of train piles (default {MIN_PILES}); more "
                             f"are used when needed to keep a pile under {MAX_PILE_ROWS:,} "
                             "rows")
    args = parser.parse_args(argv)
    run_id = args.run_id or f"end-{args.end}_M-{args.days}_N-{args.window}"
    return run_job("training_set", args, lambda lake, _: summary_line(run(
        lake, args.end, args.days, args.window, run_id, args.holdout_days, args.seed,
        args.shards, args.validation_days)))


if __name__ == "__main__":
    sys.exit(main())
