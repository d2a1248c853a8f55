"""The daily feature jobs on the three engines, Delta everywhere: embedded Sail, JVM Spark
local[2] (delta-spark) and the two-worker standalone cluster of infra/spark_cluster.sh
(spark-submit, delta-spark).

Two simulated days are built on each engine, in a fresh lake, by one `jobs.run_days`
process (ingest, daily_stats, profiles, labels); the first day warms the engine up (JVM
start, code generation) and gives the second its profile history, and the second day is the
one measured, each step as the job itself times it (engine start-up excluded). Every engine
must write the same row counts. Prints seconds per step and the ratios to Sail.

    .venv/bin/python -m bench.bench_engines                 # bench scale (~1M sessions/day)
    .venv/bin/python -m bench.bench_engines --scale demo    # ~250k sessions/day, quicker
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import free_port, report
from jobs.engine import jvm_child_env
from jobs.simulator import SCALES, make_landing

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = str(ROOT / "infra" / "spark_cluster.sh")
START = "2026-06-01"
DAYS = ["2026-06-01", "2026-06-02"]
STEPS = ("ingest", "daily_stats", "profiles", "labels")
ENGINES = ("sail", "jvm", "cluster")
LABELS = {"sail": "embedded Sail", "jvm": "JVM local[2]", "cluster": "cluster 2 workers"}



def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "PIPELINE_ENGINE",
                         "LAKE_FORMAT")}


def _step_times(stdout: str, day: str) -> dict[str, float]:
    return {step: float(seconds) for step, seconds in
            re.findall(rf"^{day} (\w+)\s+([0-9.]+)s", stdout, flags=re.M)}


def _run(argv: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="bench",
                        help="simulated size of a day (default bench, ~1M sessions)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"comma-separated subset of {','.join(ENGINES)}")
    parser.add_argument("--window", type=int, default=2, help="profile window in days")
    args = parser.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)}")

    with tempfile.TemporaryDirectory(prefix="bench_engines_") as tmp:
        started = time.perf_counter()
        landing = make_landing(Path(tmp), START, len(DAYS), scale=args.scale, seed=7)
        print(f"simulated {len(DAYS)} {args.scale} days in "
              f"{time.perf_counter() - started:.0f}s", flush=True)
        job = ["--start", DAYS[0], "--end", DAYS[-1], "--steps", ",".join(STEPS),
               "--window", str(args.window), "--allow-partial", "--landing", str(landing)]
        times: dict[str, dict[str, float]] = {}
        summaries: dict[str, str] = {}
        cluster_env = {**_base_env(), "SPARK_CLUSTER_DIR": str(Path(tmp) / "cluster"),
                       "SPARK_MASTER_PORT": str(free_port()),
                       "SPARK_MASTER_WEBUI_PORT": str(free_port()),
                       "SPARK_CONNECT_PORT": str(free_port()),
                       "SPARK_CLUSTER_CONNECT": "0",  # the job alone on the workers
                       "SPARK_EXECUTOR_MEMORY": "3g", "SPARK_WORKER_MEMORY": "4g"}
        for engine in engines:
            lake = ["--lake", str(Path(tmp) / f"lake_{engine}")]
            print(f"running {LABELS[engine]} ...", flush=True)
            if engine == "sail":
                out = _run([sys.executable, "-m", "jobs.run_days", *job, *lake], _base_env(),
                           "Sail")
            elif engine == "jvm":
                out = _run([sys.executable, "-m", "jobs.run_days", *job, *lake],
                           jvm_child_env(), "JVM local")
            else:
                _run(["bash", CLUSTER, "start"], cluster_env, "cluster start")
                try:
                    out = _run(["bash", CLUSTER, "submit", "jobs.run_days", *job, *lake],
                               cluster_env, "cluster")
                finally:
                    subprocess.run(["bash", CLUSTER, "stop"], env=cluster_env, cwd=ROOT,
                                   capture_output=True, check=False)
            times[engine] = _step_times(out, DAYS[-1])
            summaries[engine] = out.strip().splitlines()[-1].split(": ", 1)[-1]

    counts = set(summaries.values())
    if len(counts) != 1:
        raise SystemExit("engines wrote different row counts:\n" + "\n".join(
            f"{e}: {s}" for e, s in summaries.items()))
    rows = []
    for step in (*STEPS, "total"):
        seconds = {e: (sum(times[e].values()) if step == "total" else times[e][step])
                   for e in engines}
        cells = "  ".join(f"{LABELS[e]} {seconds[e]:7.2f}s" for e in engines)
        if "sail" in engines:
            cells += "".join(f"  {e}/sail {seconds[e] / seconds['sail']:5.2f}x"
                             for e in engines if e != "sail")
        rows.append((step, cells))
    report(f"daily feature jobs, day {DAYS[-1]} ({args.scale} scale, Delta; "
           f"rows: {summaries[engines[0]]})", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
