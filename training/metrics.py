"""Ranking metrics of a score matrix against held-out positives (pure NumPy, SciPy's bootstrap).

For each user with positives on the evaluation day, every candidate anchor (live that day) is
ranked by score; a positive counts as found at K when it is in the user's top K. Metrics are
kept per row (one row = one user on one day) so that days pool by concatenation and two
scorers compare pairwise on the same rows. An undefined mean is None with a note, never NaN.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import bootstrap


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """`[users, k]` candidate indices of the k highest scores per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def per_user_metrics(scores: np.ndarray, positives: np.ndarray, ks=(10, 50),
                     counted: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Recall@K and NDCG@K of every row.

    Args:
      scores: `[users, candidates]`.
      positives: `[users, candidates]` bool, the held-out positives.
      counted: optional `[users, candidates]` bool: only these positives count (a slice, e.g.
        cold anchors).
    Returns:
      `{"recall@K": [users], "ndcg@K": [users]}`, NaN in rows without a counted positive.
    """
    counted = positives if counted is None else positives & counted
    n_pos = counted.sum(axis=1)
    has = n_pos > 0
    out = {f"{m}@{k}": np.full(len(scores), np.nan) for k in ks for m in ("recall", "ndcg")}
    if not has.any() or scores.shape[1] == 0:
        return out
    best = top_k(scores[has], max(ks))
    hits = np.take_along_axis(counted[has], best, axis=1)
    discounts = 1.0 / np.log2(np.arange(2, best.shape[1] + 2))
    for k in ks:
        out[f"recall@{k}"][has] = hits[:, :k].sum(axis=1) / n_pos[has]
        ideal = np.cumsum(discounts)[np.minimum(n_pos[has], min(k, best.shape[1])) - 1]
        out[f"ndcg@{k}"][has] = (hits[:, :k] * discounts[:k]).sum(axis=1) / ideal
    return out


def mean_of_rows(rows: dict[str, np.ndarray], why_empty: str = "no user with a positive"
                 ) -> dict:
    """Mean of each per-row metric over its defined rows; `users` counts the rows of the
    first metric that are defined. None (with `note`) where no row is defined."""
    first = next(iter(rows.values()), np.array([]))
    out: dict = {"users": int(np.isfinite(first).sum())}
    undefined = []
    for name, values in rows.items():
        defined = values[np.isfinite(values)]
        out[name] = float(defined.mean()) if defined.size else None
        if not defined.size:
            undefined.append(name)
    if undefined:
        out["note"] = f"{', '.join(undefined)}: {why_empty}"
    return out


def ranking_metrics(scores: np.ndarray, positives: np.ndarray, ks=(10, 50),
                    counted: np.ndarray | None = None) -> dict:
    """Mean recall@K and NDCG@K over users with a counted positive (see per_user_metrics);
    None and a note when there is no such user."""
    return mean_of_rows(per_user_metrics(scores, positives, ks, counted))


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties count half); None without both classes."""
    labels = labels.astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def sample_negatives(excluded: np.ndarray, n: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Up to `n` candidates per row drawn without replacement among those not `excluded`.

    Args:
      excluded: `[users, candidates]` bool, e.g. every anchor the user watched that day.
    Returns:
      `([users, n'], [users, n'])`: candidate indices and whether each is a real draw (a row
      with fewer than n allowed candidates is padded), n' = min(n, candidates).
    """
    keys = rng.random(excluded.shape)
    keys[excluded] = np.inf
    n = min(n, excluded.shape[1])
    if n == 0:
        empty = np.zeros((len(excluded), 0), dtype=np.int64)
        return empty, empty.astype(bool)
    drawn = np.argpartition(keys, n - 1, axis=1)[:, :n]
    return drawn, np.isfinite(np.take_along_axis(keys, drawn, axis=1))


def sampled_auc(scores: np.ndarray, positives: np.ndarray, negatives: np.ndarray,
                valid: np.ndarray) -> np.ndarray:
    """Per-row AUC of each row's positives against its sampled negatives (ties count half).

    For logs without explicit negatives: the negatives are unwatched live anchors
    (`sample_negatives`), the same draws for every scorer.
    Args:
      scores, positives: `[users, candidates]`.
      negatives, valid: `[users, n]` from `sample_negatives`.
    Returns:
      `[users]`, NaN in rows without a positive or without a negative.
    """
    rows, cols = np.nonzero(positives)
    neg = np.take_along_axis(scores, negatives, axis=1)[rows]  # [pairs, n]
    pos = scores[rows, cols][:, None]
    wins = ((pos > neg) + 0.5 * (pos == neg)) * valid[rows]
    n_neg = valid.sum(axis=1)
    total = np.bincount(rows, weights=wins.sum(axis=1), minlength=len(scores))
    pairs = positives.sum(axis=1) * n_neg
    out = np.full(len(scores), np.nan)
    np.divide(total, pairs, out=out, where=pairs > 0)
    return out


def paired_difference(ours: np.ndarray, theirs: np.ndarray, confidence: float = 0.95,
                      resamples: int = 2000, seed: int = 0) -> dict:
    """Mean of `ours - theirs` over the rows both define, with a percentile bootstrap
    interval over those rows (SciPy; percentile because BCa's jackknife is undefined when
    every difference is equal, e.g. two scorers that agree everywhere).

    Returns:
      `{"diff", "low", "high", "user_days"}`; None values and a `note` when undefined.
    """
    both = np.isfinite(ours) & np.isfinite(theirs)
    diffs = (ours - theirs)[both]
    out: dict = {"diff": None, "low": None, "high": None, "user_days": int(diffs.size)}
    if diffs.size == 0:
        return out | {"note": "no user-day where both scorers are defined"}
    out["diff"] = float(diffs.mean())
    if diffs.size < 2:
        return out | {"note": "one user-day: no interval"}
    interval = bootstrap((diffs,), np.mean, n_resamples=resamples, method="percentile",
                         confidence_level=confidence, rng=np.random.default_rng(seed),
                         batch=max(1, min(resamples, 2_000_000 // diffs.size))
                         ).confidence_interval
    return out | {"low": float(interval.low), "high": float(interval.high)}
