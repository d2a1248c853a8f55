"""Ranking metrics and AUC against hand-computed values and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from training.metrics import auc, ranking_metrics, top_k

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
    assert empty["users"] == 0 and np.isnan(empty["recall@1"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_equals_the_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, 40).astype(float)  # many ties
    labels = rng.random(40) < 0.4
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0)
             for p, n in itertools.product(scores[labels], scores[~labels])]
    assert auc(scores, labels) == pytest.approx(np.mean(pairs))


def test_top_k_is_sorted_best_first():
    scores = np.random.default_rng(4).random((5, 30))
    best = top_k(scores, 7)
    assert (best == np.argsort(-scores, axis=1)[:, :7]).all()
