"""Run pipeline steps over a range of days in one process (one engine start).

For each day in order: ingest -> daily_stats -> profiles and anchor_neighbours (as of the
day, from the days before it) -> labels. Airflow runs the same steps as separate tasks;
this driver is for the command line, benchmarks and tests.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence

from features.days import day_arg, days_between
from features.rules import DEFAULT_HISTORY_DAYS, DEFAULT_HISTORY_K, DEFAULT_LAST_K, LabelRule
from features.settings import Settings
from features.validation import TIME_FORMATS
from jobs import anchor_neighbours, daily_stats, ingest, labels, profiles
from jobs.cli import int_in, job_parser, rows_summary, run_job
from jobs.lake import Lake

STEPS = ("ingest", "daily_stats", "profiles", "anchor_neighbours", "labels")


def _ingested(summary: dict) -> dict[str, int]:
    """Rows written per table by one ingest (accepted rows, and quarantine)."""
    counts = {ingest.RAW_WATCH_SESSIONS.name: summary["sources"]["watch_sessions"]["accepted"]}
    for source, (spec, _, _) in ingest.DIMENSIONS.items():
        counts[spec.name] = summary["sources"][source]["accepted"]
    counts[ingest.QUARANTINE.name] = sum(sum(s["quarantined"].values())
                                         for s in summary["sources"].values())
    return counts


def run_days(lake: Lake, days: Sequence[str], steps: Sequence[str], window: int,
             last_k: int = DEFAULT_LAST_K, allow_partial: bool = False,
             landing: str | None = None, rule: LabelRule | None = None,
             time_format: str = "iso", history_days: int = DEFAULT_HISTORY_DAYS,
             history_k: int = DEFAULT_HISTORY_K) -> dict[str, int]:
    """Run `steps` for each day of `days`, in order, printing one progress line per step;
    returns the rows written per table, summed over the days."""
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown steps {unknown}; choose from {', '.join(STEPS)}")
    actions = {
        "ingest": lambda d: _ingested(ingest.ingest_day(lake, ingest.landing_root(landing), d,
                                                        time_format)),
        "daily_stats": lambda d: daily_stats.run(lake, d),
        "profiles": lambda d: profiles.run(lake, d, window, last_k, allow_partial,
                                           history_days, history_k),
        "anchor_neighbours": lambda d: anchor_neighbours.run(lake, d),
        "labels": lambda d: labels.run(lake, d, rule),
    }
    totals: Counter[str] = Counter()
    for day in days:
        for step in (s for s in STEPS if s in steps):
            started = time.perf_counter()
            counts = actions[step](day)
            totals.update(counts)
            print(f"{day} {step:<11} {time.perf_counter() - started:6.2f}s "
                  f"{rows_summary(counts)}", flush=True)
    return dict(totals)


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Run pipeline steps for every day of a range, in order.")
    parser.add_argument("--start", required=True, type=day_arg, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", required=True, type=day_arg, help="last day, YYYY-MM-DD")
    parser.add_argument("--steps", default=",".join(STEPS),
                        help=f"comma-separated subset of {','.join(STEPS)} (default: all)")
    parser.add_argument("--window", type=int_in(1, 365),
                        help="profile window N in days (default: the settings' window_days)")
    parser.add_argument("--last-k", type=int_in(1, 200),
                        help="recent anchors per user (default: the settings' last_k)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="profiles may use a window cut short by the start of history")
    parser.add_argument("--landing", help="landing root for ingest")
    parser.add_argument("--time-format", choices=TIME_FORMATS, default="iso",
                        help="how start_time is written in the landing files (default iso)")
    args = parser.parse_args(argv)
    try:
        days = days_between(args.start, args.end)
    except ValueError as error:
        parser.error(str(error))

    def work(lake: Lake, settings: Settings) -> str:
        totals = run_days(lake, days, args.steps.split(","), args.window or settings.window_days,
                          args.last_k or settings.last_k, args.allow_partial,
                          args.landing or str(settings.landing_root),
                          time_format=args.time_format, history_days=settings.history_days,
                          history_k=settings.history_k)
        return f"run_days {args.start}..{args.end} ({len(days)} days): {rows_summary(totals)}"

    return run_job("run_days", args, work)


if __name__ == "__main__":
    sys.exit(main())
