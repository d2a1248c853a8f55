"""Start W local training workers as one MultiWorkerMirroredStrategy cluster (TF_CONFIG)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Sequence


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(ports: Sequence[int], index: int) -> str:
    workers = [f"127.0.0.1:{p}" for p in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


def launch_workers(workers: int, train_args: Sequence[str], timeout: float = 3600) -> None:
    """Run `python -m training.train <train_args> --strategy multi_worker` in `workers`
    processes; raises if any worker fails (the others are stopped)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    ports = free_ports(workers)
    procs = []
    for index in range(workers):
        env = {**os.environ, "TF_CONFIG": tf_config(ports, index)}
        # one intra-op thread pool per process is plenty on a small machine
        env.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, (os.cpu_count() or 2) // workers)))
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "training.train", *train_args, "--strategy", "multi_worker"],
            env=env))
    try:
        codes = [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    if any(codes):
        raise RuntimeError(f"training workers exited with codes {codes}")
