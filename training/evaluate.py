"""Evaluate scorers on the held-out day(s) of a training set; writes metrics.json.

For each user with positives on a held-out day, rank every anchor live that day (the
candidates); report recall@K and NDCG@K (K = 10, 50), AUC on the labelled pairs, and slices
by warm/cold user and anchor, for the model and for every registered baseline on the same
candidates. Scorers come through the model seam (`training.models`): evaluation never
knows what a model is made of.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from features.files import atomic_write_json
from training.metrics import auc, ranking_metrics
from training.models.base import Scorer, ScoringContext
from training.reader import Columns, TrainingSet

KS = (10, 50)
MODEL = "model"
SLICES = ("warm_user", "cold_user", "warm_anchor", "cold_anchor")


def evaluate_scores(user_ids: np.ndarray, anchor_ids: np.ndarray, scores: np.ndarray,
                    pairs: Columns, user_cold: np.ndarray, anchor_cold: np.ndarray) -> dict:
    """Metrics of one scorer's `[users, anchors]` scores: overall, AUC on the labelled
    pairs, and warm/cold slices."""
    index_u = {u: i for i, u in enumerate(user_ids)}
    index_a = {a: j for j, a in enumerate(anchor_ids)}
    positives = np.zeros(scores.shape, dtype=bool)
    rows = np.array([index_u.get(u, -1) for u in pairs["user_id"]], dtype=np.int64)
    cols = np.array([index_a.get(a, -1) for a in pairs["anchor_id"]], dtype=np.int64)
    known = (rows >= 0) & (cols >= 0)
    is_pos = known & (pairs["label"] == 1)
    positives[rows[is_pos], cols[is_pos]] = True
    result = ranking_metrics(scores, positives, KS)
    result["auc"] = auc(scores[rows[known], cols[known]], pairs["label"][known] == 1)
    cold_anchor = np.broadcast_to(anchor_cold[None, :], scores.shape)
    cold_user = np.broadcast_to(user_cold[:, None], scores.shape)
    masks = {"warm_user": ~cold_user, "cold_user": cold_user,
             "warm_anchor": ~cold_anchor, "cold_anchor": cold_anchor}
    return {"overall": result,
            "slices": {name: ranking_metrics(scores, positives, KS, masks[name])
                       for name in SLICES}}


def evaluate(data: TrainingSet, scorers: Mapping[str, Scorer]) -> dict:
    """Metrics of every scorer on every held-out day; the first day is the headline (one
    held-out day is the default), every day is kept under `by_day`."""
    user_columns = [n for n in data.schema("validation").names if n.startswith("user_")]
    anchor_columns = [n for n in data.schema("candidates").names
                      if n.startswith("anchor_")]
    pairs = data.read("validation", sorted({"anchor_id", "label", "dt", *user_columns}))
    candidates = data.read("candidates", sorted({"dt", *anchor_columns}))
    per_day = []
    for day in data.manifest.holdout_days:
        today = pairs["dt"] == day
        user_ids, first = np.unique(pairs["user_id"][today], return_index=True)
        users = {c: pairs[c][today][first] for c in user_columns}
        live = candidates["dt"] == day
        anchors = {c: candidates[c][live] for c in anchor_columns}
        day_pairs = {c: pairs[c][today] for c in ("user_id", "anchor_id", "label")}
        user_cold = ~users["user_has_history"].astype(bool)
        anchor_cold = ~anchors["anchor_has_history"].astype(bool)
        per_day.append({name: evaluate_scores(user_ids, anchors["anchor_id"],
                                              scorer.score(day, users, anchors), day_pairs,
                                              user_cold, anchor_cold)
                        for name, scorer in scorers.items()})
    first_day = per_day[0]
    return {"run_id": data.run_id, "eval_days": list(data.manifest.holdout_days),
            "by_day": per_day,
            "model": first_day[MODEL]["overall"], "slices": first_day[MODEL]["slices"],
            "baselines": {name: {**day["overall"], "slices": day["slices"]}
                          for name, day in first_day.items() if name != MODEL}}


def baseline_scorers(data: TrainingSet, landing: Path | None = None, seed: int = 0
                     ) -> dict[str, Scorer]:
    """Every registered baseline that applies to this training set."""
    from training.models import baselines

    context = ScoringContext(data, Path(landing) if landing else None, seed)
    made = {name: factory(context) for name, factory in baselines().items()}
    return {name: scorer for name, scorer in made.items() if scorer is not None}


def evaluate_model(data: TrainingSet, model_name: str, export_dir: Path,
                   landing: Path | None = None, out: Path | None = None, seed: int = 0
                   ) -> dict:
    """The exported model of `export_dir` against every baseline; written to
    `out/metrics.json` when `out` is given."""
    from training.models import model

    scorer = model(model_name).load(Path(export_dir))
    metrics = evaluate(data, {MODEL: scorer, **baseline_scorers(data, landing, seed)})
    metrics["model_name"] = model_name
    metrics["embeddings_finite"] = bool(getattr(scorer, "finite", True))
    if out is not None:
        atomic_write_json(Path(out) / "metrics.json", metrics)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    from features.settings import load_settings
    from training.models import DEFAULT_MODEL, model_names

    parser = argparse.ArgumentParser(description="Evaluate a trained model on its held-out "
                                                 "days against every baseline.")
    parser.add_argument("--lake", help="lake root (default: $LAKE_ROOT or ./lake)")
    parser.add_argument("--run-id", required=True, help="training set run id")
    parser.add_argument("--out", required=True, help="training run folder (metrics go here)")
    parser.add_argument("--landing", help="landing root, for the simulator's oracle")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=model_names())
    parser.add_argument("--model-dir", help="evaluate this export instead of <out>/export")
    args = parser.parse_args(argv)
    try:
        data = TrainingSet(load_settings(lake_root=args.lake).lake_root, args.run_id)
        from training.models import model

        export = Path(args.model_dir) if args.model_dir else model(args.model).export_dir(
            Path(args.out))
        metrics = evaluate_model(data, args.model, export, args.landing, Path(args.out))
    except (FileNotFoundError, ValueError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    print(json.dumps({name: {m: values.get(m) for m in ("recall@50", "ndcg@10", "auc")}
                      for name, values in {"model": metrics["model"],
                                           **metrics["baselines"]}.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
