"""Model quality and cost at demo scale: every registered model and baseline on the same
training set, in one run. Prints training time per model, scoring time per baseline, the
evaluation time, and recall@50 / NDCG@10 on the test days (validation days choose, test
days judge), beside the oracle and the content-only oracle when the simulator saved them.

Builds its own simulated lake under --work (kept, so a second run with --reuse only
retrains); `--seeds` repeats the whole comparison for several simulator seeds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.common import report


class Timed:
    """A scorer that adds up the seconds its calls take."""

    def __init__(self, scorer) -> None:
        self.scorer, self.seconds = scorer, 0.0
        self.finite = True

    def score(self, day, users, anchors):
        started = time.perf_counter()
        out = self.scorer.score(day, users, anchors)
        self.seconds += time.perf_counter() - started
        self.finite = getattr(self.scorer, "finite", True)
        return out


def build_lake(work: Path, scale: str, start: str, days: int, seed: int, window: int):
    from features.days import add_days, days_between
    from jobs.engine import spark_session
    from jobs.lake import Lake
    from jobs.run_days import STEPS, run_days
    from jobs.simulator import make_landing

    landing = make_landing(work, start, days, scale, seed=seed)
    lake = Lake(work / "lake", spark_session("sail"))
    run_days(lake, days_between(start, add_days(start, days - 1)), STEPS, window=window,
             allow_partial=True, landing=str(landing))
    return lake, landing


def compare(work: Path, args: argparse.Namespace, seed: int) -> dict:
    from features.days import add_days
    from jobs import training_set
    from jobs.engine import spark_session
    from jobs.lake import Lake
    from training.evaluate import MODEL, EvalSettings, baseline_scorers, evaluate
    from training.models import model
    from training.reader import TrainingSet
    from training.train import train_run

    end = add_days(args.start, args.days - 1)
    started = time.perf_counter()
    if args.reuse and (work / "lake").is_dir():
        lake, landing = Lake(work / "lake", spark_session("sail")), work / "landing"
    else:
        lake, landing = build_lake(work, args.scale, args.start, args.days, seed, args.window)
    features_s = time.perf_counter() - started
    training_set.run(lake, end, args.label_days, args.window, "bench", holdout_days=1,
                     validation_days=1)
    data = TrainingSet(lake.root, "bench")
    started = time.perf_counter()
    overrides = json.loads(args.overrides) if args.overrides else {}
    if (work / "run").exists():  # a fresh training run, never a resumed one
        import shutil

        shutil.rmtree(work / "run")
    summary = train_run(lake.root, "bench", work / "run", model_name=args.model, **overrides)
    train_s = time.perf_counter() - started
    kind = model(args.model)
    scorers = {MODEL: Timed(kind.load(kind.export_dir(work / "run"))),
               **{k: Timed(v) for k, v in baseline_scorers(data, landing, seed).items()}}
    started = time.perf_counter()
    metrics = evaluate(data, scorers, EvalSettings(seed=seed))
    eval_s = time.perf_counter() - started
    return {"seed": seed, "features_s": features_s, "train_s": train_s, "eval_s": eval_s,
            "summary": summary, "metrics": metrics,
            "score_s": {k: v.seconds for k, v in scorers.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="bench_models", help="work folder (kept)")
    parser.add_argument("--scale", default="demo")
    parser.add_argument("--start", default="2026-01-01")
    parser.add_argument("--days", type=int, default=14, help="simulated days")
    parser.add_argument("--label-days", type=int, default=7, help="M (1 validation, 1 test)")
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--seeds", default="11", help="comma-separated simulator seeds")
    parser.add_argument("--reuse", action="store_true", help="reuse the lake of --work")
    parser.add_argument("--overrides", help="JSON training settings, e.g. '{\"epochs\": 5}'")
    parser.add_argument("--model", default="two_tower",
                        help="registered model to train (fusion: the training DAG's default)")
    args = parser.parse_args()
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        work = Path(args.work) / f"seed{seed}"
        work.mkdir(parents=True, exist_ok=True)
        result = compare(work, args, seed)
        results.append(result)
        m = result["metrics"]
        rows = [(f"model ({args.model})", _line({**m["model"], "slices": m["slices"]},
                                            result["train_s"], "train"))]
        for name, values in sorted(m["baselines"].items(),
                                   key=lambda kv: -(kv[1].get("recall@50") or 0)):
            rows.append((name, _line(values, result["score_s"][name], "fit+score")))
        # fusion: the two-tower component's summary (none when it blends a given export)
        s = result["summary"].get("two_tower", result["summary"])
        if "epochs_run" in s:
            rows += [
                ("two_tower epochs", f"{s['epochs_run']} run, best {s.get('best_epoch')}, "
                                     f"stopped early: {s.get('stopped_early')}"),
                ("two_tower memory scale", f"{(s.get('memory_scale') or {}).get('scale')}"),
                ("two_tower cold-anchor offset",
                 f"{(s.get('cold_anchor_offset') or {}).get('logit')} logit")]
        rows += [
            ("evaluation (all scorers)", f"{result['eval_s']:.1f} s"),
            ("lake build (simulate + daily jobs)", f"{result['features_s']:.1f} s"),
            ("test days / user-days", f"{m['eval_days']} / {m['support']['user_days']:,}"),
        ]
        for name, diff in m["comparisons"].items():
            r = diff["recall@50"]
            rows.append((f"model - {name} recall@50",
                         f"{r['diff']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]"))
        report(f"models at {args.scale} scale, seed {seed}", rows)
    (Path(args.work) / "results.json").write_text(json.dumps(results, indent=2, default=str))


def _line(values: dict, seconds: float, what: str) -> str:
    def fmt(key: str) -> str:
        value = values.get(key)
        return "  -  " if value is None else f"{value:.3f}"

    cold = values.get("slices", {}).get("cold_anchor", {}).get("recall@50")
    cold_text = "  -  " if cold is None else f"{cold:.3f}"
    return (f"recall@50 {fmt('recall@50')}  ndcg@10 {fmt('ndcg@10')}  cold-anchor recall@50 "
            f"{cold_text}  {what} {seconds:6.1f} s")


if __name__ == "__main__":
    main()
