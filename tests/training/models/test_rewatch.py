"""Rewatch: the user's own most-watched anchors first, then recent popularity."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.models.tiny_lake import watch, write_lake
from training.models.recent_popularity import RecentPopularityScorer
from training.models.rewatch import RewatchScorer, RewatchSettings

pytestmark = pytest.mark.unit

DAY = "2026-01-10"


@pytest.fixture()
def lake(tmp_path):
    # user 1: anchor 5 for 3000 s over two days, anchor 6 for 600 s; anchor 7 is the
    # popular one (users 2-4), which user 1 never watched; anchor 8 nobody watched
    return write_lake(tmp_path, [watch(1, 5, "2026-01-08", 1500), watch(1, 5, "2026-01-09", 1500),
                                 watch(1, 6, "2026-01-09", 600)]
                      + [watch(u, 7, "2026-01-09", 300) for u in (2, 3, 4)])


def test_the_users_most_watched_anchor_comes_first(lake):
    scorer = RewatchScorer(lake, "delta", RewatchSettings(half_life_days=1e9))
    anchors = {"anchor_id": np.array([7, 6, 5, 8])}
    scores = scorer.score(DAY, {"user_id": np.array([1, 9])}, anchors)
    # user 1: own anchors by watch seconds (5 > 6), then the rest by popularity (7 > 8)
    assert np.argsort(-scores[0]).tolist() == [2, 1, 0, 3]
    # user 9 has no history: the recent-popularity order, whatever it is
    popularity = RecentPopularityScorer(lake, "delta").anchor_scores(DAY, anchors["anchor_id"])
    assert np.argsort(-scores[1], kind="stable").tolist() == \
        np.argsort(-popularity, kind="stable").tolist()


def test_recent_watching_weighs_more(tmp_path):
    # anchor 11: 1000 s 29 days before the day; anchor 12: 600 s yesterday.
    # half-life 7 days: 1000 * 0.5**(28/7) = 62.5 < 600, so 12 first; without decay, 11
    write_lake(tmp_path, [watch(1, 11, "2025-12-12", 1000), watch(1, 12, "2026-01-09", 600)])
    users, anchors = {"user_id": np.array([1])}, {"anchor_id": np.array([11, 12])}
    recent = RewatchScorer(tmp_path, "delta", RewatchSettings(half_life_days=7)).score(
        DAY, users, anchors)
    flat = RewatchScorer(tmp_path, "delta", RewatchSettings(half_life_days=1e9)).score(
        DAY, users, anchors)
    assert recent[0, 1] > recent[0, 0] and flat[0, 0] > flat[0, 1]
