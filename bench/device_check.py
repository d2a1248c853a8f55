"""Device check (issue 18): the trainer on a GPU against the CPU, measured in one run.

    python -m bench.device_check [--dry-run] [--out DIR] [--steps N] [--two-workers]

Makes a training set with the simulator through the real jobs (Sail, Delta) in a temporary
lake; measures the input pipeline alone (Delta files -> pyarrow -> tf.data, raw and encoded
as the loop feeds it); then trains a fixed number of steps per setting, each in its own
process (`python -m training.train`): on the GPU with the one-device and mirrored strategies
in float32, and mirrored in mixed bfloat16 and float16 with XLA, plus two local workers
sharing the GPU when it has the memory; and on the CPU alone (CUDA_VISIBLE_DEVICES="") in
float32 and bfloat16 for comparison. Per run: examples/s (median of the logging windows
after the first, which holds tracing and XLA compilation), GPU utilisation and memory
sampled by `nvidia-smi -lms 500` while it ran, final loss, and recall@10 and @50 of its
export on the held-out day (users sampled). One table is printed; everything goes to
device_check.json under --out, else under $OUT when set.

Dry mode (--dry-run): tiny data, CPU only, few steps, a small model; the CPU test runs it so
the script cannot rot. The module installs nothing in either mode: infra/device_check.sh
prepares the device machine, then runs it.

Budget of a real run on one H200 + 16 cores, under 8 min: data at demo scale (4 days,
350 k training rows) took 117 s on the busy 2-core development machine (simulator 18 s,
ingest ~17 s a day, single-threaded); the input pipeline ~10 s; each of the 7 runs ~30 s
(process start, trace or XLA compile, 300 steps of 4096, export) plus ~5 s of evaluation;
the two CPU runs take 100 steps. Those GPU figures are estimates: no GPU has run this yet.
A run that would start after --budget-s (default 420 s) is skipped and listed as skipped.
Scale defaults to demo, not bench: at bench scale (1 M sessions a day) ingest sends one
143 MB Spark Connect message, over the client's 128 MB cap, and the simulator alone takes
~40 s a day (both measured 2026-11-30).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

START = "2026-03-01"
RUN_ID = "device_check"
SMI_QUERY = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv",
             "-lms", "500"]
GPU_MEMORY_PER_WORKER_MIB = 8 * 1024  # two workers share the GPU when it has twice this


@dataclass(frozen=True)
class Mode:
    scale: str
    days: int  # simulated days; profiles of the first ones are partial
    window: int
    set_days: int  # label days of the training set, the last one held out
    steps: int
    cpu_steps: int
    batch_size: int
    eval_users: int
    model: dict = field(default_factory=dict)


DRY = Mode("tiny", 3, 2, 2, steps=6, cpu_steps=6, batch_size=64, eval_users=500,
           model={"embedding_dim": 8, "hidden_units": [16], "num_negatives": 8})
REAL = Mode("demo", 4, 2, 3, steps=300, cpu_steps=100, batch_size=4096, eval_users=20_000)


@dataclass(frozen=True)
class Run:
    name: str
    device: str  # "gpu" or "cpu" (the CPU alone: CUDA_VISIBLE_DEVICES="")
    strategy: str
    precision: str = "float32"
    xla: bool = False
    workers: int = 1


def plan(gpus: int, two_workers: bool, dry: bool) -> list[Run]:
    """The runs of one check: GPU settings when a GPU is visible, CPU ones always (dry: the
    mirrored strategy with loss scaling and XLA on the CPU, the paths a GPU run takes)."""
    runs = []
    if gpus:
        runs += [Run("gpu one-device f32", "gpu", "default"),
                 Run("gpu mirrored f32", "gpu", "mirrored"),
                 Run("gpu mirrored bf16 xla", "gpu", "mirrored", "mixed_bfloat16", True),
                 Run("gpu mirrored f16 xla", "gpu", "mirrored", "mixed_float16", True)]
        if two_workers:
            runs.append(Run("gpu 2 workers f32", "gpu", "multi_worker", workers=2))
    runs.append(Run("cpu f32", "cpu", "default"))
    runs.append(Run("cpu mirrored f16 xla", "cpu", "mirrored", "mixed_float16", True) if dry
                else Run("cpu bf16 xla", "cpu", "default", "mixed_bfloat16", True))
    if two_workers and not gpus:
        runs.append(Run("cpu 2 workers f32", "cpu", "multi_worker", workers=2))
    return runs


def parse_smi(text: str) -> dict:
    """Mean and max utilisation (%) and max memory (MiB) of `nvidia-smi --query-gpu=
    utilization.gpu,memory.used --format=csv` output, with or without header and units."""
    util, memory = [], []
    for line in text.splitlines():
        numbers = re.findall(r"\d+(?:\.\d+)?", line)
        if len(numbers) >= 2 and "utilization" not in line:
            util.append(float(numbers[0]))
            memory.append(float(numbers[1]))
    if not util:
        return {}
    return {"gpu_util_mean": round(statistics.fmean(util), 1), "gpu_util_max": max(util),
            "gpu_mem_max_mib": max(memory), "gpu_samples": len(util)}


class GpuSampler:
    """nvidia-smi sampling every 500 ms in a background process, while a run trains."""

    def __enter__(self) -> GpuSampler:
        self.proc = (subprocess.Popen(SMI_QUERY, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True)
                     if shutil.which("nvidia-smi") else None)
        self.figures: dict = {}
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            out, _ = self.proc.communicate(timeout=10)
            self.figures = parse_smi(out)


def machine() -> dict:
    """What this machine offers: CPUs, TensorFlow's build, the GPUs TF and nvidia-smi see."""
    import tensorflow as tf

    build = tf.sysconfig.get_build_info()
    info = {"cpus": os.cpu_count(), "tensorflow": tf.__version__,
            "cuda_build": bool(build.get("is_cuda_build")),
            "cuda_version": build.get("cuda_version"), "cudnn_version": build.get("cudnn_version"),
            "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
            "nvidia_smi": None, "gpu_memory_mib": None}
    if shutil.which("nvidia-smi"):
        done = subprocess.run(["nvidia-smi"], capture_output=True, text=True, check=False)
        info["nvidia_smi"] = done.stdout or done.stderr
        total = subprocess.run(["nvidia-smi", "--query-gpu=memory.total",
                                "--format=csv,noheader,nounits"], capture_output=True,
                               text=True, check=False).stdout.split()
        info["gpu_memory_mib"] = float(total[0]) if total else None
    return info


