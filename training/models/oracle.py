"""Oracle baseline: the simulator's own choice model, the ceiling no learned model can pass.

Reads the ground truth the simulator saved under `<landing>/_ground_truth/` (format in
jobs/simulator/truth.py, the contract: training never imports jobs) and scores a pair by
what drew the sessions: log P(choose) + log P(long watch), up to a per-user constant.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.stats import norm

from training.models import register_baseline
from training.models.base import ScoringContext
from training.reader import Columns

TRUTH_DIR = "_ground_truth"
LATENTS = "latents.npz"
MODEL = "model.json"
FORMAT = 1


def _rows(known: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    """Row of each id in `known`; ValueError naming ids the truth does not have."""
    order = np.argsort(known, kind="stable")
    pos = np.clip(np.searchsorted(known, ids, sorter=order), 0, len(known) - 1)
    rows = order[pos]
    missing = known[rows] != ids
    if missing.any():
        raise ValueError(f"{int(missing.sum())} {what} ids are not in the ground truth "
                         f"(another simulation?), e.g. {ids[missing][:5].tolist()}")
    return rows


class OracleScorer:
    """Scores `[U, A]` = affinity / T + log popularity + log Phi((affinity - t) / sd).

    Args:
      user_ids, user_vecs: `[U']`, `[U', dim]` every simulated user and its true taste.
      anchor_ids, anchor_vecs, anchor_popularity: `[A']`, `[A', dim]`, `[A']`.
      temperature: softmax temperature of the choice over affinity.
      long_watch_threshold, noise_sd: a long watch is affinity + N(0, noise_sd) > threshold.
    """

    def __init__(self, user_ids: np.ndarray, user_vecs: np.ndarray, anchor_ids: np.ndarray,
                 anchor_vecs: np.ndarray, anchor_popularity: np.ndarray, temperature: float,
                 long_watch_threshold: float, noise_sd: float) -> None:
        self.user_ids, self.user_vecs = np.asarray(user_ids, np.int64), user_vecs
        self.anchor_ids, self.anchor_vecs = np.asarray(anchor_ids, np.int64), anchor_vecs
        self.log_pop = np.log(anchor_popularity)
        self.temperature = temperature
        self.threshold, self.noise_sd = long_watch_threshold, noise_sd

    @classmethod
    def load(cls, landing_root: Path | str) -> OracleScorer | None:
        """The oracle of a landing zone; None when it holds no (complete) ground truth."""
        folder = Path(landing_root) / TRUTH_DIR
        if not (folder / LATENTS).is_file() or not (folder / MODEL).is_file():
            return None
        model = json.loads((folder / MODEL).read_text())
        if model.get("format") != FORMAT:
            raise ValueError(f"{folder / MODEL}: ground truth format {model.get('format')!r}, "
                             f"this oracle reads format {FORMAT}")
        with np.load(folder / LATENTS) as z:
            return cls(z["user_ids"], z["user_vecs"], z["anchor_ids"], z["anchor_vecs"],
                       z["anchor_popularity"], temperature=model["choice"]["temperature"],
                       long_watch_threshold=model["long_watch"]["threshold"],
                       noise_sd=model["perception"]["noise_sd"])

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        """`[U, A]` scores of `users["user_id"]` x `anchors["anchor_id"]` (any day: the
        latents do not change over a run)."""
        u = _rows(self.user_ids, np.asarray(users["user_id"], np.int64), "user")
        a = _rows(self.anchor_ids, np.asarray(anchors["anchor_id"], np.int64), "anchor")
        affinity = self.user_vecs[u] @ self.anchor_vecs[a].T
        log_long = norm.logcdf((affinity - self.threshold) / self.noise_sd)
        return affinity / self.temperature + self.log_pop[a][None, :] + log_long


@register_baseline("oracle")
def oracle_baseline(context: ScoringContext) -> OracleScorer | None:
    if context.landing_root is None:
        return None
    return OracleScorer.load(context.landing_root)
