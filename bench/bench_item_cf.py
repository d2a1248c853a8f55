"""Anchor item-CF neighbours on a simulated lake: the Spark job `jobs.anchor_neighbours` on
embedded Sail (and JVM Spark local[2] with --jvm, Delta) against the NumPy similarity of
the item_cf baseline, for the day after the last simulated day (window W, partial when the
simulation is shorter)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import report, timed
from features.catalog import ANCHOR_NEIGHBOURS, DAILY_USER_ANCHOR
from features.days import add_days, days_between
from jobs.cli import int_in
from jobs.simulator import make_landing

START = "2026-03-01"


def jvm_child(root: str, day: str, window: int, runs: int) -> None:
    """In a child process on JVM Spark (see bench.common.jvm_step_seconds): time the job."""
    from jobs import anchor_neighbours
    from jobs.engine import spark_session
    from jobs.lake import Lake

    lake = Lake(root, spark_session("jvm"))
    for _ in range(runs):
        seconds = timed(lambda: anchor_neighbours.run(lake, day, window))
        print(f"seconds {seconds:.3f}", flush=True)


def jvm_seconds(root: Path, day: str, window: int, runs: int) -> list[float]:
    """The job's time on JVM Spark with delta-spark over the same Delta lake (a lake is
    engine-neutral; JVM start-up excluded)."""
    from jobs.engine import jvm_child_env

    done = subprocess.run([sys.executable, "-m", "bench.bench_item_cf", "--jvm-child",
                           str(root), day, str(window), str(runs)],
                          env=jvm_child_env(), capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return [float(line.split()[1]) for line in done.stdout.splitlines()
            if line.startswith("seconds ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="demo", help="tiny, demo or bench")
    parser.add_argument("--days", type=int_in(1, 365), default=14, help="simulated days")
    parser.add_argument("--window", type=int_in(1, 365), default=28, help="W")
    parser.add_argument("--runs", type=int_in(1, 20), default=2,
                        help="runs of the job per engine (the first warms it up)")
    parser.add_argument("--jvm", action="store_true", help="also on JVM Spark (needs Java)")
    parser.add_argument("--jvm-child", nargs=4, metavar=("ROOT", "DAY", "W", "RUNS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.jvm_child:
        root, day, window, runs = args.jvm_child
        jvm_child(root, day, int(window), int(runs))
        return
    from jobs import anchor_neighbours
    from jobs.engine import spark_session
    from jobs.lake import Lake
    from jobs.run_days import run_days
    from training.models.history import read_before
    from training.models.item_cf import ItemCFScorer, ItemCFSettings

    days = days_between(START, add_days(START, args.days - 1))
    day = add_days(days[-1], 1)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        landing = make_landing(Path(tmp), START, args.days, args.scale, seed=11)
        print(f"simulated {args.days} days ({args.scale} scale)", flush=True)
        lake = Lake(Path(tmp) / "lake", spark_session("sail"))
        run_days(lake, days, ["ingest", "daily_stats"], window=1, landing=str(landing))
        history = read_before(lake.root, DAILY_USER_ANCHOR, day, ["user_id", "anchor_id"],
                              days=args.window)
        pairs = np.unique(np.stack([history["user_id"], history["anchor_id"]]).astype(np.int64),
                          axis=1)
        per_user = np.unique(pairs[0], return_counts=True)[1]
        capped = np.minimum(per_user, anchor_neighbours.MAX_USER_ANCHORS)
        sail = [timed(lambda: anchor_neighbours.run(lake, day, args.window))
                for _ in range(args.runs)]
        written = lake.rows(ANCHOR_NEIGHBOURS, day)
        settings = ItemCFSettings(window_days=args.window)
        numpy_fit = ItemCFScorer(lake.root, "delta", settings.model_copy(
            update={"use_table": False}))
        numpy = timed(lambda: numpy_fit.fit(day))
        table_fit = ItemCFScorer(lake.root, "delta", settings)
        table = timed(lambda: table_fit.fit(day))
        assert table_fit.fit(day).source == ANCHOR_NEIGHBOURS.name
        gap = abs(table_fit.fit(day).similarity - numpy_fit.fit(day).similarity).max()
        rows += [
            ("window days present", f"{min(args.window, args.days)} of {args.window}"),
            ("distinct (user, anchor) pairs", f"{pairs.shape[1]:,} "
                                              f"({len(per_user):,} users)"),
            ("anchors per user: mean / max", f"{per_user.mean():.1f} / {per_user.max()}"),
            ("self-join rows (i < j), capped", f"{int((capped * (capped - 1) // 2).sum()):,}"),
            ("neighbour rows written", f"{written:,}"),
            *[(f"Sail job, run {i + 1}", f"{s:7.2f} s") for i, s in enumerate(sail)],
            ("NumPy similarity (item_cf fallback fit)", f"{numpy:7.2f} s"),
            ("item_cf fit reading the table", f"{table:7.2f} s"),
            ("max |table - NumPy| similarity", f"{gap:.1e}"),
        ]
        if args.jvm:
            jvm = jvm_seconds(lake.root, day, args.window, args.runs)
            rows += [(f"JVM Spark local[2] (Delta), run {i + 1}", f"{s:7.2f} s")
                     for i, s in enumerate(jvm)]
    report(f"anchor_neighbours for {day} ({args.scale} scale, {args.days} days, "
           f"window {args.window}, top {anchor_neighbours.DEFAULT_TOP_N})", rows)


if __name__ == "__main__":
    main()
