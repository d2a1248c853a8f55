"""Implicit ALS (the `implicit` library) on a two-cluster lake."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.models.tiny_lake import watch, write_lake
from training.models.als import ALSScorer, ALSSettings, confidence

pytestmark = pytest.mark.unit

pytest.importorskip("implicit")

DAY = "2026-01-10"
SMALL = ALSSettings(factors=4, regularization=0.01, iterations=20)


def test_confidence_is_one_plus_alpha_log1p_seconds_summed_over_days():
    matrix = confidence(np.array([0, 0, 1]), np.array([0, 0, 1]), np.array([100.0, 200.0, 0.0]),
                        2, 2, alpha=2.0)
    # (0, 0): two days, 300 s in all; (1, 1): watched for 0 s still has the base confidence 1
    np.testing.assert_allclose(matrix.toarray(), [[1 + 2 * np.log1p(300.0), 0.0], [0.0, 1.0]])


def test_als_ranks_a_co_watched_anchor_above_an_unrelated_one(tmp_path):
    # users 1-10 watch anchors 1-3, users 11-20 anchors 4-6; user 21 watched anchor 1 only
    watches = ([watch(u, a, "2026-01-08") for u in range(1, 11) for a in (1, 2, 3)]
               + [watch(u, a, "2026-01-08") for u in range(11, 21) for a in (4, 5, 6)]
               + [watch(21, 1, "2026-01-09")])
    write_lake(tmp_path, watches)
    users = {"user_id": np.array([21, 99])}
    anchors = {"anchor_id": np.array([2, 5, 77])}  # 77: never watched
    scores = ALSScorer(tmp_path, "delta", SMALL, seed=1).score(DAY, users, anchors)
    assert scores[0, 0] > scores[0, 1] > scores[0, 2]  # own cluster, other, no factors
    assert np.isfinite(scores).all()
    again = ALSScorer(tmp_path, "delta", SMALL, seed=1).score(DAY, users, anchors)
    np.testing.assert_allclose(scores, again, rtol=1e-5)  # seeded