def make_training_set(root: Path, mode: Mode) -> dict:
    """Landing files from the simulator, the day jobs and the training set, on Sail."""
    from features.days import add_days, days_between
    from jobs import training_set
    from jobs.engine import spark_session
    from jobs.lake import Lake
    from jobs.run_days import run_days
    from jobs.simulator import make_landing

    started = time.perf_counter()
    landing = make_landing(root, START, mode.days, mode.scale, seed=5)
    simulated = time.perf_counter() - started
    end = add_days(START, mode.days - 1)
    lake = Lake(root / "lake", spark_session("sail"))
    run_days(lake, days_between(START, end), ["ingest", "daily_stats", "profiles", "labels"],
             window=mode.window, allow_partial=True, landing=str(landing))
    manifest = training_set.run(lake, end, mode.set_days, mode.window, RUN_ID)
    return {"lake": str(lake.root), "scale": mode.scale, "days": mode.days,
            "train_rows": manifest.counts.train.rows, "simulate_seconds": round(simulated, 1),
            "seconds": round(time.perf_counter() - started, 1)}


def pipeline_rates(lake: str, mode: Mode, batches: int) -> dict:
    """Examples/s of the tf.data pipeline alone: raw columns, and encoded as trained on."""
    from training.models.two_tower.config import TwoTowerConfig
    from training.models.two_tower.trainable import TwoTowerTrainable, prepare
    from training.pipeline import make_dataset
    from training.reader import TrainingSet

    data = TrainingSet(lake, RUN_ID)
    config = TwoTowerConfig(**mode.model)
    trainable = TwoTowerTrainable(prepare(data, config), config, 7, mode.batch_size)
    rates = {"batch_size": mode.batch_size}
    for name, transform in (("raw", None), ("encoded", trainable.encode)):
        iterator = iter(make_dataset(data.files("train"), trainable.columns, mode.batch_size,
                                     seed=0, id_list_width=config.last_k, epochs=10**6,
                                     transform=transform))
        for _ in range(3):  # file opens, tracing
            next(iterator)
        started = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        rates[f"{name}_examples_per_sec"] = round(
            batches * mode.batch_size / (time.perf_counter() - started))
    return rates


