"""Run pipeline steps over a range of days in one process (one engine start).

For each day in order: ingest -> daily_stats -> profiles (as of the day, from the days
before it) -> labels. Airflow runs the same steps as separate tasks; this driver is for the
command line, benchmarks and tests.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from features.days import days_between
from features.rules import DEFAULT_LAST_K, DEFAULT_WINDOW_DAYS, LabelRule
from jobs import daily_stats, ingest, labels, profiles
from jobs.cli import int_in, iso_day, job_parser, run_job
from jobs.lake import Lake

STEPS = ("ingest", "daily_stats", "profiles", "labels")


def run_days(lake: Lake, days: Sequence[str], steps: Sequence[str], window: int,
             last_k: int = DEFAULT_LAST_K, allow_partial: bool = False,
             landing: str | None = None, rule: LabelRule | None = None) -> None:
    """Run `steps` for each day of `days`, in order, printing one progress line per step."""
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ValueError(f"unknown steps {unknown}; choose from {', '.join(STEPS)}")
    actions = {
        "ingest": lambda d: ingest.ingest_day(lake, ingest.landing_root(landing), d),
        "daily_stats": lambda d: daily_stats.run(lake, d),
        "profiles": lambda d: profiles.run(lake, d, window, last_k, allow_partial),
        "labels": lambda d: labels.run(lake, d, rule),
    }
    for day in days:
        for step in (s for s in STEPS if s in steps):
            started = time.perf_counter()
            result = actions[step](day)
            extra = ""
            if step == "ingest":
                source = result["sources"]["watch_sessions"]
                extra = (f" accepted={source['accepted']} "
                         f"quarantined={sum(source['quarantined'].values())}")
            print(f"{day} {step:<11} {time.perf_counter() - started:6.2f}s{extra}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Run pipeline steps for every day of a range, in order.")
    parser.add_argument("--start", required=True, type=iso_day, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", required=True, type=iso_day, help="last day, YYYY-MM-DD")
    parser.add_argument("--steps", default=",".join(STEPS),
                        help=f"comma-separated subset of {','.join(STEPS)} (default: all)")
    parser.add_argument("--window", type=int_in(1, 365), default=DEFAULT_WINDOW_DAYS,
                        help="profile window N in days")
    parser.add_argument("--last-k", type=int_in(1, 200), default=DEFAULT_LAST_K)
    parser.add_argument("--allow-partial", action="store_true",
                        help="profiles may use a window cut short by the start of history")
    parser.add_argument("--landing", help="landing root for ingest")
    args = parser.parse_args(argv)
    try:
        days = days_between(args.start, args.end)
    except ValueError as error:
        parser.error(str(error))
    return run_job("run_days", args, lambda lake: run_days(
        lake, days, args.steps.split(","), args.window, args.last_k, args.allow_partial,
        args.landing))


if __name__ == "__main__":
    sys.exit(main())
