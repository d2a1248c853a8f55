"""Anchor item-CF: shrunk cosine of co-watching, top neighbours, the user's recent anchors
vote."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.models.tiny_lake import watch, write_lake
from training.models.item_cf import ItemCFScorer, ItemCFSettings, anchor_similarity

pytestmark = pytest.mark.unit

DAY = "2026-01-10"


def test_similarity_is_the_shrunk_cosine_of_viewer_sets():
    # viewers: anchor 0 {0, 1, 2}, anchor 1 {0, 1}, anchor 2 {2}; user 0 watched 0 twice
    users = np.array([0, 0, 0, 1, 1, 2, 2])
    anchors = np.array([0, 0, 1, 0, 1, 0, 2])
    sim = anchor_similarity(users, anchors, 3, 3, shrinkage=1.0, neighbours=5).toarray()
    # |V0 & V1| = 2, |V0| = 3, |V1| = 2: 2 / (sqrt(6) + 1); |V0 & V2| = 1: 1 / (sqrt(3) + 1)
    assert sim[0, 1] == pytest.approx(2 / (np.sqrt(6) + 1))
    assert sim[0, 2] == pytest.approx(1 / (np.sqrt(3) + 1))
    assert sim[1, 2] == 0.0 and np.diag(sim).tolist() == [0.0, 0.0, 0.0]
    top = anchor_similarity(users, anchors, 3, 3, shrinkage=1.0, neighbours=1).toarray()
    assert top[0].tolist() == [0.0, sim[0, 1], 0.0]  # anchor 0 keeps its nearest only


def test_a_co_watched_anchor_scores_above_a_more_popular_unrelated_one(tmp_path):
    # users 1-3 watch anchors 1 and 2; users 4-8 watch anchor 3 only (more popular than 2);
    # user 9 watched anchor 1 yesterday
    watches = ([watch(u, a, "2026-01-08") for u in (1, 2, 3) for a in (1, 2)]
               + [watch(u, 3, "2026-01-08") for u in (4, 5, 6, 7, 8)]
               + [watch(9, 1, "2026-01-09")])
    write_lake(tmp_path, watches)
    scorer = ItemCFScorer(tmp_path, "delta", ItemCFSettings(shrinkage=1.0))
    scores = scorer.score(DAY, {"user_id": np.array([9, 42])},
                          {"anchor_id": np.array([2, 3, 1])})
    assert scores[0, 0] > scores[0, 1]  # 2 is reached from 1; 3 only by popularity
    assert scores[1, 1] > scores[1, 0]  # user 42 has no history: popularity, 3 first
