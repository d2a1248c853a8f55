"""Recent popularity: sessions per live day, recent days weighing more."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.models.tiny_lake import watch, write_lake
from training.models.recent_popularity import RecentPopularityScorer, RecentPopularitySettings

pytestmark = pytest.mark.unit

DAY = "2026-01-10"
FLAT = RecentPopularitySettings(half_life_days=1e9)  # no decay: plain sums


def test_an_anchor_live_on_fewer_days_is_not_outranked_by_being_live_more(tmp_path):
    # anchor 1: live 4 days, 2 sessions a day: 8 / (prior 1 + 4 live days) = 1.6
    # anchor 2: live 1 day, 6 sessions: 6 / (1 + 1) = 3.0, first despite fewer sessions
    write_lake(tmp_path, [watch(1, 1, f"2026-01-0{d}", sessions=2) for d in (6, 7, 8, 9)]
               + [watch(2, 2, "2026-01-09", sessions=6)])
    scores = RecentPopularityScorer(tmp_path, "delta", FLAT).score(
        DAY, {"user_id": np.array([7, 8])}, {"anchor_id": np.array([1, 2, 3])})
    np.testing.assert_allclose(scores[0], np.log1p([1.6, 3.0, 0.0]))  # 3: never watched
    np.testing.assert_array_equal(scores[0], scores[1])  # the same list for every user


def test_recent_days_weigh_more(tmp_path):
    # equal sessions, each live one day; anchor 1 eight days ago, anchor 2 yesterday.
    # half-life 1 day: anchor 1 weighs 0.5**7 -> 5 * 0.5**7 / (1 + 0.5**7) ~ 0.039, anchor 2 2.5
    write_lake(tmp_path, [watch(1, 1, "2026-01-02", sessions=5),
                          watch(2, 2, "2026-01-09", sessions=5)])
    scorer = RecentPopularityScorer(tmp_path, "delta",
                                    RecentPopularitySettings(half_life_days=1.0))
    row = scorer.anchor_scores(DAY, np.array([1, 2]))
    w = 0.5 ** 7
    np.testing.assert_allclose(row, np.log1p([5 * w / (1 + w), 2.5]))
    # outside the window, an anchor counts nothing
    short = RecentPopularityScorer(tmp_path, "delta", RecentPopularitySettings(window_days=3))
    assert short.anchor_scores(DAY, np.array([1]))[0] == 0.0
