"""Implicit ALS (Hu, Koren, Volinsky 2008) with the `implicit` library.

The user x anchor matrix of the window holds confidences c = 1 + alpha * log1p(watch seconds)
(the log tames a few marathon sessions); `implicit` fits factors by alternating least
squares and a pair scores the dot product of its factors. Anchors and users without factors
(none in the window) follow in recent-popularity order.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from features.catalog import DAILY_USER_ANCHOR
from training.models import register_baseline
from training.models.base import ScoringContext
from training.models.history import pair_values, read_before, tiered
from training.models.recent_popularity import RecentPopularityScorer, RecentPopularitySettings
from training.reader import Columns


class ALSSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(28, ge=1)
    factors: int = Field(32, ge=1)
    regularization: float = Field(0.05, ge=0)
    iterations: int = Field(15, ge=1)
    alpha: float = Field(1.0, ge=0)  # confidence slope over log1p(watch seconds)
    threads: int = Field(1, ge=1)  # the trainer shares the CPUs
    popularity: RecentPopularitySettings = RecentPopularitySettings()


def confidence(users: np.ndarray, anchors: np.ndarray, watch_seconds: np.ndarray,
               n_users: int, n_anchors: int, alpha: float) -> sp.csr_matrix:
    """`[U', A']` confidences 1 + alpha * log1p(window's watch seconds) of watched pairs."""
    seconds = sp.csr_matrix((watch_seconds.astype(float), (users, anchors)),
                            shape=(n_users, n_anchors))  # summed over the window's days
    seconds.data = 1.0 + alpha * np.log1p(seconds.data)
    return seconds


class _Fit:
    def __init__(self, history: Columns, settings: ALSSettings, seed: int) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        self.users, u = np.unique(history["user_id"].astype(np.int64), return_inverse=True)
        self.anchors, a = np.unique(history["anchor_id"].astype(np.int64), return_inverse=True)
        if not len(self.users):
            self.user_factors = self.anchor_factors = np.zeros((0, settings.factors))
            return
        matrix = confidence(u, a, history["watch_seconds"], len(self.users), len(self.anchors),
                            settings.alpha)
        # implicit's own threads do the work; a threaded BLAS under them slows it down
        with threadpool_limits(limits=1, user_api="blas"):
            model = AlternatingLeastSquares(factors=settings.factors,
                                            regularization=settings.regularization,
                                            iterations=settings.iterations, alpha=1.0,
                                            num_threads=settings.threads, random_state=seed)
            model.fit(matrix, show_progress=False)
        self.user_factors = np.asarray(model.user_factors)
        self.anchor_factors = np.asarray(model.item_factors)


class ALSScorer:
    def __init__(self, lake_root: Path | str, fmt: str = "delta",
                 settings: ALSSettings | None = None, seed: int = 0) -> None:
        self.lake_root, self.fmt, self.seed = Path(lake_root), fmt, seed
        self.settings = settings or ALSSettings()
        self.popularity = RecentPopularityScorer(lake_root, fmt, self.settings.popularity)
        self._fits: dict[str, _Fit] = {}

    def fit(self, day: str) -> _Fit:
        if day not in self._fits:
            history = read_before(self.lake_root, DAILY_USER_ANCHOR, day,
                                  ["user_id", "anchor_id", "watch_seconds"], self.fmt,
                                  self.settings.window_days)
            self._fits[day] = _Fit(history, self.settings, self.seed)
        return self._fits[day]

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        fit = self.fit(day)
        dots, known = pair_values(fit.users, fit.anchors, users["user_id"], anchors["anchor_id"],
                                  lambda u, a: fit.user_factors[u] @ fit.anchor_factors[a].T)
        return tiered(dots, known, self.popularity.anchor_scores(day, anchors["anchor_id"]))


@register_baseline("als")
def als_baseline(context: ScoringContext) -> ALSScorer | None:
    if importlib.util.find_spec("implicit") is None:  # an install without the library
        return None
    data = context.training_set
    return ALSScorer(data.lake_root, data.manifest.format, seed=context.seed)
