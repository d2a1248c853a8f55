"""Popularity baseline: every user gets the anchors with the most sessions in the window."""

from __future__ import annotations

import numpy as np

from training.models import register_baseline
from training.models.base import ScoringContext
from training.reader import Columns


class PopularityScorer:
    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        sessions = np.log1p(np.asarray(anchors["anchor_sessions"], dtype=float))
        return np.broadcast_to(sessions[None, :], (len(users["user_id"]), len(sessions))).copy()


@register_baseline("popularity")
def popularity_baseline(context: ScoringContext) -> PopularityScorer:
    return PopularityScorer()
