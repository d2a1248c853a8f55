"""The cold-anchor offset: the one-standard-error choice and the fit on held-out days."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluate import EvalSettings, make_day
from training.models.two_tower.cold_offset import LOGIT_STEPS, choose, fit

pytestmark = pytest.mark.unit


def test_choose_takes_the_largest_offset_within_one_standard_error_of_the_best():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 1, 400)
    se = base.std(ddof=1) / np.sqrt(len(base))
    # offset 1 is best; 2 costs half a standard error, 3 costs two
    rows = np.stack([base - 0.01, base, base - 0.5 * se, base - 2 * se])
    assert choose(rows, "one_se") == 2
    assert choose(rows, "best") == 1
    assert choose(rows, "none") == 0
    assert choose(rows[:, :0], "one_se") == 0  # no validation user-day: no offset
    # the memory scale takes the other end: the smallest within one standard error
    assert choose(rows[1:], "one_se", largest=False) == 0
    assert choose(np.stack([base - 2 * se, base, base - 0.5 * se]), "one_se",
                  largest=False) == 1


def test_a_larger_validation_set_allows_a_smaller_offset():
    cost = 0.02  # each offset step costs this much recall on every user-day
    small, large = (np.stack([np.tile([0.2, 0.8], n) - step * cost for step in range(4)])
                    for n in (5, 5000))
    assert choose(small, "one_se") == 3 and choose(large, "one_se") == 0


def _day(cold_positive_rank: int) -> tuple:
    """One user, 60 anchors (the last 10 cold); the user's positives: warm anchor 0 and the
    first cold anchor, which scores 0.01 below the 50th warm anchor when the rank is > 50."""
    users = {"user_id": np.array([1]), "user_has_history": np.array([True])}
    anchors = {"anchor_id": np.arange(60), "anchor_has_history": np.arange(60) < 50}
    pairs = {"user_id": np.array([1, 1]), "anchor_id": np.array([0, 50]),
             "label": np.array([1, 1])}
    day = make_day("2026-01-14", users, anchors, pairs, EvalSettings(auc_negatives=5))
    scores = np.linspace(1.0, 0.5, 60)[None, :].copy()
    scores[0, 50] = scores[0, 49] - 0.001 if cold_positive_rank > 50 else 1.5
    return day, scores


def test_fit_lifts_a_cold_positive_just_below_the_top_k_into_it():
    day, scores = _day(cold_positive_rank=51)
    out = fit([scores], [day], gamma=20.0, rule="best")
    table = {row["logit"]: row for row in out["table"]}
    assert len(out["table"]) == len(LOGIT_STEPS)
    assert table[0.0]["recall@50"] == 0.5 and table[0.0]["cold_anchor_recall@50"] == 0.0
    assert out["logit"] > 0 and out["offset"] == out["logit"] / 20.0
    assert table[out["logit"]]["recall@50"] == 1.0


def test_fit_adds_nothing_when_cold_anchors_already_rank_well():
    day, scores = _day(cold_positive_rank=1)
    out = fit([scores], [day], gamma=20.0, rule="best")
    assert out["logit"] == 0.0 and out["offset"] == 0.0


def test_fit_in_chunks_of_users_gives_the_same_table(monkeypatch):
    from training.models.two_tower import cold_offset

    rng = np.random.default_rng(3)
    users = {"user_id": np.arange(30), "user_has_history": np.ones(30, bool)}
    anchors = {"anchor_id": np.arange(80), "anchor_has_history": rng.uniform(size=80) > 0.2}
    picked = rng.uniform(size=(30, 80)) < 0.1
    u, a = np.nonzero(picked)
    day = make_day("2026-01-14", users, anchors,
                   {"user_id": u, "anchor_id": a, "label": np.ones(len(u), int)},
                   EvalSettings(auc_negatives=5))
    scores = rng.normal(size=(30, 80))
    whole = fit([scores], [day], gamma=20.0, rule="one_se")
    monkeypatch.setattr(cold_offset, "CHUNK", 7)
    assert fit([scores], [day], gamma=20.0, rule="one_se") == whole
    assert any(row["cold_anchor_recall@50"] for row in whole["table"])
