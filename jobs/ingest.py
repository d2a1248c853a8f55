"""Ingest one day of landing files into the lake.

Inputs (one folder per source and day, JSON lines; see README "Bring your own log"):
  <landing>/watch_sessions/dt=D/  -> raw_watch_sessions (dt = D)
  <landing>/users/dt=D/            -> users (dt = D)         new users of the day
  <landing>/anchors/dt=D/          -> anchors (dt = D)       new anchors of the day
  <landing>/live_schedule/dt=D/    -> live_schedule (dt = D)
Every line is accepted or goes to `quarantine` (dt = D) with its reason and payload;
rows in = accepted + quarantined is checked for each source before the job succeeds.
Ids are validated against the users and anchors known as of D, read from the landing
dimension files of days <= D, so a day can be ingested without other days' runs (backfills
run days in parallel).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from features.catalog import ANCHORS, LIVE_SCHEDULE, QUARANTINE, RAW_WATCH_SESSIONS, USERS
from features.days import day_arg
from features.settings import Settings, load_settings
from features.validation import MAX_WATCH_SECONDS, REQUIRED_SESSION_KEYS
from jobs.cli import job_parser, rows_summary, run_job
from jobs.lake import Lake

log = logging.getLogger(__name__)

SESSIONS_SOURCE = "watch_sessions"
DIMENSIONS = {  # landing source -> (table, id column, attribute columns)
    "users": (USERS, "user_id", ("signup_date", "gender", "age_bucket", "city", "device")),
    "anchors": (ANCHORS, "anchor_id", ("debut_date", "category", "gender", "city")),
    "live_schedule": (LIVE_SCHEDULE, "anchor_id", ()),
}
SOURCES = (SESSIONS_SOURCE, *DIMENSIONS)


def landing_root(flag: str | Path | None = None) -> Path:
    """The landing zone: `--landing` flag, else the settings ($LANDING_ROOT), else ./landing."""
    return load_settings(landing_root=flag).landing_root.resolve()  # defaults: unresolved


def day_folder(landing: Path, source: str, day: str) -> Path:
    return landing / source / f"dt={day}"


def require_landing(landing: Path, day: str) -> None:
    """Fail naming every missing landing folder of `day` (or a missing landing root)."""
    if not landing.is_dir():
        raise FileNotFoundError(f"landing root {landing} does not exist: check --landing or "
                                f"$LANDING_ROOT")
    missing = [str(day_folder(landing, s, day)) for s in SOURCES
               if not day_folder(landing, s, day).is_dir()]
    if missing:
        raise FileNotFoundError(f"landing data for {day} is missing: {', '.join(missing)}")


def _first_reason(checks: Sequence[tuple[str, Column]]) -> Column:
    """The name of the first failing check, or null when every check passes."""
    reason = F.lit(None).cast("string")
    for name, failed in reversed(checks):
        reason = F.when(failed, F.lit(name)).otherwise(reason)
    return reason


def _positive_id(text: Column) -> Column:
    """The id as a bigint when it is a positive integer, else null."""
    value = text.try_cast("bigint")
    return F.when(value > 0, value)


def classify_dimension(lines: DataFrame, id_key: str, attributes: Sequence[str]) -> DataFrame:
    """Parse one dimension file into typed rows with a `reason` (null = accepted).

    One row per input line: `value` (the raw line), `reason`, the id and the attributes.
    A second line for an id already seen that day is a `duplicate`.
    """
    obj = F.from_json("value", "map<string,string>")
    parsed = lines.select("value", obj.alias("obj"))
    raw_id = F.col("obj").getItem(id_key)
    first = Window.partitionBy(id_key).orderBy("value")
    checks = [
        ("unparsable", F.col("obj").isNull()),
        ("null_id", raw_id.isNull()),
        ("malformed_id", _positive_id(raw_id).isNull()),
    ]
    typed = parsed.select(
        "value", _first_reason(checks).alias("reason"), _positive_id(raw_id).alias(id_key),
        *[F.col("obj").getItem(a).alias(a) for a in attributes],
    )
    rank = F.when(F.col("reason").isNull(), F.row_number().over(first))
    return typed.withColumn(
        "reason", F.when(rank > 1, F.lit("duplicate")).otherwise(F.col("reason"))
    )


def classify_sessions(
    lines: DataFrame, day: str, known_users: DataFrame, known_anchors: DataFrame
) -> DataFrame:
    """Validate one day of raw session lines.

    Args:
      lines: one row per input line, column `value`.
      day: the day the file belongs to; start_time must fall on it (UTC).
      known_users / known_anchors: one column `user_id` / `anchor_id`, the ids that exist
        as of `day`.
    Returns:
      One row per input line: `value`, `reason` (null when accepted, else the first rule
      of features.validation.SESSION_REASONS that fails) and the typed columns of
      raw_watch_sessions (session_id, user_id, anchor_id, start_time, watch_seconds,
      gift_value).
    """
    obj = F.col("obj")
    has_all = F.lit(True)
    for key in REQUIRED_SESSION_KEYS:
        has_all = has_all & F.map_contains_key(obj, key)
    raw_user, raw_anchor = obj.getItem("user_id"), obj.getItem("anchor_id")
    raw_gift = obj.getItem("gift_value")
    parsed = lines.select(
        "value",
        F.from_json("value", "map<string,string>").alias("obj"),
    ).select(
        "value", "obj",
        _positive_id(raw_user).alias("user_id"),
        _positive_id(raw_anchor).alias("anchor_id"),
        F.try_to_timestamp(obj.getItem("start_time")).alias("start_time"),
        obj.getItem("watch_seconds").try_cast("double").alias("watch_seconds"),
        F.coalesce(raw_gift.try_cast("double"), F.when(raw_gift.isNull(), 0.0)).alias("gift_value"),
    )
    users = known_users.select("user_id", F.lit(True).alias("_known_user")).distinct()
    anchors = known_anchors.select("anchor_id", F.lit(True).alias("_known_anchor")).distinct()
    joined = parsed.join(users, "user_id", "left").join(anchors, "anchor_id", "left")
    seconds = F.col("watch_seconds")
    checks = [
        ("unparsable", obj.isNull()),
        ("missing_column", ~has_all),
        ("null_id", raw_user.isNull() | raw_anchor.isNull()),
        ("malformed_id", F.col("user_id").isNull() | F.col("anchor_id").isNull()),
        ("bad_timestamp", F.col("start_time").isNull()),
        ("out_of_day", F.date_format("start_time", "yyyy-MM-dd") != F.lit(day)),
        ("bad_duration", seconds.isNull() | F.isnan(seconds) | (seconds < 0)
         | (seconds > MAX_WATCH_SECONDS)),
        ("bad_gift", F.col("gift_value").isNull() | F.isnan("gift_value")
         | (F.col("gift_value") < 0)),
        ("unknown_user", F.col("_known_user").isNull()),
        ("unknown_anchor", F.col("_known_anchor").isNull()),
    ]
    classified = joined.select(
        "value", _first_reason(checks).alias("reason"),
        F.xxhash64("value").alias("session_id"), "user_id", "anchor_id", "start_time",
        "watch_seconds", "gift_value",
    )
    # Identical lines get identical reasons, so only valid copies can be duplicates.
    rank = F.row_number().over(Window.partitionBy("session_id", "value").orderBy("value"))
    return classified.withColumn(
        "reason", F.when(F.col("reason").isNull() & (rank > 1), F.lit("duplicate"))
        .otherwise(F.col("reason")),
    )


def accepted(classified: DataFrame, columns: Sequence[str], day: str) -> DataFrame:
    return classified.where(F.col("reason").isNull()).select(*columns, F.lit(day).alias("dt"))


def rejected(classified: DataFrame, source: str, day: str) -> DataFrame:
    return classified.where(F.col("reason").isNotNull()).select(
        F.lit(source).alias("source"), "reason", F.col("value").alias("payload"),
        F.lit(day).alias("dt"),
    )


def _read_lines(spark: SparkSession, folders: Sequence[Path]) -> DataFrame:
    return spark.read.text([str(f) for f in folders])


def _known_ids(spark: SparkSession, landing: Path, source: str, day: str) -> DataFrame:
    """Valid ids of a dimension from every landing day <= `day`."""
    table, id_key, _ = DIMENSIONS[source]
    folders = sorted(p for p in (landing / source).glob("dt=*") if p.name[3:] <= day)
    classified = classify_dimension(_read_lines(spark, folders), id_key, ())
    return classified.where(F.col("reason").isNull()).select(id_key)


def ingest_day(lake: Lake, landing: Path, day: str) -> dict:
    """Ingest every source of `day`; returns counts per source: lines, accepted, rejects."""
    require_landing(landing, day)
    spark = lake.spark
    rejects = []
    for source, (table, id_key, attributes) in DIMENSIONS.items():
        classified = classify_dimension(
            _read_lines(spark, [day_folder(landing, source, day)]), id_key, attributes)
        lake.write_partition(accepted(classified, (id_key, *attributes), day), table, day)
        rejects.append(rejected(classified, source, day))

    lines = _read_lines(spark, [day_folder(landing, SESSIONS_SOURCE, day)])
    sessions = classify_sessions(lines, day, _known_ids(spark, landing, "users", day),
                                 _known_ids(spark, landing, "anchors", day))
    session_columns = [c for c in RAW_WATCH_SESSIONS.columns if c != "dt"]
    lake.write_partition(accepted(sessions, session_columns, day), RAW_WATCH_SESSIONS, day)
    rejects.append(rejected(sessions, SESSIONS_SOURCE, day))
    quarantine = rejects[0]
    for more in rejects[1:]:
        quarantine = quarantine.unionByName(more)
    lake.write_partition(quarantine, QUARANTINE, day)
    return _reconcile(lake, landing, day)


def _reconcile(lake: Lake, landing: Path, day: str) -> dict:
    """Count what was written against what came in; fail if any line is unaccounted for."""
    tables = {SESSIONS_SOURCE: RAW_WATCH_SESSIONS,
              **{source: spec for source, (spec, _, _) in DIMENSIONS.items()}}
    rejects: dict[str, dict[str, int]] = {s: {} for s in SOURCES}
    for row in (lake.read_days(QUARANTINE, day, day).groupBy("source", "reason").count()
                .collect()):
        rejects[row["source"]][row["reason"]] = row["count"]
    summary = {"day": day, "sources": {}}
    for source, spec in tables.items():
        lines = _read_lines(lake.spark, [day_folder(landing, source, day)]).count()
        kept = lake.read_days(spec, day, day).count()
        quarantined = sum(rejects[source].values())
        if lines != kept + quarantined:
            raise RuntimeError(f"{source} {day}: {lines} lines in but {kept} accepted + "
                               f"{quarantined} quarantined; rows were lost or duplicated")
        summary["sources"][source] = {"lines": lines, "accepted": kept,
                                      "quarantined": dict(sorted(rejects[source].items()))}
    return summary


def summary_line(summary: dict) -> str:
    """`ingest D: raw_watch_sessions 2,101 rows (21 quarantined), users ..., quarantine N rows`."""
    tables = {SESSIONS_SOURCE: RAW_WATCH_SESSIONS,
              **{source: spec for source, (spec, _, _) in DIMENSIONS.items()}}
    parts, quarantined = [], 0
    for source, counts in summary["sources"].items():
        rejects = sum(counts["quarantined"].values())
        quarantined += rejects
        parts.append(rows_summary({tables[source].name: counts["accepted"]})
                     + (f" ({rejects:,} quarantined)" if rejects else ""))
    parts.append(rows_summary({QUARANTINE.name: quarantined}))
    return f"ingest {summary['day']}: {', '.join(parts)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Validate one day of landing files into raw_watch_sessions, the "
                        "dimension tables and quarantine.")
    parser.add_argument("--date", required=True, type=day_arg, help="the day, YYYY-MM-DD")
    parser.add_argument("--landing", help="landing root (default: $LANDING_ROOT or ./landing)")
    args = parser.parse_args(argv)

    def work(lake: Lake, settings: Settings) -> str:
        landing = landing_root(args.landing) if args.landing else settings.landing_root.resolve()
        return summary_line(ingest_day(lake, landing, args.date))

    return run_job("ingest", args, work)


if __name__ == "__main__":
    sys.exit(main())
