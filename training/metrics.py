"""Ranking metrics of a score matrix against held-out positives (pure NumPy).

For each user with positives on the evaluation day, every candidate anchor (live that day) is
ranked by score; a positive counts as found at K when it is in the user's top K.
"""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """`[users, k]` candidate indices of the k highest scores per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def ranking_metrics(scores: np.ndarray, positives: np.ndarray, ks=(10, 50),
                    counted: np.ndarray | None = None) -> dict[str, float]:
    """Mean recall@K and NDCG@K over users.

    Args:
      scores: `[users, candidates]`.
      positives: `[users, candidates]` bool, the held-out positives.
      counted: optional `[users, candidates]` bool: only these positives count (a slice, e.g.
        cold anchors); users with no counted positive are left out.
    """
    counted = positives if counted is None else positives & counted
    has = counted.any(axis=1)
    out: dict[str, float] = {"users": int(has.sum())}
    if not has.any():
        return out | {f"{m}@{k}": float("nan") for k in ks for m in ("recall", "ndcg")}
    scores, counted = scores[has], counted[has]
    best = top_k(scores, max(ks))
    hits = np.take_along_axis(counted, best, axis=1)
    n_pos = counted.sum(axis=1)
    discounts = 1.0 / np.log2(np.arange(2, best.shape[1] + 2))
    for k in ks:
        out[f"recall@{k}"] = float(np.mean(hits[:, :k].sum(axis=1) / n_pos))
        ideal = np.array([discounts[: min(n, k)].sum() for n in n_pos])
        out[f"ndcg@{k}"] = float(np.mean((hits[:, :k] * discounts[:k]).sum(axis=1) / ideal))
    return out


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half)."""
    labels = labels.astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
