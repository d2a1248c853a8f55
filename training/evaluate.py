"""Evaluate a model on the held-out day(s) of its training set; writes metrics.json.

For each user with positives that day, rank every anchor live that day (the candidates);
report recall@K and NDCG@K (K = 10, 50), AUC on the labelled pairs, slices by warm/cold user
and anchor, and the same metrics for baselines: popularity over the profile window, random,
and the simulator's oracle (its true latent tastes and popularity) when ground truth exists.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from training.metrics import auc, ranking_metrics

KS = (10, 50)


def _read(lake_root: Path, manifest: dict, table: str, columns: list[str]) -> dict:
    from training.export import _read_all

    return _read_all(Path(lake_root) / manifest["tables"][table], manifest["format"], columns,
                     last_k=64)


def oracle_scores(landing: Path, users: np.ndarray, anchors: np.ndarray) -> np.ndarray | None:
    """The simulator's truth: log P(choose) + log P(long watch) from latent vectors."""
    path = Path(landing) / "_ground_truth" / "latents.npz"
    params = Path(landing) / "_SIMULATION.json"
    if not path.is_file():
        return None
    truth = np.load(path)
    temperature = json.loads(params.read_text())["params"].get("temperature", 1.0) \
        if params.is_file() else 1.0
    user_row = {int(u): i for i, u in enumerate(truth["user_ids"])}
    anchor_row = {int(a): i for i, a in enumerate(truth["anchor_ids"])}
    u = truth["user_vecs"][[user_row[int(x)] for x in users]]
    a = truth["anchor_vecs"][[anchor_row[int(x)] for x in anchors]]
    affinity = u @ a.T
    log_pop = np.log(truth["anchor_popularity"][[anchor_row[int(x)] for x in anchors]])
    # the simulator's long watch: affinity + N(0, 0.8) > 0.9
    z = (affinity - 0.9) / 0.8
    log_long = np.log(np.clip(0.5 * (1 + erf(z / math.sqrt(2))), 1e-12, 1))
    return affinity / temperature + log_pop + log_long


def erf(x: np.ndarray) -> np.ndarray:
    """Vectorised error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)."""
    sign, x = np.sign(x), np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                          + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


def evaluate_scores(user_ids, anchor_ids, scores, pairs, user_cold, anchor_cold) -> dict:
    """Metrics of one scorer: overall, AUC on labelled pairs, warm/cold slices."""
    index_u = {u: i for i, u in enumerate(user_ids)}
    index_a = {a: j for j, a in enumerate(anchor_ids)}
    positives = np.zeros(scores.shape, dtype=bool)
    rows = np.array([index_u.get(u, -1) for u in pairs["user_id"]])
    cols = np.array([index_a.get(a, -1) for a in pairs["anchor_id"]])
    known = (rows >= 0) & (cols >= 0)
    is_pos = known & (pairs["label"] == 1)
    positives[rows[is_pos], cols[is_pos]] = True
    result = ranking_metrics(scores, positives, KS)
    result["auc"] = auc(scores[rows[known], cols[known]], pairs["label"][known] == 1)
    cold_anchor = np.broadcast_to(anchor_cold[None, :], scores.shape)
    cold_user = np.broadcast_to(user_cold[:, None], scores.shape)
    slices = {"warm_user": ~cold_user, "cold_user": cold_user,
              "warm_anchor": ~cold_anchor, "cold_anchor": cold_anchor}
    return {"overall": result,
            "slices": {name: ranking_metrics(scores, positives, KS, mask)
                       for name, mask in slices.items()}}


def evaluate_run(lake_root: Path | str, run_id: str, out_dir: Path | str,
                 landing: Path | str | None = None, model_dir: Path | str | None = None,
                 seed: int = 0) -> dict:
    """Evaluate the exported model of `out_dir` (or the model in `model_dir`)."""
    from jobs.training_set import load_manifest
    from training.export import embed, load_serving

    out = Path(out_dir)
    manifest = load_manifest(lake_root, run_id)
    towers = load_serving(Path(model_dir) if model_dir else out / "export")
    user_columns, anchor_columns = towers["user_tower"].columns, towers["anchor_tower"].columns
    pairs = _read(lake_root, manifest, "validation",
                  sorted({"user_id", "anchor_id", "label", "dt", *user_columns}))
    candidates = _read(lake_root, manifest, "candidates", sorted({"dt", *anchor_columns}))
    results = {"eval_days": manifest["holdout_days"], "run_id": run_id}
    per_day = []
    for day in manifest["holdout_days"]:
        users_today = pairs["dt"] == day
        user_ids, first = np.unique(pairs["user_id"][users_today], return_index=True)
        user_rows = {c: pairs[c][users_today][first] for c in user_columns}
        live = candidates["dt"] == day
        anchor_rows = {c: candidates[c][live] for c in anchor_columns}
        anchor_ids = anchor_rows["anchor_id"]
        day_pairs = {c: pairs[c][users_today] for c in ("user_id", "anchor_id", "label")}
        u = embed(towers["user_tower"], user_rows)
        a = embed(towers["anchor_tower"], anchor_rows)
        rng = np.random.default_rng(seed)
        scorers = {
            "model": u @ a.T,
            "popularity": np.broadcast_to(np.log1p(anchor_rows["anchor_sessions"]
                                                   .astype(float))[None, :],
                                          (len(user_ids), len(anchor_ids))).copy(),
            "random": rng.random((len(user_ids), len(anchor_ids))),
        }
        if landing is not None:
            oracle = oracle_scores(Path(landing), user_ids, anchor_ids)
            if oracle is not None:
                scorers["oracle"] = oracle
        user_cold = ~user_rows["user_has_history"].astype(bool)
        anchor_cold = ~anchor_rows["anchor_has_history"].astype(bool)
        per_day.append({name: evaluate_scores(user_ids, anchor_ids, s, day_pairs, user_cold,
                                              anchor_cold) for name, s in scorers.items()})
        per_day[-1]["embeddings_finite"] = bool(np.isfinite(u).all() and np.isfinite(a).all())
    # one held-out day is the default; with several, report the first and keep all
    first_day = per_day[0]
    results["by_day"] = per_day
    results["model"] = first_day["model"]["overall"]
    results["slices"] = first_day["model"]["slices"]
    results["baselines"] = {name: {**first_day[name]["overall"],
                                   "slices": first_day[name]["slices"]}
                            for name in first_day if name not in ("model", "embeddings_finite")}
    results["embeddings_finite"] = all(d["embeddings_finite"] for d in per_day)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(results, indent=2))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Evaluate a trained model on its held-out day.")
    parser.add_argument("--lake", help="lake root (default: $LAKE_ROOT or ./lake)")
    parser.add_argument("--run-id", required=True, help="training set run id")
    parser.add_argument("--out", required=True, help="training run folder (metrics go here)")
    parser.add_argument("--landing", help="landing root, for the simulator's oracle")
    parser.add_argument("--model-dir", help="evaluate this exported model instead")
    args = parser.parse_args(argv)
    from jobs.lake import lake_root

    results = evaluate_run(lake_root(args.lake), args.run_id, args.out, args.landing,
                           args.model_dir)
    summary = {"model": results["model"], "cold_anchor": results["slices"]["cold_anchor"],
               **{f"baseline_{k}": {m: v.get(m) for m in ("recall@50", "auc")}
                  for k, v in results["baselines"].items()}}
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
