"""Ingestion throughput (rows/s) of one day on embedded Sail vs JVM Spark local, same data."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import jvm_step_seconds, report, timed
from jobs.simulator import make_landing, read_summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="bench", help="simulator scale (bench: ~1M rows/day)")
    args = parser.parse_args()
    from jobs.engine import spark_session
    from jobs.ingest import ingest_day
    from jobs.lake import Lake

    day = "2026-06-01"
    with tempfile.TemporaryDirectory() as tmp:
        landing = make_landing(Path(tmp), day, 1, args.scale, seed=11)
        lines = read_summary(landing)["days"][day]["lines"]
        # Both engines: the first ingest of a fresh process, engine start-up excluded.
        lake = Lake(Path(tmp) / "sail", spark_session("sail"))
        sail = timed(lambda: ingest_day(lake, landing, day))
        jvm = jvm_step_seconds("ingest", "--start", day, "--end", day, "--landing",
                               str(landing), "--lake", str(Path(tmp) / "jvm"))
    report(f"ingestion of one day ({lines:,} lines, {args.scale} scale)", [
        ("Sail (Delta)", f"{sail:6.2f} s  {lines / sail:>12,.0f} rows/s"),
        ("JVM Spark local[2] (Parquet)", f"{jvm:6.2f} s  {lines / jvm:>12,.0f} rows/s"),
        ("ratio Sail / JVM throughput", f"{jvm / sail:6.2f}x"),
    ])


if __name__ == "__main__":
    main()
