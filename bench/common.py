"""Shared set-up of the benchmarks: timers, JVM runs, reports (data: jobs.simulator)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a service the benchmark starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def jvm_step_seconds(step: str, *args: str) -> float:
    """Run jobs.run_days on JVM Spark in a child process; the summed time of `step` as the
    job itself measured it (JVM start-up excluded)."""
    from jobs.engine import jvm_child_env

    done = subprocess.run([sys.executable, "-m", "jobs.run_days", "--steps", step, *args],
                          env=jvm_child_env(), capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    times = re.findall(rf"^\S+ {step}\s+([0-9.]+)s", done.stdout, flags=re.M)
    return sum(float(t) for t in times)


def report(title: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n== {title}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
