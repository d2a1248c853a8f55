"""Anchor item-CF: anchors co-watched with the ones the user watched lately.

Similarity of anchors i and j is the shrunk cosine of their viewer sets over the window,
|V_i & V_j| / (sqrt(|V_i| |V_j|) + shrinkage), keeping each anchor's `neighbours` most
similar others (not itself: the rewatch baseline covers that; ties to the smaller id). A
user votes with at most `max_user_anchors` anchors, their most watched in the window (this
bounds the co-viewer join of the Spark job, and NumPy does the same to give the same
numbers). A user's score for an anchor is the similarity-weighted sum over the anchors they
watched in the last `recent_days`, each weighted by log1p(watch seconds) halving every
`half_life_days`. Anchors reached by no neighbour, and users without recent anchors, follow
in recent-popularity order.

The similarities of the scored day D come from the `anchor_neighbours` table (partition
dt=D, built by the Spark job `jobs.anchor_neighbours` from days D-W .. D-1 only) when the
day ledger holds a complete, current record of that day built with these settings (window,
shrinkage, vote cap, at least `neighbours` per anchor); otherwise they are computed here in
NumPy from daily_user_anchor, with the same result.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from features import day_status
from features.catalog import ANCHOR_NEIGHBOURS, DAILY_USER_ANCHOR, PARTITION_COLUMN
from features.days import add_days
from features.rules import (
    ITEM_CF_MAX_USER_ANCHORS,
    ITEM_CF_SHRINKAGE,
    ITEM_CF_TOP_N,
    ITEM_CF_WINDOW_DAYS,
)
from training.models import register_baseline
from training.models.base import ScoringContext
from training.models.history import decay, pair_values, positions, read_before, tiered
from training.models.recent_popularity import RecentPopularityScorer, RecentPopularitySettings
from training.reader import Columns, to_numpy

log = logging.getLogger(__name__)
NEIGHBOURS_JOB = ANCHOR_NEIGHBOURS.name  # the job's name in the day ledger


class ItemCFSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(ITEM_CF_WINDOW_DAYS, ge=1)  # co-watching history
    recent_days: int = Field(7, ge=1)  # the user's anchors that vote
    half_life_days: float = Field(3.0, gt=0)
    shrinkage: float = Field(ITEM_CF_SHRINKAGE, ge=0)  # damps few-viewer similarities
    neighbours: int = Field(ITEM_CF_TOP_N, ge=1)
    # a user's most watched anchors in the window vote (bounds the co-watching pairs)
    max_user_anchors: int = Field(ITEM_CF_MAX_USER_ANCHORS, ge=2)
    use_table: bool = True  # read anchor_neighbours when it matches (False: always NumPy)
    popularity: RecentPopularitySettings = RecentPopularitySettings()


def top_neighbours(similarity: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Each row of `similarity` cut to its `n` largest entries (ties: smaller column)."""
    coo = similarity.tocoo()
    order = np.lexsort((coo.col, -coo.data, coo.row))  # by row, value down, column up
    rows = coo.row[order]
    starts = np.searchsorted(rows, rows, side="left")  # first entry of each one's row
    keep = order[np.arange(len(order)) - starts < n]
    return sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])),
                         shape=similarity.shape)


