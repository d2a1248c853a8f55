"""Anchor item-CF: anchors co-watched with the ones the user watched lately.

Similarity of anchors i and j is the shrunk cosine of their viewer sets over the window,
|V_i & V_j| / (sqrt(|V_i| |V_j|) + shrinkage), keeping each anchor's `neighbours` most
similar others (not itself: the rewatch baseline covers that). A user's score for an anchor
is the similarity-weighted sum over the anchors they watched in the last `recent_days`, each
weighted by log1p(watch seconds) halving every `half_life_days`. Anchors reached by no
neighbour, and users without recent anchors, follow in recent-popularity order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from features.catalog import DAILY_USER_ANCHOR
from features.days import add_days
from training.models import register_baseline
from training.models.base import ScoringContext
from training.models.history import decay, pair_values, read_before, tiered
from training.models.recent_popularity import RecentPopularityScorer, RecentPopularitySettings
from training.reader import Columns


class ItemCFSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(28, ge=1)  # co-watching history of the similarities
    recent_days: int = Field(7, ge=1)  # the user's anchors that vote
    half_life_days: float = Field(3.0, gt=0)
    shrinkage: float = Field(10.0, ge=0)  # damps similarities resting on few viewers
    neighbours: int = Field(50, ge=1)
    popularity: RecentPopularitySettings = RecentPopularitySettings()


def top_neighbours(similarity: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Each row of `similarity` cut to its `n` largest entries."""
    similarity = similarity.tocsr()
    rows, cols, vals = [], [], []
    for i in range(similarity.shape[0]):
        start, end = similarity.indptr[i], similarity.indptr[i + 1]
        values = similarity.data[start:end]
        keep = np.argpartition(-values, n - 1)[:n] if len(values) > n else np.arange(len(values))
        rows.append(np.full(len(keep), i))
        cols.append(similarity.indices[start:end][keep])
        vals.append(values[keep])
    if not rows:
        return sp.csr_matrix(similarity.shape)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=similarity.shape)


def anchor_similarity(users: np.ndarray, anchors: np.ndarray, n_users: int, n_anchors: int,
                      shrinkage: float, neighbours: int) -> sp.csr_matrix:
    """`[A', A']` shrunk cosine of co-watching, zero diagonal, top `neighbours` per row.

    Args:
      users, anchors: row and column index of every (user, anchor) watch in the window.
    """
    watched = sp.csr_matrix((np.ones(len(users)), (users, anchors)), shape=(n_users, n_anchors))
    watched.data[:] = 1.0  # duplicates (several days) were summed: a viewer counts once
    co = (watched.T @ watched).tocsr()
    norms = np.sqrt(co.diagonal())
    co.setdiag(0.0)
    co.eliminate_zeros()
    co = co.tocoo()
    values = co.data / (norms[co.row] * norms[co.col] + shrinkage)
    similarity = sp.csr_matrix((values, (co.row, co.col)), shape=co.shape)
    return top_neighbours(similarity, neighbours)


class _Fit:
    def __init__(self, history: Columns, day: str, settings: ItemCFSettings) -> None:
        self.anchors, a = np.unique(history["anchor_id"].astype(np.int64), return_inverse=True)
        _, u = np.unique(history["user_id"].astype(np.int64), return_inverse=True)
        self.similarity = anchor_similarity(u, a, int(u.max(initial=-1)) + 1, len(self.anchors),
                                            settings.shrinkage, settings.neighbours)
        recent = history["dt"] >= add_days(day, -settings.recent_days)
        self.users, ru = np.unique(history["user_id"][recent].astype(np.int64),
                                   return_inverse=True)
        weight = (np.log1p(history["watch_seconds"][recent].astype(float))
                  * decay(history["dt"][recent], day, settings.half_life_days))
        self.profile = sp.csr_matrix((weight, (ru, a[recent])),
                                     shape=(len(self.users), len(self.anchors)))


class ItemCFScorer:
    def __init__(self, lake_root: Path | str, fmt: str = "delta",
                 settings: ItemCFSettings | None = None) -> None:
        self.lake_root, self.fmt = Path(lake_root), fmt
        self.settings = settings or ItemCFSettings()
        self.popularity = RecentPopularityScorer(lake_root, fmt, self.settings.popularity)
        self._fits: dict[str, _Fit] = {}

    def fit(self, day: str) -> _Fit:
        if day not in self._fits:
            s = self.settings
            history = read_before(self.lake_root, DAILY_USER_ANCHOR, day,
                                  ["user_id", "anchor_id", "watch_seconds"], self.fmt,
                                  max(s.window_days, s.recent_days))
            self._fits[day] = _Fit(history, day, s)
        return self._fits[day]

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        fit = self.fit(day)
        votes, _ = pair_values(
            fit.users, fit.anchors, users["user_id"], anchors["anchor_id"],
            lambda u, a: (fit.profile[u] @ fit.similarity).tocsc()[:, a].toarray())
        return tiered(votes, votes > 0, self.popularity.anchor_scores(day, anchors["anchor_id"]))


@register_baseline("item_cf")
def item_cf_baseline(context: ScoringContext) -> ItemCFScorer:
    data = context.training_set
    return ItemCFScorer(data.lake_root, data.manifest.format)
