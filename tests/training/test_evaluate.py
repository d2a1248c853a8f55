"""Evaluation: held-out days pooled over user-days, by hand on 2 days x 3 users; bootstrap
intervals; AUC without explicit negatives; slices, support, strict JSON, excluding anchors
seen before the day."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from features.manifest import TrainingSetManifest
from tests.training.models.tiny_lake import watch, write_lake
from training.evaluate import EvalSettings, evaluate, evaluate_scores, held_out_days
from training.metrics import paired_difference
from training.reader import TrainingSet

pytestmark = pytest.mark.unit

D1, D2 = "2026-03-02", "2026-03-03"
# (day, user, anchor, label). Candidates: anchors 1-12 both days, 11 and 12 cold; user 3 is
# cold. By anchor id (the `ById` scorer ranks anchor a at place a):
#   D1 u1 +{1}       D1 u2 +{3, 11} -{2}       D1 u3 +{12}
#   D2 u1 +{2}       D2 u2 -{4} (no positive: not in the pool)       D2 u3 +{5}
PAIRS = [(D1, 1, 1, 1), (D1, 2, 3, 1), (D1, 2, 11, 1), (D1, 2, 2, 0), (D1, 3, 12, 1),
         (D2, 1, 2, 1), (D2, 2, 4, 0), (D2, 3, 5, 1)]
L2 = np.log2


def _training_set(root, pairs=PAIRS, cold_users=(3,), run_id="t") -> TrainingSet:
    """A training set of held-out days D1 and D2 only (evaluation reads no train rows)."""
    folder = f"training_sets/{run_id}"
    validation = pa.table({
        "user_id": pa.array([p[1] for p in pairs], pa.int64()),
        "anchor_id": pa.array([p[2] for p in pairs], pa.int64()),
        "label": pa.array([p[3] for p in pairs], pa.int32()),
        "dt": [p[0] for p in pairs],
        "user_has_history": [p[1] not in cold_users for p in pairs]})
    candidates = pa.table({
        "anchor_id": pa.array([a for _ in (D1, D2) for a in range(1, 13)], pa.int64()),
        "dt": [d for d in (D1, D2) for _ in range(12)],
        "anchor_has_history": [a < 11 for _ in (D1, D2) for a in range(1, 13)],
        "anchor_sessions": pa.array([100 - a for _ in (D1, D2) for a in range(1, 13)],
                                    pa.int64())})
    for split, table in (("train", validation.slice(0, 1)), ("validation", validation),
                         ("candidates", candidates)):
        write_deltalake(str(root / folder / split), table)
    TrainingSetManifest(
        run_id=run_id, end=D2, days=3, window=2, seed=0, shards=1, train_days=["2026-03-01"],
        holdout_days=[D1, D2], tables={s: f"{folder}/{s}" for s in
                                       ("train", "validation", "candidates")},
        format="delta", counts={"train": {"rows": 1}, "validation": {"rows": len(pairs)},
                                "candidates": 24},
        source_versions={}, vocabularies={}).save(root)
    return TrainingSet(root, run_id)


class ById:
    """Every user ranks anchor a at place a; records what it was asked to score."""

    def __init__(self) -> None:
        self.asked = []

    def score(self, day, users, anchors):
        self.asked.append((day, users["user_id"].tolist(), anchors["anchor_id"].tolist()))
        return np.broadcast_to(-anchors["anchor_id"].astype(float),
                               (len(users["user_id"]), len(anchors["anchor_id"])))


class Perfect:
    """1 for the day's positives, 0 elsewhere; `noise` blurs it (seeded)."""

    def __init__(self, pairs=PAIRS, noise: float = 0.0) -> None:
        self.positive = {(d, u, a) for d, u, a, y in pairs if y == 1}
        self.noise = noise

    def score(self, day, users, anchors):
        hits = np.array([[float((day, u, a) in self.positive) for a in anchors["anchor_id"]]
                         for u in users["user_id"]])
        return hits + self.noise * np.random.default_rng(5).normal(size=hits.shape)