def most_watched(users: np.ndarray, anchors: np.ndarray, seconds: np.ndarray,
                 max_user_anchors: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, anchor) pairs of the rows, each user keeping their `max_user_anchors`
    most watched anchors: summed floor(seconds * 1e6), ties to the smaller anchor (as
    `jobs.anchor_neighbours.voting_pairs`)."""
    users, anchors = np.asarray(users, dtype=np.int64), np.asarray(anchors, dtype=np.int64)
    if not len(users):
        return users, anchors
    micros = np.floor(np.nan_to_num(np.asarray(seconds, dtype=float)) * 1e6).astype(np.int64)
    pairs, inverse = np.unique(np.stack([users, anchors], axis=1), axis=0, return_inverse=True)
    total = np.zeros(len(pairs), dtype=np.int64)
    np.add.at(total, inverse.ravel(), micros)  # integer sums: exact, order-free
    order = np.lexsort((pairs[:, 1], -total, pairs[:, 0]))  # by user, watched down, anchor up
    u = pairs[order, 0]
    rank = np.arange(len(order)) - np.searchsorted(u, u, side="left")
    keep = order[rank < max_user_anchors]
    return pairs[keep, 0], pairs[keep, 1]


def anchor_similarity(users: np.ndarray, anchors: np.ndarray, n_users: int, n_anchors: int,
                      shrinkage: float, neighbours: int) -> sp.csr_matrix:
    """`[A', A']` shrunk cosine of co-watching, zero diagonal, top `neighbours` per row.

    Args:
      users, anchors: row and column index of every (user, anchor) watch in the window.
    """
    watched = sp.csr_matrix((np.ones(len(users)), (users, anchors)), shape=(n_users, n_anchors))
    watched.data[:] = 1.0  # duplicates (several days) were summed: a viewer counts once
    co = (watched.T @ watched).tocsr()
    viewers = co.diagonal()
    co.setdiag(0.0)
    co.eliminate_zeros()
    co = co.tocoo()
    # sqrt of the (exact) product of the counts, as the Spark job: the same bits
    values = co.data / (np.sqrt(viewers[co.row] * viewers[co.col]) + shrinkage)
    similarity = sp.csr_matrix((values, (co.row, co.col)), shape=co.shape)
    return top_neighbours(similarity, neighbours)


def _read_partition(lake_root: Path, day: str, fmt: str) -> Columns:
    """anchor_id, neighbour_id, similarity of partition dt=`day` of anchor_neighbours."""
    path = lake_root / ANCHOR_NEIGHBOURS.name
    columns = ["anchor_id", "neighbour_id", "similarity", PARTITION_COLUMN]
    if fmt == "delta":
        from deltalake import DeltaTable

        arrow = DeltaTable(str(path)).to_pyarrow_table(
            columns=columns, filters=[(PARTITION_COLUMN, "=", day)])
    else:
        partitioning = ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.string())]),
                                       flavor="hive")
        arrow = ds.dataset(str(path), format="parquet", partitioning=partitioning).to_table(
            columns=columns, filter=ds.field(PARTITION_COLUMN) == day)
    out = {c: to_numpy(arrow.column(c), 0) for c in columns}
    if len(out[PARTITION_COLUMN]) and set(out[PARTITION_COLUMN]) != {day}:
        raise AssertionError(f"{ANCHOR_NEIGHBOURS.name}: read a day other than {day}")
    return out


def table_problem(lake_root: Path | str, day: str, fmt: str, settings: ItemCFSettings
                  ) -> str | None:
    """Why the anchor_neighbours table cannot stand for the similarities of `day` (None: it
    can): no table, no complete and current day record, or other settings."""
    lake_root = Path(lake_root)
    path = lake_root / ANCHOR_NEIGHBOURS.name
    if not ((path / "_delta_log").is_dir() if fmt == "delta" else path.is_dir()):
        return "no anchor_neighbours table"
    problem, detail = day_status.Ledger(lake_root).state(NEIGHBOURS_JOB, day)
    if problem:
        return f"anchor_neighbours {day} is {problem} {detail}".strip()
    counts = day_status.load(lake_root, NEIGHBOURS_JOB, day).counts
    wanted = {"window": settings.window_days, "shrinkage": settings.shrinkage,
              "max_user_anchors": settings.max_user_anchors}
    differ = [f"{k} {counts.get(k)} != {v}" for k, v in wanted.items() if counts.get(k) != v]
    if counts.get("top_n", 0) < settings.neighbours:
        differ.append(f"top_n {counts.get('top_n')} < {settings.neighbours}")
    return f"anchor_neighbours {day} was built with {', '.join(differ)}" if differ else None


class _Fit:
    def __init__(self, history: Columns, day: str, settings: ItemCFSettings,
                 table: Columns | None = None) -> None:
        self.anchors, a = np.unique(history["anchor_id"].astype(np.int64), return_inverse=True)
        if table is None:
            self.source = "numpy"
            self.similarity = self._similarity(history, day, settings)
        else:
            self.source = ANCHOR_NEIGHBOURS.name
            i, i_found = positions(self.anchors, table["anchor_id"])
            j, j_found = positions(self.anchors, table["neighbour_id"])
            found = i_found & j_found  # all of them: the window is within the history read
            similarity = sp.csr_matrix(
                (table["similarity"][found].astype(float), (i[found], j[found])),
                shape=(len(self.anchors), len(self.anchors)))
            self.similarity = top_neighbours(similarity, settings.neighbours)
        recent = history["dt"] >= add_days(day, -settings.recent_days)
        self.users, ru = np.unique(history["user_id"][recent].astype(np.int64),
                                   return_inverse=True)
        weight = (np.log1p(history["watch_seconds"][recent].astype(float))
                  * decay(history["dt"][recent], day, settings.half_life_days))
        self.profile = sp.csr_matrix((weight, (ru, a[recent])),
                                     shape=(len(self.users), len(self.anchors)))

    def _similarity(self, history: Columns, day: str, settings: ItemCFSettings
                    ) -> sp.csr_matrix:
        window = history["dt"] >= add_days(day, -settings.window_days)
        users, anchors = most_watched(history["user_id"][window], history["anchor_id"][window],
                                      history["watch_seconds"][window],
                                      settings.max_user_anchors)
        a, _ = positions(self.anchors, anchors)
        _, u = np.unique(users, return_inverse=True)
        return anchor_similarity(u, a, int(u.max(initial=-1)) + 1, len(self.anchors),
                                 settings.shrinkage, settings.neighbours)


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
            table = None
            if s.use_table:
                problem = table_problem(self.lake_root, day, self.fmt, s)
                if problem:
                    log.info("item_cf %s: similarities computed in NumPy (%s)", day, problem)
                else:
                    table = _read_partition(self.lake_root, day, self.fmt)
            self._fits[day] = _Fit(history, day, s, table)
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
