"""Tuning and fusion, measured in one run on a simulated lake: the two-tower model with
default settings, tuned (an Optuna study on a user sample, then the best configuration
retrained on the full range) and fused with the baselines, each on the validation days
(which choose) and the test days (which judge), beside the best baseline and the oracle;
and the cost of tuning: trials per hour, the time pruning and subsampling saved, and the
rank agreement (Spearman) of the sample's and the full data's values on a few random
configurations.

Scales: the simulator's (`tiny`, `demo`, `bench`) and `small` (4,000 users, 300 anchors,
25,000 sessions a day; registered here for the benchmark only). The lake is kept under
--work, so `--reuse` skips its build; `--skip-agreement` skips the rank agreement.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from bench.common import report

SMALL = {"users": 4_000, "anchors": 300, "sessions_per_day": 25_000}


def register_small_scale() -> None:
    from jobs.simulator import world

    world.SCALES.setdefault("small", world.Scale(**SMALL))


def lake_of(work: Path, args: argparse.Namespace):
    from bench.bench_models import build_lake
    from features.days import add_days
    from jobs import training_set
    from jobs.engine import spark_session
    from jobs.lake import Lake

    started = time.perf_counter()
    if args.reuse and (work / "lake" / "training_sets" / "R" / "manifest.json").is_file():
        return work / "lake", work / "landing", 0.0
    register_small_scale()
    if args.reuse and (work / "lake").is_dir():
        lake, landing = Lake(work / "lake", spark_session("sail")), work / "landing"
    else:
        lake, landing = build_lake(work, args.scale, args.start, args.days, args.seed,
                                   args.window)
    training_set.run(lake, add_days(args.start, args.days - 1), args.label_days, args.window,
                     "R", holdout_days=1, validation_days=1)
    return lake.root, landing, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", default="bench_tune", help="work folder (kept)")
    parser.add_argument("--scale", default="small")
    parser.add_argument("--start", default="2026-01-01")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--label-days", type=int, default=7, help="M (1 validation, 1 test)")
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--seed", type=int, default=11, help="simulator seed")
    parser.add_argument("--reuse", action="store_true", help="reuse the lake of --work")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800, help="tuning budget, seconds")
    parser.add_argument("--epochs", type=int, default=6, help="most epochs per trial")
    parser.add_argument("--final-epochs", type=int, default=10)
    parser.add_argument("--sample-users", type=float, default=0.3)
    parser.add_argument("--pruner", default="hyperband")
    parser.add_argument("--agreement", type=int, default=5, help="configurations compared")
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument("--fixed", help="JSON settings every run takes")
    args = parser.parse_args()

    from training.evaluate import MODEL, EvalSettings, baseline_scorers, evaluate
    from training.models import model
    from training.reader import TrainingSet
    from training.train import train_run
    from training.tune import (
        MONITOR,
        final_run,
        rank_agreement,
        run_study,
        sample_configs,
        trial_value,
        validation_metrics,
    )

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    lake, landing, build_s = lake_of(work, args)
    data = TrainingSet(lake, "R")
    fixed = json.loads(args.fixed) if args.fixed else {}
    results: dict = {"args": vars(args), "lake_build_s": build_s}
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    for folder in ("default", "study", "fusion_default", "fusion_tuned", "agreement"):
        shutil.rmtree(work / folder, ignore_errors=True)  # fresh runs: nothing resumes

    # 1. default settings on the full range
    started = time.perf_counter()
    default = train_run(lake, "R", work / "default", epochs=args.final_epochs, **fixed)
    results["default_train_s"] = time.perf_counter() - started
    two_tower = model("two_tower")
    default_export = two_tower.export_dir(work / "default")

    # 2. the study on the user sample, 3. the best configuration on the full range
    study_dir = work / "study"
    summary = run_study(lake, "R", "bench", args.trials, out=study_dir,
                        timeout=args.timeout, sample_users=args.sample_users,
                        epochs=args.epochs, pruner=args.pruner, fixed=fixed, print_fn=say)
    final = final_run(lake, "R", study_dir, landing, args.final_epochs, print_fn=say)
    tuned_export = two_tower.export_dir(study_dir / "final")

    # 4. fusion over the default and over the tuned two-tower
    fused = {}
    for name, export in (("default", default_export), ("tuned", tuned_export)):
        started = time.perf_counter()
        out = work / f"fusion_{name}"
        fit = train_run(lake, "R", out, model_name="fusion", two_tower_export=str(export))
        fused[name] = {"fit": fit["fusion"], "fit_s": time.perf_counter() - started,
                       "scorer": model("fusion").load(model("fusion").export_dir(out))}

    # every scorer on the test days (one evaluation: the same candidates and user-days)
    scorers = {MODEL: two_tower.load(default_export), "tuned": two_tower.load(tuned_export),
               "fused_default": fused["default"]["scorer"],
               "fused_tuned": fused["tuned"]["scorer"], **baseline_scorers(data, landing)}
    started = time.perf_counter()
    metrics = evaluate(data, scorers, EvalSettings())
    results["eval_s"] = time.perf_counter() - started
    test = {MODEL: metrics["model"], **metrics["baselines"]}
    validation = {MODEL: trial_value(default), "tuned": final["validation"][MONITOR],
                  "fused_default": fused["default"]["fit"]["validation_crossfit"]["recall@50"],
                  "fused_tuned": fused["tuned"]["fit"]["validation_crossfit"]["recall@50"]}
    for name in ("rewatch", "segment_popularity", "als", "oracle"):
        if name in scorers:
            validation[name] = validation_metrics(data, scorers[name]).get("recall@50")
    results.update({"default": default, "study": summary, "final": final,
                    "fusion": {k: {"fit": v["fit"], "fit_s": v["fit_s"]}
                               for k, v in fused.items()},
                    "validation_recall@50": validation,
                    "test": {k: {m: v.get(m) for m in ("recall@50", "ndcg@10", "auc")}
                             for k, v in test.items()}})

    # 5. how the sample ranks configurations against the full data
    if not args.skip_agreement:
        results["agreement"] = rank_agreement(
            lake, "R", sample_configs("two_tower", args.agreement, seed=1),
            args.sample_users, work / "agreement", epochs=args.epochs, fixed=fixed,
            print_fn=say)
    (work / "results.json").write_text(json.dumps(results, indent=2, default=str))

    oracle = test.get("oracle", {}).get("recall@50")
    baselines = {k: v.get("recall@50") for k, v in test.items()
                 if k in metrics["baselines"] and "oracle" not in k and k != "random"
                 and not k.startswith(("tuned", "fused"))}
    best_name = max(baselines, key=lambda k: baselines[k] or 0)

    def row(name: str, label: str) -> tuple[str, str]:
        v, t = validation.get(name), test.get(name, {}).get("recall@50")
        ratio = f"  ({t / oracle:.2f}x oracle)" if t is not None and oracle else ""
        return (label, f"validation {_f(v)}  test {_f(t)}{ratio}")

    t = summary["timings"]
    rows = [row(MODEL, "two_tower default"), row("tuned", "two_tower tuned"),
            row("fused_default", "fusion (default two_tower)"),
            row("fused_tuned", "fusion (tuned two_tower)"),
            (f"best baseline ({best_name})", f"validation {_f(validation.get(best_name))}  "
                                             f"test {_f(baselines[best_name])}"),
            row("oracle", "oracle (ceiling)"),
            ("fusion weights (tuned, largest 8)", ", ".join(
                f"{k} {v:+.2f}" for k, v in sorted(fused["tuned"]["fit"]["weights"].items(),
                                                  key=lambda kv: -abs(kv[1]))[:8])),
            ("trials", f"{t['trials']} ({t['complete']} complete, {t['pruned']} pruned) in "
                       f"{t['wall_s']:.0f} s on {args.sample_users:.0%} of the users"),
            ("trials per hour", f"{_f(t['trials_per_hour'], 1)}"),
            ("pruning saved (estimate)", f"{t['pruning_saved_s']:.0f} s "
                                         f"({_f(t['pruning_saved_share'], 2)} of the time)"),
            ("early stopping saved (estimate)", f"{t['early_stopping_saved_s']:.0f} s"),
            ("best trial", f"#{summary['best']['number']} value "
                           f"{summary['best']['value']:.4f}; final retrain "
                           f"{final['train_s']:.0f} s"),
            ("default training", f"{results['default_train_s']:.0f} s, epochs "
                                 f"{default.get('epochs_run')} (best {default.get('best_epoch')})"),
            ("test day / validation day", f"{metrics['eval_days']} / "
                                          f"{data.manifest.validation_days}")]
    if "agreement" in results:
        a = results["agreement"]
        rows += [("rank agreement (Spearman)", f"{_f(a['spearman'], 2)} over "
                                               f"{len(a['configs'])} configurations; best "
                                               f"agrees: {a['best_agrees']}"),
                 ("subsampling saved", f"{_f(a['subsample_saved_share'], 2)} of the time "
                                       f"({a['sample_s']:.0f} s vs {a['full_s']:.0f} s)")]
    importances = summary.get("importances") or {}
    if importances:
        rows.append(("top importances", ", ".join(
            f"{k} {v:.2f}" for k, v in list(importances.items())[:4])))
    report(f"tuning and fusion at {args.scale} scale", rows)


def _f(value, digits: int = 3) -> str:
    return "  -  " if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    main()
