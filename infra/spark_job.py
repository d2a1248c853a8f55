"""spark-submit entry point for the job modules: runs `python -m MODULE ARGS...` inside the
driver that spark-submit starts, so any job runs on a cluster unchanged:

    spark-submit --master spark://127.0.0.1:7077 --jars <Delta jars> \\
        infra/spark_job.py jobs.run_days --start 2026-01-01 --end 2026-01-03

(`infra/spark_cluster.sh submit MODULE ARGS...` adds the master, jars and settings.) A
module is given by name instead of a path so that it runs with the package on sys.path,
as `python -m` runs it.
"""

from __future__ import annotations

import runpy
import sys


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit("usage: spark-submit [options] infra/spark_job.py MODULE [ARGS...]")
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
