"""The device check runs end to end in its dry mode (tiny data, CPU), so it cannot rot
between the tasks that get a GPU; its pieces that need a GPU are checked on fixed input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.device_check import parse_smi, plan

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_dry_run_writes_every_figure(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OUT"}
    done = subprocess.run([sys.executable, "-m", "bench.device_check", "--dry-run", "--out",
                           str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert report["mode"] == "dry" and report["blocked"] is None
    assert report["data"]["scale"] == "tiny" and report["data"]["train_rows"] > 0
    pipeline = report["input_pipeline"]
    assert pipeline["raw_examples_per_sec"] > 0 and pipeline["encoded_examples_per_sec"] > 0
    runs = report["runs"]
    assert [r["device"] for r in runs] == ["cpu", "cpu"]  # dry: no GPU run, even with one
    assert {r["strategy"] for r in runs} == {"default", "mirrored"}
    for run in runs:
        assert run["status"] == "ok", run
        assert run["steps"] == report["settings"]["cpu_steps"]
        assert run["examples_per_sec"] > 0 and run["seconds"] > 0
        assert math.isfinite(run["final_loss"]) and run["final_loss"] > 0
        assert 0.0 <= run["recall@10"] <= run["recall@50"] <= 1.0
    assert report["precisions"] == ["float32", "mixed_float16"]
    assert "device check (dry)" in done.stdout and "cpu mirrored f16 xla" in done.stdout


def test_nvidia_smi_samples_parse_with_or_without_header_and_units():
    # the query's csv: a header, then "util %, memory MiB" every 500 ms
    text = ("utilization.gpu [%], memory.used [MiB]\n"
            "0 %, 512 MiB\n87 %, 20480 MiB\n95 %, 20992 MiB\n")
    assert parse_smi(text) == {"gpu_util_mean": 60.7, "gpu_util_max": 95.0,
                               "gpu_mem_max_mib": 20992.0, "gpu_samples": 3}  # 182 / 3
    assert parse_smi("40, 100\n60, 300\n")["gpu_util_mean"] == 50.0  # noheader,nounits
    assert parse_smi("") == {} and parse_smi("No devices were found\n") == {}


def test_plan_covers_each_strategy_and_precision_that_fits():
    gpu = plan(gpus=1, two_workers=True, dry=False)
    on_gpu = [r for r in gpu if r.device == "gpu"]
    assert {r.strategy for r in on_gpu} == {"default", "mirrored", "multi_worker"}
    assert {r.precision for r in on_gpu} == {"float32", "mixed_bfloat16", "mixed_float16"}
    assert all(r.xla for r in on_gpu if r.precision != "float32")
    assert [r.workers for r in on_gpu if r.strategy == "multi_worker"] == [2]
    assert {r.name for r in gpu if r.device == "cpu"} == {"cpu f32", "cpu bf16 xla"}
    assert all(r.device == "cpu" for r in plan(gpus=0, two_workers=False, dry=False))
    assert "gpu 2 workers f32" not in {r.name for r in plan(1, two_workers=False, dry=False)}
