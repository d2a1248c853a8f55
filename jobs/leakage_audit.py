"""Leakage audit: prove from a profile partition's own rows that only days before it fed it.

Each profile row records the first and last source day that contributed to it; the audit
checks, for dt = D, that every last source day is < D and every first source day is within
the recorded window (>= D - window_days); user rows also record the last day of their
long-horizon history (`history_max_dt`), which must be < D too. Exit code 1 when any row
fails.

The profiles of D must also be a complete day (`features.day_status`): the day record of
jobs.profiles for D exists and is current, and each partition holds the rows that record
counted. So an empty day (no activity in the window, zero profile rows recorded) passes,
while a day whose profiles were never built, were interrupted, are out of date or were
rewritten since (row counts that differ from the record) fails with a one-line `problem`
(exit code 2 from the command line: the input is not there, no row was audited as leaked).
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

JOB = "profiles"  # the job whose day records say which profile days are complete


def audit_profile_rows(profiles: DataFrame, day: str, recorded_rows: int | None = None
                       ) -> dict:
    """Counts of rows of partition `day` that read the label day or later, or outside the
    window they declare. `ok` when none of them fail and the partition holds
    `recorded_rows` rows (the count of the profiles job's day record: 0 for an empty day),
    or, without a record to go by, at least one row; `problem` says why not otherwise."""
    window_start = F.date_format(
        F.date_sub(F.lit(day).cast("date"), F.col("window_days")), "yyyy-MM-dd")
    latest = F.col("source_max_dt")
    if "history_max_dt" in profiles.columns:  # user profiles: the long history as well
        latest = F.greatest(latest, F.col("history_max_dt"))
    row = profiles.where(F.col("dt") == day).agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum((latest >= day).cast("int")).alias("rows_reading_day_or_later"),
        F.sum((F.col("source_min_dt") < window_start).cast("int")).alias("rows_before_window"),
        F.max("source_max_dt").alias("max_source_dt"),
        F.min("source_min_dt").alias("min_source_dt"),
        F.min("window_days").alias("window_days"),
    ).collect()[0].asDict()
    for key in ("rows_reading_day_or_later", "rows_before_window"):
        row[key] = row[key] or 0
    row["recorded_rows"] = recorded_rows
    row["problem"] = _row_problem(row)
    row["ok"] = row["problem"] is None
    return row


def _row_problem(row: dict) -> str | None:
    leaked = [f"{row[k]:,} {what}" for k, what in (
        ("rows_reading_day_or_later", "rows reading the day or later"),
        ("rows_before_window", "rows reading before their window")) if row[k]]
    if leaked:
        return f"{' and '.join(leaked)} of {row['rows']:,}"
    recorded = row["recorded_rows"]
    if recorded is None and not row["rows"]:
        return "no rows and no day record of jobs.profiles that counts them"
    if recorded is not None and row["rows"] != recorded:
        return (f"{row['rows']:,} rows but the profiles day record counted {recorded:,}: "
                f"the partition was rewritten outside jobs.profiles")
    return None


def audit_day(lake: Lake, day: str) -> dict:
    """Audit user_profiles and anchor_profiles of `day`. A day whose profiles are not a
    complete day (no current day record of jobs.profiles) fails with `problem` set (one
    line, naming the tables and what to run); a complete day is judged on its rows against
    the counts of its record, so an empty day passes."""
    tables = (USER_PROFILES, ANCHOR_PROFILES)
    state, detail = lake.ledger().state(JOB, day)
    problem = None
    recorded: dict = {}
    if state is not None:
        problem = str(lake.incomplete_input(JOB, tables, {day: (state, detail)},
                                            f"run jobs.profiles --date {day}, then audit again"))
    else:
        recorded = lake.ledger_record(JOB, day) or {}
    report: dict = {"day": day, "complete": problem is None, "problem": problem, "tables": {}}
    for spec in tables:
        expected = recorded.get(spec.name)
        expected = expected if isinstance(expected, int) else None
        if lake.exists(spec):
            audit = audit_profile_rows(lake.read_days(spec, day, day), day, expected)
        else:  # no profiles at all yet: nothing to read
            audit = {"rows": 0, "rows_reading_day_or_later": 0, "rows_before_window": 0,
                     "max_source_dt": None, "min_source_dt": None, "window_days": None,
                     "recorded_rows": expected}
            audit["problem"] = _row_problem(audit)
            audit["ok"] = audit["problem"] is None
        if problem is not None:
            audit["problem"], audit["ok"] = problem, False
        report["tables"][spec.name] = audit
    report["ok"] = all(t["ok"] for t in report["tables"].values())
    if not report["ok"] and problem is None:
        report["problem"] = "; ".join(f"{name}: {t['problem']}"
                                      for name, t in report["tables"].items() if t["problem"])
    return report


def summary_line(report: dict) -> str:
    """`leakage_audit D: ok (user_profiles 120 rows, 0 reading day or later, ...)`; a
    failed audit ends with its problem."""
    tables = "; ".join(
        f"{name} {t['rows']:,} rows, {t['rows_reading_day_or_later']:,} reading day or later,"
        f" {t['rows_before_window']:,} before window" for name, t in report["tables"].items())
    problem = "" if report["ok"] or not report.get("problem") else f": {report['problem']}"
    return (f"leakage_audit {report['day']}: {'ok' if report['ok'] else 'FAILED'} "
            f"({tables}){problem}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Check that the profiles of a day were built only from earlier days.")
    parser.add_argument("--date", required=True, type=day_arg, help="profile day, YYYY-MM-DD")
    parser.add_argument("--json", action="store_true", help="print the whole report as JSON "
                                                            "before the summary line")
    args = parser.parse_args(argv)

    def work(lake: Lake, _settings) -> Outcome:
        report = audit_day(lake, args.date)
        if not report["complete"]:  # not a day to audit yet: exit 2, naming what to run
            raise FileNotFoundError(report["problem"])
        if args.json:
            print(json.dumps(report, indent=2))
        return Outcome(summary_line(report), 0 if report["ok"] else 1)

    return run_job("leakage_audit", args, work)


if __name__ == "__main__":
    sys.exit(main())
