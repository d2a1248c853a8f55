"""Anchor item-CF: shrunk cosine of co-watching, top neighbours, the user's recent anchors
vote."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.models.tiny_lake import watch, write, write_lake
from training.models.item_cf import ItemCFScorer, ItemCFSettings, anchor_similarity, most_watched

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


def test_ties_go_to_the_smaller_anchor_and_votes_to_the_most_watched():
    # anchor 0 shares one viewer with each of 1, 2 and 3: a three-way tie
    users = np.array([0, 0, 1, 1, 2, 2])
    anchors = np.array([0, 1, 0, 2, 0, 3])
    top = anchor_similarity(users, anchors, 3, 4, shrinkage=0.0, neighbours=2).toarray()
    assert np.flatnonzero(top[0]).tolist() == [1, 2]
    # user 7: anchor 5 (10 + 10 s), 6 (15 s), 4 (15 s: ties with 6, smaller id first)
    u, a = most_watched(np.array([7, 7, 7, 7, 8]), np.array([5, 6, 5, 4, 6]),
                        np.array([10.0, 15.0, 10.0, 15.0, 1.0]), 2)
    assert sorted(zip(u.tolist(), a.tolist(), strict=True)) == [(7, 4), (7, 5), (8, 6)]


def _neighbours_day(root, rows, **counts):
    """A hand-made anchor_neighbours partition of DAY and its day record."""
    from features import day_status
    from features.catalog import ANCHOR_NEIGHBOURS

    write(root, ANCHOR_NEIGHBOURS, [{"anchor_id": i, "neighbour_id": j, "similarity": s,
                                     "co_viewers": 1, "window_days": 28, "dt": DAY}
                                    for i, j, s in rows])
    day_status.finish(root, "anchor_neighbours", DAY,
                      {"window": 28, "shrinkage": 1.0, "top_n": 50, "max_user_anchors": 200,
                       **counts}, {}, {})


def test_the_neighbours_table_of_the_day_is_used_when_its_settings_match(tmp_path):
    # co-watching links 1 with 2; the table (as if built from other days) links 1 with 3
    watches = ([watch(u, a, "2026-01-08") for u in (1, 2, 3) for a in (1, 2)]
               + [watch(u, 3, "2026-01-08") for u in (4, 5, 6)] + [watch(9, 1, "2026-01-09")])
    write_lake(tmp_path, watches)
    _neighbours_day(tmp_path, [(1, 3, 0.9), (3, 1, 0.9)])
    users, anchors = {"user_id": np.array([9])}, {"anchor_id": np.array([2, 3])}
    scorer = ItemCFScorer(tmp_path, "delta", ItemCFSettings(shrinkage=1.0))
    scores = scorer.score(DAY, users, anchors)
    assert scorer.fit(DAY).source == "anchor_neighbours" and scores[0, 1] > scores[0, 0]
    for settings in (ItemCFSettings(shrinkage=2.0), ItemCFSettings(shrinkage=1.0, neighbours=60),
                     ItemCFSettings(shrinkage=1.0, use_table=False)):
        other = ItemCFScorer(tmp_path, "delta", settings)
        assert other.fit(DAY).source == "numpy"
        assert other.score(DAY, users, anchors)[0, 0] > other.score(DAY, users, anchors)[0, 1]


def test_a_partition_without_its_day_record_is_not_used(tmp_path):
    from features import day_status

    write_lake(tmp_path, [watch(u, a, "2026-01-08") for u in (1, 2) for a in (1, 2)])
    _neighbours_day(tmp_path, [(1, 3, 0.9)])
    day_status.begin(tmp_path, "anchor_neighbours", DAY)  # an interrupted re-run
    scorer = ItemCFScorer(tmp_path, "delta", ItemCFSettings(shrinkage=1.0))
    assert scorer.fit(DAY).source == "numpy"
