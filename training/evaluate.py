"""Evaluate scorers on the held-out days of a training set; writes metrics.json.

Every held-out day is pooled: each (user, day) with a positive among that day's live anchors
(the candidates) is one row of the pool, and every scorer ranks the same candidates for the
same rows. Per row: recall@K and NDCG@K (K = 10, 50) and AUC against up to `auc_negatives`
unwatched live anchors sampled per user-day (seeded; the same draws for every scorer: most
real logs carry positives only; "watched" is any labelled pair or any row of the lake's
daily_user_anchor that day). The labelled pairs' AUC is kept as `auc_labelled`. Beside
the pool: the per-day table (`by_day`), warm/cold user and anchor slices with their support,
and the model's difference from each baseline on the gate metric and NDCG@10 with a
bootstrap interval over user-days (`comparisons`). Undefined values are None with a `note`,
never NaN. Scorers come through the model seam (`training.models`).

metrics.json:
  run_id, eval_days, settings, model_name, embeddings_finite,
  support: {user_days, users, positives, days: {day: user_days}, candidates: {day: A},
            slices: {slice: user_days}},
  model: {users, recall@10, ndcg@10, recall@50, ndcg@50, auc, auc_labelled, distinct_users,
          [note]},  (pooled)
  slices: {slice: {users, recall@K, ndcg@K, [note]}},  (the model's)
  baselines: {name: {<as model>, slices: {...}}},
  comparisons: {baseline: {metric: {diff, low, high, user_days, [note]}}},  (model - baseline)
  by_day: {day: {scorer: {<as model>, slices: {...}}}}
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.catalog import DAILY_USER_ANCHOR
from features.days import add_days
from features.files import atomic_write_json
from training.metrics import (
    auc,
    mean_of_rows,
    paired_difference,
    per_user_metrics,
    sample_negatives,
    sampled_auc,
)
from training.models.base import Scorer, ScoringContext
from training.reader import Columns, TrainingSet

KS = (10, 50)
MODEL = "model"
SLICES = ("warm_user", "cold_user", "warm_anchor", "cold_anchor")
RANKED = tuple(f"{m}@{k}" for k in KS for m in ("recall", "ndcg"))
ROW_METRICS = (*RANKED, "auc")


class EvalSettings(BaseModel):
    """How evaluation pools, samples and compares."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    auc_negatives: int = Field(100, ge=1)  # unwatched live anchors per user-day
    # leave out anchors the user watched before the day (from positives, negatives and the
    # ranking): measures discovery apart from rewatching
    exclude_seen: bool = False
    gate_metric: str = "recall@50"
    confidence: float = Field(0.95, gt=0, lt=1)
    bootstrap_resamples: int = Field(2000, ge=100)
    seed: int = 0

    @field_validator("gate_metric")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in ROW_METRICS:
            raise ValueError(f"gate_metric must be one of {ROW_METRICS}")
        return value

    @property
    def compared(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.gate_metric, "ndcg@10")))


@dataclass(frozen=True)
class HeldOutDay:
    """One held-out day: its users (`[U]`, those with a labelled pair), its candidates
    (`[A]`) and what every scorer is measured against."""

    day: str
    users: Columns
    anchors: Columns
    positives: np.ndarray  # [U, A] bool
    labelled: tuple[np.ndarray, np.ndarray, np.ndarray]  # row, column, is positive
    seen: np.ndarray | None  # [U, A] bool: watched before the day (exclude_seen only)
    negatives: np.ndarray  # [U, n] sampled unwatched candidates
    valid: np.ndarray  # [U, n]

    @property
    def pool(self) -> np.ndarray:
        """`[U]` rows of the pool: users with a positive among the candidates."""
        return self.positives.any(axis=1)

    def slice_masks(self) -> dict[str, np.ndarray]:
        """`[U, A]` positives each slice counts: a user slice keeps whole rows, an anchor
        slice keeps the positives on its anchors (ranked against every candidate)."""
        shape = self.positives.shape
        cold_user = np.broadcast_to(~self.users["user_has_history"].astype(bool)[:, None], shape)
        cold_anchor = np.broadcast_to(~self.anchors["anchor_has_history"].astype(bool)[None, :],
                                      shape)
        return {"warm_user": ~cold_user, "cold_user": cold_user,
                "warm_anchor": ~cold_anchor, "cold_anchor": cold_anchor}


