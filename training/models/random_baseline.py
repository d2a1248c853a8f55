"""Random baseline: uniform scores, the floor every model must clear."""

from __future__ import annotations

import numpy as np

from training.models import register_baseline
from training.models.base import ScoringContext
from training.reader import Columns


class RandomScorer:
    def __init__(self, seed: int) -> None:
        self.seed = seed

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        # seeded per day: the same run scores the same day identically
        rng = np.random.default_rng([self.seed, int(day.replace("-", ""))])
        return rng.random((len(users["user_id"]), len(anchors["anchor_id"])))


@register_baseline("random")
def random_baseline(context: ScoringContext) -> RandomScorer:
    return RandomScorer(context.seed)
