"""Rewatch: each user's own most-watched anchors, then recent popularity for the rest.

Live streaming is repeat-heavy (DESIGN.md, Models): most of a day's positives are anchors
the user watched before. A pair's score is log1p of the user's watch seconds on the anchor
over every day before the scored one, each day's seconds halving every `half_life_days`;
anchors the user never watched (and users without history) follow, in recent-popularity
order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from features.catalog import DAILY_USER_ANCHOR
from training.models import register_baseline
from training.models.base import ScoringContext
from training.models.history import decay, pair_values, read_before, tiered
from training.models.recent_popularity import RecentPopularityScorer, RecentPopularitySettings
from training.reader import Columns


class RewatchSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    half_life_days: float = Field(14.0, gt=0)
    window_days: int | None = Field(None, ge=1)  # None: the whole history before the day
    popularity: RecentPopularitySettings = RecentPopularitySettings()


class _Fit:
    """A user x anchor matrix of decayed watch seconds, with its sorted ids."""

    def __init__(self, rows: Columns, day: str, half_life_days: float) -> None:
        self.users, u = np.unique(rows["user_id"].astype(np.int64), return_inverse=True)
        self.anchors, a = np.unique(rows["anchor_id"].astype(np.int64), return_inverse=True)
        weight = rows["watch_seconds"].astype(float) * decay(rows["dt"], day, half_life_days)
        self.matrix = sp.csr_matrix((weight, (u, a)), shape=(len(self.users), len(self.anchors)))


class RewatchScorer:
    def __init__(self, lake_root: Path | str, fmt: str = "delta",
                 settings: RewatchSettings | None = None) -> None:
        self.lake_root, self.fmt = Path(lake_root), fmt
        self.settings = settings or RewatchSettings()
        self.popularity = RecentPopularityScorer(lake_root, fmt, self.settings.popularity)
        self._fits: dict[str, _Fit] = {}

    def fit(self, day: str) -> _Fit:
        if day not in self._fits:
            rows = read_before(self.lake_root, DAILY_USER_ANCHOR, day,
                               ["user_id", "anchor_id", "watch_seconds"], self.fmt,
                               self.settings.window_days)
            self._fits[day] = _Fit(rows, day, self.settings.half_life_days)
        return self._fits[day]

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        fit = self.fit(day)
        seconds, _ = pair_values(fit.users, fit.anchors, users["user_id"], anchors["anchor_id"],
                                 lambda u, a: fit.matrix[u][:, a].toarray())
        return tiered(np.log1p(seconds), seconds > 0,
                      self.popularity.anchor_scores(day, anchors["anchor_id"]))


@register_baseline("rewatch")
def rewatch_baseline(context: ScoringContext) -> RewatchScorer:
    data = context.training_set
    return RewatchScorer(data.lake_root, data.manifest.format)
