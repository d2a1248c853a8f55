"""Simulate a live-streaming platform into a landing zone (CLI of `jobs.simulator`).

    python -m jobs.simulate --start 2026-01-01 --days 14 --scale demo --landing ./landing

One progress line per day goes to stderr; one summary line of the run to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from features.days import day_arg, parse_day
from jobs.simulator import SCALES, SimParams, simulate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.simulate",
        description="Simulate a live-streaming platform and write raw daily files to a landing "
                    "zone (watch_sessions, users, anchors, live_schedule).",
    )
    parser.add_argument("--start", required=True, type=day_arg,
                        help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--days", required=True, type=int, help="number of days, 1..366")
    parser.add_argument("--landing", type=Path, default=Path("landing"),
                        help="landing zone root (default: ./landing)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="demo",
                        help="tiny ~2k, demo ~250k, bench ~1M sessions/day (default: demo)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument("--bad-rate", type=float, default=0.01,
                        help="bad lines injected, as a fraction of good sessions, in [0, 0.5]")
    args = parser.parse_args(argv)
    try:  # SimParams owns the ranges; the CLI only words its error as a usage error
        params = SimParams(start=parse_day(args.start, "--start"), days=args.days,
                           scale=args.scale, seed=args.seed, bad_rate=args.bad_rate)
    except ValueError as error:
        parser.error(str(error))
    summary = simulate(params, args.landing, progress=lambda s: print(s, file=sys.stderr,
                                                                      flush=True))
    last = summary["days"][max(summary["days"])]
    sessions = sum(d["sessions"] for d in summary["days"].values())
    bad = sum(d["lines"] - d["sessions"] for d in summary["days"].values())
    print(f"simulated {params.days} days from {args.start} ({params.scale}, seed {params.seed}) "
          f"into {args.landing}: sessions={sessions:,} bad={bad:,} "
          f"users={last['users_total']:,} anchors={last['anchors_total']:,}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
