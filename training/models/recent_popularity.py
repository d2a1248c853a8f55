"""Recent popularity: sessions per live day over the last weeks, recent days weighing more.

An anchor's score for day D is log1p(sum_d w_d sessions_d / (prior + sum_d w_d live_d)) over
days d in [D - window_days, D), with w_d halving every `half_life_days`: an anchor that was
live on few days is not outranked by one that was simply live more often. Every user gets
the same list; the other baselines back off to it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.catalog import DAILY_USER_ANCHOR, LIVE_SCHEDULE
from training.models import register_baseline
from training.models.base import ScoringContext
from training.models.history import decay, positions, read_before
from training.reader import Columns


class RecentPopularitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(28, ge=1)
    half_life_days: float = Field(7.0, gt=0)
    live_days_prior: float = Field(1.0, gt=0)  # shrinks anchors seen live on one day only


def recent_popularity(lake_root: Path | str, fmt: str, day: str,
                      settings: RecentPopularitySettings) -> tuple[np.ndarray, np.ndarray]:
    """(sorted anchor ids `[A']`, their scores `[A']`) from the days before `day`."""
    watched = read_before(lake_root, DAILY_USER_ANCHOR, day, ["anchor_id", "sessions"], fmt,
                          settings.window_days)
    live = read_before(lake_root, LIVE_SCHEDULE, day, ["anchor_id"], fmt,
                       settings.window_days)
    sessions = pd.Series(watched["sessions"] * decay(watched["dt"], day,
                                                     settings.half_life_days),
                         index=watched["anchor_id"], dtype=float).groupby(level=0).sum()
    live_days = pd.Series(decay(live["dt"], day, settings.half_life_days),
                          index=live["anchor_id"], dtype=float).groupby(level=0).sum()
    table = pd.concat([sessions.rename("sessions"), live_days.rename("live")], axis=1)
    table = table.fillna(0.0).sort_index()
    rate = table["sessions"].to_numpy() / (settings.live_days_prior + table["live"].to_numpy())
    return table.index.to_numpy(np.int64), np.log1p(rate)


class RecentPopularityScorer:
    def __init__(self, lake_root: Path | str, fmt: str = "delta",
                 settings: RecentPopularitySettings | None = None) -> None:
        self.lake_root, self.fmt = Path(lake_root), fmt
        self.settings = settings or RecentPopularitySettings()
        self._fits: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def anchor_scores(self, day: str, anchor_ids: np.ndarray) -> np.ndarray:
        """`[A]` scores of `anchor_ids` on `day`; 0 for an anchor unseen in the window."""
        if day not in self._fits:
            self._fits[day] = recent_popularity(self.lake_root, self.fmt, day, self.settings)
        known, scores = self._fits[day]
        pos, found = positions(known, anchor_ids)
        return np.where(found, scores[pos] if len(known) else 0.0, 0.0)

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        row = self.anchor_scores(day, anchors["anchor_id"])
        return np.broadcast_to(row[None, :], (len(users["user_id"]), len(row))).copy()


@register_baseline("recent_popularity")
def recent_popularity_baseline(context: ScoringContext) -> RecentPopularityScorer:
    data = context.training_set
    return RecentPopularityScorer(data.lake_root, data.manifest.format)