def holdout_sample(lake: str, max_users: int) -> dict:
    """The first held-out day as `training.evaluate` reads it, for a sample of its users."""
    from training.reader import TrainingSet

    data = TrainingSet(lake, RUN_ID)
    day = data.manifest.holdout_days[0]
    user_columns = [n for n in data.schema("validation").names if n.startswith("user_")]
    anchor_columns = [n for n in data.schema("candidates").names if n.startswith("anchor_")]
    pairs = data.read("validation", sorted({"anchor_id", "label", "dt", *user_columns}))
    candidates = data.read("candidates", sorted({"dt", *anchor_columns}))
    today = pairs["dt"] == day
    user_ids = np.unique(pairs["user_id"][today])
    if len(user_ids) > max_users:
        user_ids = np.sort(np.random.default_rng(0).choice(user_ids, max_users, replace=False))
    today &= np.isin(pairs["user_id"], user_ids)
    _, first = np.unique(pairs["user_id"][today], return_index=True)
    live = candidates["dt"] == day
    return {"day": day, "user_ids": user_ids,
            "users": {c: pairs[c][today][first] for c in user_columns},
            "anchors": {c: candidates[c][live] for c in anchor_columns},
            "pairs": {c: pairs[c][today] for c in ("user_id", "anchor_id", "label")}}


def recall(export: Path, sample: dict) -> dict[str, float]:
    """recall@10 and recall@50 of an export on the sampled held-out day."""
    from training.evaluate import evaluate_scores
    from training.models import model

    scorer = model("two_tower").load(export)
    users, anchors = sample["users"], sample["anchors"]
    scores = scorer.score(sample["day"], users, anchors)
    metrics = evaluate_scores(sample["user_ids"], anchors["anchor_id"], scores, sample["pairs"],
                              ~users["user_has_history"].astype(bool),
                              ~anchors["anchor_has_history"].astype(bool))
    return {k: float(metrics["overall"][k]) for k in ("recall@10", "recall@50")}


def train_once(run: Run, mode: Mode, lake: str, work: Path, timeout: float) -> dict:
    """One training run in its own process; its figures, or why it failed."""
    out = work / re.sub(r"\W+", "_", run.name)
    out.mkdir(parents=True)
    steps = mode.steps if run.device == "gpu" else mode.cpu_steps
    settings = {"batch_size": mode.batch_size, "max_steps": steps, "epochs": 1000,
                "log_every": max(1, steps // 5), "strategy": run.strategy,
                "precision": run.precision, "xla": run.xla, **mode.model}
    (out / "settings.json").write_text(json.dumps(settings))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    if run.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    command = [sys.executable, "-m", "training.train", "--lake", lake, "--run-id", RUN_ID,
               "--out", str(out), "--config", str(out / "settings.json"),
               "--workers", str(run.workers)]
    started = time.perf_counter()
    with GpuSampler() as sampler:
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True,
                                  timeout=timeout, check=False)
            failed = done.returncode and f"exit {done.returncode}: {done.stderr[-2000:]}"
        except subprocess.TimeoutExpired:
            failed = f"timed out after {timeout:.0f} s"
    result = {"seconds": round(time.perf_counter() - started, 1), **sampler.figures}
    if failed:
        return {**result, "status": "failed", "error": failed}
    history = json.loads((out / "history.json").read_text())
    rates = [h["examples_per_sec"] for h in history[1:]] or [history[0]["examples_per_sec"]]
    summary = json.loads((out / "summary.json").read_text())
    return {**result, "status": "ok", "steps": summary["steps"],
            "replicas": summary["replicas"], "tf_strategy": summary.get("strategy"),
            "examples_per_sec": round(statistics.median(rates)),
            "final_loss": history[-1]["loss"], "export": str(out / "export")}