def test_pooled_metrics_by_hand(tmp_path):
    data = _training_set(tmp_path)
    by_id, other = ById(), ById()
    metrics = evaluate(data, {"model": by_id, "perfect": Perfect(), "other": other})
    assert by_id.asked == other.asked  # every scorer ranks the same users and candidates
    assert by_id.asked[0] == (D1, [1, 2, 3], list(range(1, 13)))
    m = metrics["model"]
    # five user-days (u2 has no positive on D2)
    assert m["users"] == 5 and m["distinct_users"] == 3
    assert m["recall@10"] == pytest.approx((1 + 0.5 + 0 + 1 + 1) / 5)  # 11, 12 miss the top 10
    assert m["recall@50"] == 1.0  # 12 candidates: all in the top 50
    ndcg10 = [1, (1 / L2(4)) / (1 + 1 / L2(3)), 0, 1 / L2(3), 1 / L2(6)]
    assert m["ndcg@10"] == pytest.approx(np.mean(ndcg10))
    ndcg50 = [1, (1 / L2(4) + 1 / L2(12)) / (1 + 1 / L2(3)), 1 / L2(13), 1 / L2(3), 1 / L2(6)]
    assert m["ndcg@50"] == pytest.approx(np.mean(ndcg50))
    # AUC against every unwatched candidate (100 draws > 12 candidates: all of them):
    # D1 u1: 1 beats all 11 -> 1; D1 u2: unwatched {1, 4-10, 12}: 3 beats 8 of 9, 11 beats 1
    # -> 9/18; D1 u3: 12 beats none -> 0; D2 u1: 2 beats 10 of 11; D2 u3: 5 beats 7 of 11
    assert m["auc"] == pytest.approx((1 + 0.5 + 0 + 10 / 11 + 7 / 11) / 5)
    # labelled pairs: positives {1, 3, 11, 12, 2, 5} vs negatives {2, 4}: wins 1 + 0.5 (tie)
    # against 2, 3 against 4, of 12 pairs
    assert m["auc_labelled"] == pytest.approx(4.5 / 12)
    assert metrics["by_day"][D1]["model"]["recall@10"] == pytest.approx(0.5)  # D1 alone
    assert metrics["by_day"][D2]["model"]["recall@10"] == 1.0
    assert metrics["support"] == {
        "user_days": 5, "users": 3, "positives": 6, "days": {D1: 3, D2: 2},
        "candidates": {D1: 12, D2: 12},
        "slices": {"warm_user": 3, "cold_user": 2, "warm_anchor": 4, "cold_anchor": 2}}
    # cold user 3: D1 misses (12th), D2 hits; cold anchors 11 and 12 are both below 10th
    assert metrics["slices"]["cold_user"]["recall@10"] == 0.5
    assert metrics["slices"]["cold_anchor"]["recall@10"] == 0.0
    assert metrics["baselines"]["perfect"]["ndcg@10"] == 1.0
    assert metrics["baselines"]["other"] == {**m, "slices": metrics["slices"]}


def test_comparisons_and_strict_json(tmp_path):
    data = _training_set(tmp_path)
    metrics = evaluate(data, {"model": ById(), "perfect": Perfect(), "same": ById()})
    versus = metrics["comparisons"]["perfect"]
    assert set(versus) == {"recall@50", "ndcg@10"}
    ndcg = versus["ndcg@10"]
    # the model is never above Perfect and below it on 4 of 5 user-days: the interval
    # excludes 0 (all-tie resamples have probability (1/5)**5)
    assert ndcg["diff"] == pytest.approx(metrics["model"]["ndcg@10"] - 1.0)
    assert ndcg["low"] <= ndcg["diff"] <= ndcg["high"] < 0 and ndcg["user_days"] == 5
    assert metrics["comparisons"]["same"]["ndcg@10"] == {"diff": 0.0, "low": 0.0, "high": 0.0,
                                                         "user_days": 5}
    json.dumps(metrics, allow_nan=False)  # no NaN anywhere, before any writer cleans it