def _index(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Position of each of `values` in `ids` (unique), -1 where absent."""
    where = {v: i for i, v in enumerate(ids.tolist())}
    return np.array([where.get(v, -1) for v in values.tolist()], dtype=np.int64)


def lake_pairs(data: TrainingSet, before: str, user_ids: np.ndarray, anchor_ids: np.ndarray,
               days: int | None = None) -> np.ndarray:
    """`[U, A]` bool: the user watched the anchor on a day before `before` (the last `days`
    of them, or all), by the lake's daily_user_anchor; all False without that table."""
    from training.models.history import read_before

    past = read_before(data.lake_root, DAILY_USER_ANCHOR, before, ["user_id", "anchor_id"],
                       data.manifest.format, days)
    rows, cols = _index(user_ids, past["user_id"]), _index(anchor_ids, past["anchor_id"])
    watched = np.zeros((len(user_ids), len(anchor_ids)), dtype=bool)
    keep = (rows >= 0) & (cols >= 0)
    watched[rows[keep], cols[keep]] = True
    return watched


def make_day(day: str, users: Columns, anchors: Columns, pairs: Columns,
             settings: EvalSettings, seen: np.ndarray | None = None,
             watched_today: np.ndarray | None = None) -> HeldOutDay:
    """A held-out day from its users (`[U]`, every user of `pairs`), candidates (`[A]`),
    labelled pairs (`user_id`, `anchor_id`, `label`) and, as `[U, A]` masks, the anchors
    each user watched before (`seen`, to exclude them) and every anchor watched that day
    (`watched_today`: also the watches too short or too long to be labelled, never drawn
    as unwatched negatives)."""
    rows = _index(users["user_id"], pairs["user_id"])
    cols = _index(anchors["anchor_id"], pairs["anchor_id"])
    if (rows < 0).any():
        raise ValueError(f"{day}: {int((rows < 0).sum())} labelled pairs of unknown users")
    is_pos = np.asarray(pairs["label"]) == 1
    known = cols >= 0  # a labelled anchor not live in the candidates cannot be ranked
    if seen is not None:
        known &= ~seen[rows, np.maximum(cols, 0)]
    shape = (len(users["user_id"]), len(anchors["anchor_id"]))
    positives = np.zeros(shape, dtype=bool)
    positives[rows[known & is_pos], cols[known & is_pos]] = True
    watched = np.zeros(shape, dtype=bool)  # any labelled pair: watched that day
    watched[rows[cols >= 0], cols[cols >= 0]] = True
    excluded = watched
    for mask in (seen, watched_today):
        excluded = excluded if mask is None else excluded | mask
    rng = np.random.default_rng([settings.seed, int(day.replace("-", "") or 0)])
    negatives, valid = sample_negatives(excluded, settings.auc_negatives, rng)
    return HeldOutDay(day, users, anchors, positives, (rows[known], cols[known], is_pos[known]),
                      seen, negatives, valid)


def held_out_days(data: TrainingSet, settings: EvalSettings,
                  days: Sequence[str] | None = None) -> list[HeldOutDay]:
    """The test days of the training set (or `days`, e.g. its validation days), read once
    for all scorers."""
    user_columns = [n for n in data.schema("validation").names if n.startswith("user_")]
    anchor_columns = [n for n in data.schema("candidates").names if n.startswith("anchor_")]
    pairs = data.read("validation", sorted({"anchor_id", "label", "dt", *user_columns}))
    candidates = data.read("candidates", sorted({"dt", *anchor_columns}))
    out = []
    for day in data.manifest.holdout_days if days is None else days:
        today = pairs["dt"] == day
        _, first = np.unique(pairs["user_id"][today], return_index=True)
        users = {c: pairs[c][today][first] for c in user_columns}
        anchors = {c: candidates[c][candidates["dt"] == day] for c in anchor_columns}
        seen = (lake_pairs(data, day, users["user_id"], anchors["anchor_id"])
                if settings.exclude_seen else None)
        watched_today = lake_pairs(data, add_days(day, 1), users["user_id"],
                                   anchors["anchor_id"], days=1)
        out.append(make_day(day, users, anchors,
                            {c: pairs[c][today] for c in ("user_id", "anchor_id", "label")},
                            settings, seen, watched_today))
    return out


@dataclass
class Rows:
    """One scorer's per-row metrics over pool rows (`[R]` each), its slices', and its
    scores of the labelled pairs."""

    metrics: dict[str, np.ndarray]
    slices: dict[str, dict[str, np.ndarray]]
    labelled_scores: np.ndarray
    labelled_positive: np.ndarray

    @staticmethod
    def concat(parts: Sequence[Rows]) -> Rows:
        def cat(get):
            return np.concatenate([get(p) for p in parts]) if parts else np.array([])

        return Rows({m: cat(lambda p, m=m: p.metrics[m]) for m in ROW_METRICS},
                    {s: {m: cat(lambda p, s=s, m=m: p.slices[s][m]) for m in RANKED}
                     for s in SLICES},
                    cat(lambda p: p.labelled_scores), cat(lambda p: p.labelled_positive))


def score_day(name: str, scorer: Scorer, day: HeldOutDay) -> Rows:
    """A scorer's per-row metrics on one held-out day (pool rows only)."""
    shape = day.positives.shape
    if 0 in shape:
        empty = np.array([])
        return Rows({m: empty for m in ROW_METRICS},
                    {s: {m: empty for m in RANKED} for s in SLICES}, empty, empty)
    scores = np.asarray(scorer.score(day.day, day.users, day.anchors), dtype=np.float64)
    if scores.shape != shape:
        raise ValueError(f"scorer {name!r} returned scores of shape {scores.shape} for "
                         f"{day.day}, expected {shape} (users x candidates)")
    if day.seen is not None:  # seen anchors drop out of the ranking
        scores = np.where(day.seen, -np.inf, scores)
    pool = day.pool
    metrics = per_user_metrics(scores, day.positives, KS)
    metrics["auc"] = sampled_auc(scores, day.positives, day.negatives, day.valid)
    slices = {s: {m: v[pool] for m, v in per_user_metrics(scores, day.positives, KS,
                                                          mask).items()}
              for s, mask in day.slice_masks().items()}
    rows, cols, positive = day.labelled
    return Rows({m: v[pool] for m, v in metrics.items()}, slices, scores[rows, cols], positive)


def summarise(rows: Rows, user_ids: np.ndarray) -> dict:
    """Pooled metrics of one scorer; `user_ids` `[R]` names each pool row's user."""
    out = mean_of_rows(rows.metrics, "no user-day with a positive and an unwatched live "
                                     "anchor")
    out["distinct_users"] = int(len(np.unique(user_ids)))
    out["auc_labelled"] = auc(rows.labelled_scores, rows.labelled_positive)
    if out["auc_labelled"] is None:
        note = "auc_labelled: the labelled pairs lack a positive or an explicit negative"
        out["note"] = f"{out['note']}; {note}" if "note" in out else note
    out["slices"] = {s: mean_of_rows(rows.slices[s], "no positive in this slice")
                     for s in SLICES}
    return out


class _Fixed:
    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        return self.scores


def evaluate_scores(user_ids: np.ndarray, anchor_ids: np.ndarray, scores: np.ndarray,
                    pairs: Columns, user_cold: np.ndarray, anchor_cold: np.ndarray,
                    day: str = "", settings: EvalSettings | None = None) -> dict:
    """`{"overall", "slices"}` of one `[users, anchors]` score matrix on one day, for
    callers that score outside `evaluate` (pairs: `user_id`, `anchor_id`, `label`)."""
    settings = settings or EvalSettings()
    users = {"user_id": np.asarray(user_ids), "user_has_history": ~np.asarray(user_cold)}
    anchors = {"anchor_id": np.asarray(anchor_ids),
               "anchor_has_history": ~np.asarray(anchor_cold)}
    held = make_day(day, users, anchors, pairs, settings)
    summary = summarise(score_day(MODEL, _Fixed(scores), held), users["user_id"][held.pool])
    return {"overall": {k: v for k, v in summary.items() if k != "slices"},
            "slices": summary["slices"]}


def evaluate(data: TrainingSet, scorers: Mapping[str, Scorer],
             settings: EvalSettings | None = None) -> dict:
    """Metrics of every scorer over the pooled held-out days, per day, and the model's
    (`scorers["model"]`) differences from every other scorer (the module doc has the
    layout)."""
    settings = settings or EvalSettings()
    days = held_out_days(data, settings)
    per_day = {name: [score_day(name, scorer, d) for d in days]
               for name, scorer in scorers.items()}
    day_users = [d.users["user_id"][d.pool] for d in days]
    pooled_users = np.concatenate(day_users) if days else np.array([])
    pooled = {name: Rows.concat(parts) for name, parts in per_day.items()}
    summaries = {name: summarise(rows, pooled_users) for name, rows in pooled.items()}
    by_day = {d.day: {name: summarise(per_day[name][i], day_users[i]) for name in scorers}
              for i, d in enumerate(days)}
    model = summaries[MODEL]
    comparisons = {
        name: {m: paired_difference(pooled[MODEL].metrics[m], rows.metrics[m],
                                    settings.confidence, settings.bootstrap_resamples,
                                    settings.seed)
               for m in settings.compared}
        for name, rows in pooled.items() if name != MODEL}
    support = {"user_days": int(len(pooled_users)),
               "users": int(len(np.unique(pooled_users))),
               "positives": int(sum(d.positives[d.pool].sum() for d in days)),
               "days": {d.day: int(d.pool.sum()) for d in days},
               "candidates": {d.day: int(len(d.anchors["anchor_id"])) for d in days},
               "slices": {s: v["users"] for s, v in model["slices"].items()}}
    return {"run_id": data.run_id, "eval_days": list(data.manifest.holdout_days),
            "settings": settings.model_dump(), "support": support,
            "model": {k: v for k, v in model.items() if k != "slices"},
            "slices": model["slices"],
            "baselines": {name: values for name, values in summaries.items() if name != MODEL},
            "comparisons": comparisons, "by_day": by_day}


def baseline_scorers(data: TrainingSet, landing: Path | None = None, seed: int = 0
                     ) -> dict[str, Scorer]:
    """Every registered baseline that applies to this training set."""
    from training.models import baselines

    context = ScoringContext(data, Path(landing) if landing else None, seed)
    made = {name: factory(context) for name, factory in baselines().items()}
    return {name: scorer for name, scorer in made.items() if scorer is not None}


def evaluate_model(data: TrainingSet, model_name: str, export_dir: Path,
                   landing: Path | None = None, out: Path | None = None, seed: int = 0,
                   settings: EvalSettings | None = None) -> dict:
    """The exported model of `export_dir` against every baseline; written to
    `out/metrics.json` when `out` is given."""
    from training.models import model

    return evaluate_scorer(data, model(model_name).load(Path(export_dir)), model_name,
                           landing, out, seed, settings)


def evaluate_scorer(data: TrainingSet, scorer: Scorer, model_name: str,
                    landing: Path | None = None, out: Path | None = None, seed: int = 0,
                    settings: EvalSettings | None = None,
                    baselines: Mapping[str, Scorer] | None = None) -> dict:
    """`scorer` (named `model_name` in the metrics) against every baseline (`baselines`, or
    those `baseline_scorers` makes); written to `out/metrics.json` when `out` is given."""
    settings = settings or EvalSettings(seed=seed)
    if baselines is None:
        baselines = baseline_scorers(data, landing, seed)
    metrics = evaluate(data, {MODEL: scorer, **baselines}, settings)
    metrics["model_name"] = model_name
    metrics["embeddings_finite"] = bool(getattr(scorer, "finite", True))
    if out is not None:
        atomic_write_json(Path(out) / "metrics.json", metrics)
    return metrics


def main(argv: Sequence[str] | None = None) -> int:
    from features.settings import load_settings
    from training.cli import run_parser
    from training.models import DEFAULT_MODEL, model_names

    parser = run_parser("Evaluate a trained model on its held-out days against every "
                        "baseline.")
    parser.add_argument("--out", required=True, help="training run folder (metrics go here)")
    parser.add_argument("--landing", help="landing root, for the simulator's oracle")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=model_names())
    parser.add_argument("--model-dir", help="evaluate this export instead of <out>/export")
    parser.add_argument("--exclude-seen", action="store_true",
                        help="leave out anchors each user watched before the day")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        data = TrainingSet(load_settings(lake_root=args.lake).lake_root, args.run_id)
        from training.models import model

        export = Path(args.model_dir) if args.model_dir else model(args.model).export_dir(
            Path(args.out))
        settings = EvalSettings(exclude_seen=args.exclude_seen, seed=args.seed)
        metrics = evaluate_model(data, args.model, export, args.landing, Path(args.out),
                                 args.seed, settings)
    except (FileNotFoundError, ValueError) as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    print(json.dumps({name: {m: values.get(m) for m in ("recall@50", "ndcg@10", "auc")}
                      for name, values in {"model": metrics["model"],
                                           **metrics["baselines"]}.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