def table(report: dict) -> str:
    runs = report["runs"]
    base = next((r.get("examples_per_sec") for r in runs if r["name"] == "cpu f32"), None)
    pipe = report["input_pipeline"]
    lines = [f"input pipeline, batch {pipe['batch_size']}: raw "
             f"{pipe['raw_examples_per_sec']:,} ex/s, encoded "
             f"{pipe['encoded_examples_per_sec']:,} ex/s",
             f"{'run':<24}{'status':<9}{'ex/s':>11}{'x cpu':>7}{'util %':>13}"
             f"{'mem MiB':>9}{'loss':>8}{'r@10':>7}{'r@50':>7}"]
    for r in runs:
        rate = r.get("examples_per_sec")
        util = (f"{r['gpu_util_mean']:.0f} (max {r['gpu_util_max']:.0f})"
                if "gpu_util_mean" in r else "n/a")

        def fmt(value, spec):
            return format(value, spec) if value is not None else "-"

        lines.append(f"{r['name']:<24}{r['status']:<9}{fmt(rate, ',.0f'):>11}"
                     f"{fmt(rate / base if rate and base else None, '.2f'):>7}{util:>13}"
                     f"{fmt(r.get('gpu_mem_max_mib'), '.0f'):>9}"
                     f"{fmt(r.get('final_loss'), '.3f'):>8}{fmt(r.get('recall@10'), '.3f'):>7}"
                     f"{fmt(r.get('recall@50'), '.3f'):>7}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="tiny data, CPU, few steps")
    parser.add_argument("--out", help="folder of device_check.json (default: $OUT if set)")
    parser.add_argument("--steps", type=int, help="training steps of a GPU run")
    parser.add_argument("--cpu-steps", type=int, help="training steps of a CPU run")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--scale", choices=("tiny", "demo", "bench"))
    parser.add_argument("--two-workers", action="store_true",
                        help="also two local workers (on the GPU: default when memory allows)")
    parser.add_argument("--budget-s", type=float, default=420,
                        help="start no run after this many seconds")
    args = parser.parse_args(argv)
    mode = DRY if args.dry_run else REAL
    mode = Mode(**{**asdict(mode), **{k: v for k, v in
                                      (("steps", args.steps), ("cpu_steps", args.cpu_steps),
                                       ("batch_size", args.batch_size), ("scale", args.scale))
                                      if v is not None}})
    started = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    info = machine()
    tf.config.set_visible_devices([], "GPU")  # this process only reads; the runs train
    if info["nvidia_smi"]:
        print(info["nvidia_smi"], flush=True)
    gpus = 0 if args.dry_run else len(info["gpus"])
    memory = info["gpu_memory_mib"] or 0
    runs = plan(gpus, args.two_workers or (gpus > 0 and memory >= 2 * GPU_MEMORY_PER_WORKER_MIB),
                args.dry_run)
    report = {"mode": "dry" if args.dry_run else "real", "settings": asdict(mode),
              "machine": info, "blocked": None if gpus or args.dry_run else
              "TensorFlow sees no GPU here: the GPU runs were not made"}
    with tempfile.TemporaryDirectory(prefix="device_check_") as tmp:
        work = Path(tmp)
        report["data"] = make_training_set(work, mode)
        lake = report["data"]["lake"]
        report["input_pipeline"] = pipeline_rates(lake, mode, 20 if args.dry_run else 200)
        sample = holdout_sample(lake, mode.eval_users)
        report["runs"] = []
        for run in runs:
            left = args.budget_s - (time.perf_counter() - started)
            if left <= 0:
                result = {"status": "skipped", "error": "over --budget-s"}
            else:
                result = train_once(run, mode, lake, work / "runs", max(left, 60))
            if result["status"] == "ok":
                result.update(recall(Path(result.pop("export")), sample))
            report["runs"].append({**asdict(run), **result})
            print(f"{run.name}: {json.dumps(result)}", flush=True)
    report["precisions"] = sorted({r["precision"] for r in report["runs"]
                                   if r["status"] == "ok"})
    report["seconds"] = round(time.perf_counter() - started, 1)
    print("\n== device check (" + report["mode"] + ")\n" + table(report), flush=True)
    if report["blocked"]:
        print(f"blocked: {report['blocked']}")
    out = args.out or os.environ.get("OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "device_check.json").write_text(json.dumps(report, indent=2, default=str))
    if any(r["status"] == "failed" for r in report["runs"]):
        return 1
    return 3 if report["blocked"] else 0


if __name__ == "__main__":
    sys.exit(main())