def test_auc_without_explicit_negatives_and_empty_slices(tmp_path):
    positives = [p for p in PAIRS if p[3] == 1]
    data = _training_set(tmp_path, positives, cold_users=())
    metrics = evaluate(data, {"model": Perfect(positives, noise=0.6), "by_id": ById()},
                       EvalSettings(auc_negatives=5, seed=2))
    m = metrics["model"]
    assert 0.5 < m["auc"] < 1.0  # watched ranked above unwatched, mostly (noise 0.6)
    assert m["auc_labelled"] is None and "auc_labelled" in m["note"]
    cold = metrics["slices"]["cold_user"]
    assert cold["users"] == 0 and cold["recall@10"] is None and "no positive" in cold["note"]
    json.dumps(metrics, allow_nan=False)
    again = evaluate(data, {"model": Perfect(positives, noise=0.6), "by_id": ById()},
                     EvalSettings(auc_negatives=5, seed=2))
    assert again["model"]["auc"] == m["auc"]  # the negatives are drawn from the seed
    drawn = [held_out_days(data, EvalSettings(auc_negatives=5, seed=s))[0] for s in (2, 3)]
    assert not np.array_equal(drawn[0].negatives, drawn[1].negatives)
    for day in drawn:  # never a positive of the user-day, never twice
        assert not np.take_along_axis(day.positives, day.negatives, axis=1)[day.valid].any()
        assert all(len(set(row)) == 5 for row in day.negatives.tolist())


def test_excluding_anchors_watched_before_the_day(tmp_path):
    data = _training_set(tmp_path)
    # u1 watched anchor 1 before D1; u3 watched 5 on D1 (before D2); u2 watched 3 on D1
    # itself, which is not "before" D1
    write_lake(tmp_path, [watch(1, 1, "2026-03-01"), watch(3, 5, D1), watch(2, 3, D1)])
    # a watch the labels leave out (u3 on 5 on D1) is still never an "unwatched" negative
    u3 = held_out_days(data, EvalSettings())[0]
    drawn = u3.negatives[2][u3.valid[2]].tolist()
    assert sorted(drawn) == [a - 1 for a in range(1, 12) if a != 5]  # all but 12 and 5
    plain = evaluate(data, {"model": ById()})
    fresh = evaluate(data, {"model": ById()}, EvalSettings(exclude_seen=True))
    assert plain["support"]["user_days"] == 5
    # D1 u1 (positive 1 seen) and D2 u3 (positive 5 seen) leave the pool
    assert fresh["support"]["days"] == {D1: 2, D2: 1}
    # D2 u1: anchor 1 (seen) leaves the ranking, so positive 2 moves up to first
    assert plain["by_day"][D2]["model"]["ndcg@10"] == pytest.approx((1 / L2(3) + 1 / L2(6)) / 2)
    assert fresh["by_day"][D2]["model"]["ndcg@10"] == 1.0


def test_evaluate_scores_of_one_matrix():
    pairs = {"user_id": np.array([1, 1, 2]), "anchor_id": np.array([7, 8, 8]),
             "label": np.array([1, 0, 1])}
    got = evaluate_scores(np.array([1, 2]), np.array([7, 8, 9]),
                          np.array([[0.9, 0.1, 0.5], [0.2, 0.1, 0.3]]), pairs,
                          np.array([False, True]), np.zeros(3, bool))
    # user 1 ranks 7 first; user 2 ranks 8 last of 3: ndcg = 1/log2(4) = 0.5
    assert got["overall"]["users"] == 2 and got["overall"]["ndcg@10"] == pytest.approx(0.75)
    assert got["slices"]["cold_user"]["users"] == 1


def test_bootstrap_interval_covers_the_true_difference_about_95_percent_of_the_time():
    # recall-like 0/1 rows: ours hits with p 0.6, theirs with 0.4, so the true difference is
    # 0.2; over 200 constructed samples of 300 user-days a 95% interval should miss it about
    # 10 times (binomial sd ~3; percentile intervals run a little narrow on small samples)
    covered = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        ours = (rng.random(300) < 0.6).astype(float)
        theirs = (rng.random(300) < 0.4).astype(float)
        got = paired_difference(ours, theirs, resamples=500, seed=seed)
        assert got["low"] <= got["diff"] <= got["high"] and got["user_days"] == 300
        covered += got["low"] <= 0.2 <= got["high"]
    assert 180 <= covered <= 198, covered


def test_bootstrap_interval_excludes_zero_when_one_scorer_is_strictly_better():
    rng = np.random.default_rng(0)
    theirs = rng.random(50)
    ours = theirs + rng.uniform(0.0, 0.01, 50)  # better on every user-day, by a little
    assert paired_difference(ours, theirs)["low"] > 0
    assert paired_difference(theirs, ours)["high"] < 0
    # rows a scorer does not define are left out of the pairs; none left -> None and a note
    nan = np.full(3, np.nan)
    assert paired_difference(ours[:3], nan) == {
        "diff": None, "low": None, "high": None, "user_days": 0,
        "note": "no user-day where both scorers are defined"}
