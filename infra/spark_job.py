"""spark-submit entry point for the job modules: runs `python -m MODULE ARGS...` inside the
driver that spark-submit starts, so any job runs on a cluster unchanged:

    spark-submit --master spark://127.0.0.1:7077 --jars <Delta jars> \\
        infra/spark_job.py jobs.run_days --start 2026-01-01 --end 2026-01-03

(`infra/spark_cluster.sh submit MODULE ARGS...` adds the master, jars and settings.) A
module is given by name instead of a path so that it runs with the package on sys.path,
as `python -m` runs it. Several jobs may share one application (one driver, executors kept
warm), in order, separated by `--then`; the first that fails ends it with its exit code:

    infra/spark_job.py jobs.run_days --start D --end D --then jobs.training_set --end D ...
"""

from __future__ import annotations

import runpy
import sys

THEN = "--then"


def split_jobs(argv: list[str]) -> list[list[str]]:
    """`MODULE ARGS... [--then MODULE ARGS...]...` as one argv per job."""
    jobs: list[list[str]] = [[]]
    for arg in argv:
        if arg == THEN:
            jobs.append([])
        else:
            jobs[-1].append(arg)
    if any(not job or job[0].startswith("-") for job in jobs):
        sys.exit("usage: spark-submit [options] infra/spark_job.py MODULE [ARGS...] "
                 "[--then MODULE [ARGS...]]...")
    return jobs


def run_module(argv: list[str]) -> int:
    """Run one job module as __main__; its exit code (0 when it returns normally)."""
    sys.argv = list(argv)
    try:
        runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
    except SystemExit as done:
        code = done.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    return 0


def main() -> None:
    for job in split_jobs(sys.argv[1:]):
        code = run_module(job)
        if code:
            sys.exit(code)


if __name__ == "__main__":
    main()
