"""Leakage audit: prove from a profile partition's own rows that only days before it fed it.

Each profile row records the first and last source day that contributed to it; the audit
checks, for dt = D, that every last source day is < D and every first source day is within
the recorded window (>= D - window_days). Exit code 1 when any row fails.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features.catalog import ANCHOR_PROFILES, USER_PROFILES
from features.days import day_arg
from jobs.cli import Outcome, job_parser, run_job
from jobs.lake import Lake


def audit_profile_rows(profiles: DataFrame, day: str) -> dict:
    """Counts of rows of partition `day` that read the label day or later, or outside the
    window they declare; `ok` when there are rows and none of them fail."""
    window_start = F.date_format(
        F.date_sub(F.lit(day).cast("date"), F.col("window_days")), "yyyy-MM-dd")
    row = profiles.where(F.col("dt") == day).agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum((F.col("source_max_dt") >= day).cast("int")).alias("rows_reading_day_or_later"),
        F.sum((F.col("source_min_dt") < window_start).cast("int")).alias("rows_before_window"),
        F.max("source_max_dt").alias("max_source_dt"),
        F.min("source_min_dt").alias("min_source_dt"),
        F.min("window_days").alias("window_days"),
    ).collect()[0].asDict()
    for key in ("rows_reading_day_or_later", "rows_before_window"):
        row[key] = row[key] or 0
    row["ok"] = bool(row["rows"]) and not (row["rows_reading_day_or_later"]
                                           or row["rows_before_window"])
    return row


def audit_day(lake: Lake, day: str) -> dict:
    """Audit user_profiles and anchor_profiles of `day`; a missing partition fails."""
    report = {"day": day, "tables": {}}
    for spec in (USER_PROFILES, ANCHOR_PROFILES):
        report["tables"][spec.name] = audit_profile_rows(lake.read_days(spec, day, day), day)
    report["ok"] = all(t["ok"] for t in report["tables"].values())
    return report


def summary_line(report: dict) -> str:
    """`leakage_audit D: ok (user_profiles 120 rows, 0 leaked; anchor_profiles ...)`."""
    tables = "; ".join(
        f"{name} {t['rows']:,} rows, {t['rows_reading_day_or_later']:,} reading day or later,"
        f" {t['rows_before_window']:,} before window" for name, t in report["tables"].items())
    return f"leakage_audit {report['day']}: {'ok' if report['ok'] else 'FAILED'} ({tables})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Check that the profiles of a day were built only from earlier days.")
    parser.add_argument("--date", required=True, type=day_arg, help="profile day, YYYY-MM-DD")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON "
                                                            "before the summary line")
    args = parser.parse_args(argv)

    def work(lake: Lake, _settings) -> Outcome:
        report = audit_day(lake, args.date)
        if args.json:
            print(json.dumps(report, indent=2))
        return Outcome(summary_line(report), 0 if report["ok"] else 1)

    return run_job("leakage_audit", args, work)


if __name__ == "__main__":
    sys.exit(main())
