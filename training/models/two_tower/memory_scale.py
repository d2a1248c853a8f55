"""The memory scale: how loud the memory channel is beside the MLP part at serving, chosen
on the validation days after training.

The in-batch softmax rarely sets one of a user's history anchors against another, so the
loss keeps the memory strengths small (0.1 to 0.33 at demo scale) and the MLP part's cosine,
which orders a history worse (within-history AUC 0.613 against the memory's 0.699), decides
much of a returning viewer's top ten. Scaling the user's memory part by c after training
leaves recall@50 where it was and lifts NDCG@10 (demo scale, seed 11: validation 0.427 at
1, 0.441 at 4; the test day followed, 0.441 to 0.456). The scale multiplies the user tower's
memory coordinates in the export, so serving still ranks by a dot product.

The choice is by NDCG@10 over the pooled validation user-days, with the one-standard-error
rule taking the smallest scale within one standard error of the best (the least change to
what training chose that the validation days cannot tell from the best).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from training.evaluate import HeldOutDay
from training.metrics import per_user_metrics
from training.models.two_tower.cold_offset import CHUNK, choose, pooled_mean
from training.models.two_tower.config import OffsetRule

# up to where the memory alone orders a returning viewer's history (demo scale, seed 11,
# profile weights in rewatch's order: validation NDCG@10 0.447 at 4, 0.448 from 8 to 12,
# 0.447 at 1000)
SCALES = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
METRIC = "ndcg@10"

log = logging.getLogger(__name__)


def fit(parts: Sequence[tuple[np.ndarray, np.ndarray]], days: Sequence[HeldOutDay],
        rule: OffsetRule) -> dict:
    """The memory scale by `rule` from the validation days' `[U, A]` (MLP, memory) scores.

    Returns `{"rule", "scale", "ndcg@10", "recall@50", "table"}`: the table holds, per scale,
    the pooled validation NDCG@10 and recall@50; the figures beside the scale are its row's.
    """
    ndcg = [[] for _ in SCALES]
    recall = [[] for _ in SCALES]
    for (mlp, memory), day in zip(parts, days, strict=True):
        pool_rows = np.flatnonzero(day.pool)
        for start in range(0, len(pool_rows), CHUNK):
            users = pool_rows[start:start + CHUNK]
            for i, scale in enumerate(SCALES):
                m = per_user_metrics(mlp[users] + scale * memory[users], day.positives[users])
                ndcg[i].append(m[METRIC])
                recall[i].append(m["recall@50"])
    rows = [np.concatenate(r) if r else np.zeros(0) for r in ndcg]
    recall_rows = [np.concatenate(r) if r else np.zeros(0) for r in recall]
    chosen = choose(np.stack(rows), rule, largest=False)
    table = [{"scale": scale, METRIC: pooled_mean(n), "recall@50": pooled_mean(r)}
             for scale, n, r in zip(SCALES, rows, recall_rows, strict=True)]
    return {"rule": rule, "scale": SCALES[chosen], METRIC: table[chosen][METRIC],
            "recall@50": table[chosen]["recall@50"], "table": table}


def fit_on_validation(parts: Sequence[tuple[np.ndarray, np.ndarray]],
                      days: Sequence[HeldOutDay], rule: OffsetRule) -> dict:
    """`fit` on the validation days from their (MLP, memory) scores with the towers in
    memory (`InMemoryScorer.parts`); scale 1 (and no table) without a validation day, without
    a memory channel (an empty memory part) or under rule "none"."""
    if rule == "none" or not days or not any(memory.any() for _, memory in parts):
        return {"rule": rule, "scale": 1.0, METRIC: None, "recall@50": None, "table": []}
    started = time.perf_counter()
    out = fit(parts, days, rule)
    log.info("memory scale %g (%s): validation NDCG@10 %s (1: %s) in %.0f s", out["scale"],
             rule, out[METRIC], out["table"][0][METRIC], time.perf_counter() - started)
    return out

