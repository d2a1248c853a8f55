"""Ranking metrics and AUC against hand-computed values and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from training.metrics import (
    auc,
    per_user_metrics,
    ranking_metrics,
    sample_negatives,
    sampled_auc,
    top_k,
)

pytestmark = pytest.mark.unit


def test_recall_and_ndcg_by_hand():
    # user 0 ranks candidates [2, 0, 1, 3]; positives {0, 3}
    # recall@1 = 0, recall@2 = 1/2; ndcg@2 = (1/log2(3)) / (1 + 1/log2(3))
    # user 1 ranks [1, ...]; positive {1}: recall@1 = 1, ndcg@1 = 1
    scores = np.array([[0.8, 0.5, 0.9, 0.1], [0.1, 0.9, 0.3, 0.2]])
    positives = np.array([[True, False, False, True], [False, True, False, False]])
    got = ranking_metrics(scores, positives, ks=(1, 2))
    assert got["users"] == 2
    assert got["recall@1"] == pytest.approx((0 + 1) / 2)
    assert got["recall@2"] == pytest.approx((0.5 + 1) / 2)
    ndcg_user0 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert got["ndcg@2"] == pytest.approx((ndcg_user0 + 1) / 2)


def test_slices_count_only_their_positives():
    scores = np.array([[0.9, 0.8, 0.1]])
    positives = np.array([[True, False, True]])
    cold = np.array([[False, False, True]])  # only candidate 2 is cold
    assert ranking_metrics(scores, positives, (1,), cold)["recall@1"] == 0.0
    assert ranking_metrics(scores, positives, (3,), cold)["recall@3"] == 1.0
    empty = ranking_metrics(scores, positives, (1,), np.zeros_like(cold))
    # no user to average over: None (strict JSON), and the note says why
    assert empty["users"] == 0 and empty["recall@1"] is None and "no user" in empty["note"]


def test_per_user_rows_are_nan_where_a_row_has_no_positive():
    scores = np.array([[0.9, 0.8, 0.1], [0.3, 0.2, 0.1]])
    positives = np.array([[False, True, False], [False, False, False]])
    rows = per_user_metrics(scores, positives, (1, 2))
    assert rows["recall@1"][0] == 0.0 and rows["recall@2"][0] == 1.0
    assert rows["ndcg@2"][0] == pytest.approx(1 / np.log2(3))
    assert np.isnan(rows["recall@1"][1])  # left out of every mean, never written as NaN


def test_sampled_negatives_avoid_the_excluded_and_auc_counts_ties_half():
    excluded = np.array([[True, False, False, True], [True, True, True, False]])
    drawn, valid = sample_negatives(excluded, 3, np.random.default_rng(0))
    assert valid.sum(axis=1).tolist() == [2, 1]  # row 1 has one allowed candidate
    assert not np.take_along_axis(excluded, drawn, axis=1)[valid].any()
    # row 0: positive 0 (score 0.5) vs negatives 1 (0.5, a tie) and 2 (0.1): (0.5 + 1) / 2
    # row 1: positives 0, 1 (0.9, 0.1) vs negative 3 (0.2): (1 + 0) / 2; row 2 none: NaN
    scores = np.array([[0.5, 0.5, 0.1, 0.0], [0.9, 0.1, 0.5, 0.2], [0.1, 0.2, 0.3, 0.4]])
    positives = np.array([[True, False, False, False], [True, True, False, False],
                          [False] * 4])
    negatives = np.array([[1, 2], [3, 3], [0, 1]])
    valid = np.array([[True, True], [True, False], [True, True]])
    got = sampled_auc(scores, positives, negatives, valid)
    assert got[:2].tolist() == [0.75, 0.5] and np.isnan(got[2])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_the_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, 40).astype(float)  # many ties
    labels = rng.random(40) < 0.4
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0)
             for p, n in itertools.product(scores[labels], scores[~labels])]
    assert auc(scores, labels) == pytest.approx(np.mean(pairs))
    assert auc(scores, np.ones_like(labels)) is None  # one class only: undefined


def test_top_k_is_sorted_best_first():
    scores = np.random.default_rng(4).random((5, 30))
    best = top_k(scores, 7)
    assert (best == np.argsort(-scores, axis=1)[:, :7]).all()
