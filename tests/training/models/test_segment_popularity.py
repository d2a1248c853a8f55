"""Segment popularity: the user's (gender, age_bucket, city) segment, backing off to
(gender, age_bucket), then global, when a segment is small."""

from __future__ import annotations

import numpy as np
import pytest

from tests.training.models.tiny_lake import user, watch, write_lake
from training.models.segment_popularity import SegmentPopularityScorer, SegmentPopularitySettings

pytestmark = pytest.mark.unit

DAY = "2026-01-10"
ANCHORS = {"anchor_id": np.array([10, 20, 30])}


@pytest.fixture()
def lake(tmp_path):
    # f|18-24|X: user 1 alone (3 sessions on anchor 10); f|18-24|Y: users 2 and 3 (one
    # session each on anchor 20); m|25-34|Z: users 4-6 (5 sessions each on anchor 30)
    users = [user(1, "f", "18-24", "X"), user(2, "f", "18-24", "Y"), user(3, "f", "18-24", "Y"),
             *[user(u, "m", "25-34", "Z") for u in (4, 5, 6)]]
    watches = [watch(1, 10, "2026-01-09", sessions=3), watch(2, 20, "2026-01-09"),
               watch(3, 20, "2026-01-09"), *[watch(u, 30, "2026-01-09", sessions=5)
                                              for u in (4, 5, 6)]]
    return write_lake(tmp_path, watches, users)


def _scored(ids, genders, ages, cities):
    return {"user_id": np.array(ids), "user_gender": np.array(genders, dtype=object),
            "user_age_bucket": np.array(ages, dtype=object),
            "user_city": np.array(cities, dtype=object)}


def test_a_small_segment_backs_off_to_a_coarser_one(lake):
    scorer = SegmentPopularityScorer(lake, "delta", SegmentPopularitySettings(
        min_users=2, min_sessions=1, half_life_days=1e9))
    # 7: f|18-24|X has one user < 2 -> f|18-24 (users 1-3): 10 has 3 of 5 sessions, 20 2 of 5
    # 8: f|18-24|Y has two users -> its own list: all on 20
    # 9: x|65+|W has nobody -> global: 30 has 15 of 20 sessions, 10 3, 20 2
    users = _scored([7, 8, 9], ["f", "f", "x"], ["18-24", "18-24", "65+"], ["X", "Y", "W"])
    assert scorer.segments(DAY, users) == [(1, "f|18-24"), (0, "f|18-24|Y"), (2, "")]
    np.testing.assert_allclose(scorer.score(DAY, users, ANCHORS),
                               [[0.6, 0.4, 0.0], [0.0, 1.0, 0.0], [0.15, 0.1, 0.75]])
    # a stricter minimum makes f|18-24|Y small too
    strict = SegmentPopularityScorer(lake, "delta", SegmentPopularitySettings(
        min_users=3, min_sessions=1))
    assert strict.segments(DAY, users)[1] == (1, "f|18-24")


def test_without_demographic_columns_the_users_table_says_the_segment(lake):
    scorer = SegmentPopularityScorer(lake, "delta", SegmentPopularitySettings(
        min_users=2, min_sessions=1))
    assert scorer.segments(DAY, {"user_id": np.array([2, 4, 99])}) == [
        (0, "f|18-24|Y"), (0, "m|25-34|Z"), (2, "")]  # 99: unknown before the day
