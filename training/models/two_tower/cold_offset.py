"""The cold-anchor offset: how far new anchors' scores are lifted at serving, chosen on the
validation days after training.

A new anchor has content only, and the model learns content-only scores from warm anchors
whose preference group was dropped; trained to convergence it ranks new anchors just below
the top-K (demo scale, seed 11: the median cold positive 0.04 below the 50th score, cold-
anchor recall@50 0.152). An offset added to every cold anchor's score moves them back.
The offset is one extra embedding coordinate (1 on the user side, the offset on a cold
anchor, 0 on a warm one), so serving still ranks by a dot product.

The choice follows the one-standard-error rule (Hastie, Tibshirani and Friedman, The
Elements of Statistical Learning, 7.10): among the offsets whose pooled validation
recall@50 lies within one standard error of the best offset's, the largest, i.e. the most
exposure for new anchors that the validation days cannot tell from the best. The standard
error is the best offset's, over its user-day rows, so a small validation set allows more
and a large one less. Offsets are steps of 0.1 logit (score / gamma) up to one logit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np

from training.evaluate import HeldOutDay
from training.metrics import per_user_metrics
from training.models.two_tower.config import OffsetRule

LOGIT_STEPS = tuple(np.round(np.arange(0.0, 1.01, 0.1), 2))  # offsets in logits (x gamma)
METRIC = "recall@50"
CHUNK = 4096  # validation user-days scored per pass

log = logging.getLogger(__name__)


def choose(rows: np.ndarray, rule: OffsetRule, largest: bool = True) -> int:
    """Index of the chosen offset.

    Args:
      rows: `[offsets, user_days]` the metric of every pooled validation user-day under each
        offset, offsets in increasing order (index 0: no offset).
      rule: "one_se" the largest offset within one standard error of the best mean (the
        smallest, when not `largest`), "best" the best mean (the smallest offset on a tie),
        "none" index 0.
    """
    if rule == "none" or rows.shape[1] == 0:
        return 0
    means = rows.mean(axis=1)
    best = int(np.argmax(means))
    if rule == "best" or rows.shape[1] < 2:
        return best
    se = rows[best].std(ddof=1) / np.sqrt(rows.shape[1])
    within = np.flatnonzero(means >= means[best] - se)
    return int(within.max() if largest else within.min())


def fit(scores: Sequence[np.ndarray], days: Sequence[HeldOutDay], gamma: float,
        rule: OffsetRule) -> dict:
    """The offset for cold anchors by `rule` from the validation days' `[U, A]` scores.

    Returns `{"rule", "logit", "offset", "recall@50", "cold_anchor_recall@50", "table"}`:
    offset = logit / gamma (in score units); the table holds, per logit step, the pooled
    validation recall@50 overall and on cold anchors (None where no cold anchor has a
    positive), and the two figures beside the offset are its row's.
    """
    overall = [[] for _ in LOGIT_STEPS]
    cold = [[] for _ in LOGIT_STEPS]
    for s, day in zip(scores, days, strict=True):
        is_cold = ~np.asarray(day.anchors["anchor_has_history"], bool)
        pool_rows = np.flatnonzero(day.pool)
        for start in range(0, len(pool_rows), CHUNK):  # a few shifted copies in memory
            users = pool_rows[start:start + CHUNK]
            chunk, positives = s[users], day.positives[users]
            counted = np.broadcast_to(is_cold[None, :], positives.shape)
            for i, step in enumerate(LOGIT_STEPS):
                shifted = chunk + (step / gamma) * is_cold[None, :]
                overall[i].append(per_user_metrics(shifted, positives)[METRIC])
                cold[i].append(per_user_metrics(shifted, positives, counted=counted)[METRIC])
    rows = [np.concatenate(r) if r else np.zeros(0) for r in overall]
    cold_rows = [np.concatenate(c) if c else np.zeros(0) for c in cold]
    chosen = choose(np.stack(rows), rule)
    table = [{"logit": float(step), "recall@50": pooled_mean(r),
              "cold_anchor_recall@50": pooled_mean(c)}
             for step, r, c in zip(LOGIT_STEPS, rows, cold_rows, strict=True)]
    return {"rule": rule, "logit": float(LOGIT_STEPS[chosen]),
            "offset": float(LOGIT_STEPS[chosen] / gamma),
            "recall@50": table[chosen]["recall@50"],
            "cold_anchor_recall@50": table[chosen]["cold_anchor_recall@50"], "table": table}


def fit_on_validation(scores: Sequence[np.ndarray], days: Sequence[HeldOutDay], gamma: float,
                      rule: OffsetRule) -> dict:
    """`fit` on the validation days (`Validator.days`) from their `[U, A]` scores as served
    (the towers in memory, the memory scale applied); no offset (and no table) without a
    validation day or under rule "none"."""
    if rule == "none" or not days:
        return {"rule": rule, "logit": 0.0, "offset": 0.0, "recall@50": None,
                "cold_anchor_recall@50": None, "table": []}
    started = time.perf_counter()
    scores = [np.asarray(s, np.float64) for s in scores]
    out = fit(scores, days, gamma, rule)
    none = out["table"][0]
    log.info("cold-anchor offset %.1f logit (%s): validation recall@50 %s (none: %s), cold "
             "anchors %s (none: %s), in %.0f s", out["logit"], rule, out["recall@50"],
             none["recall@50"], out["cold_anchor_recall@50"], none["cold_anchor_recall@50"],
             time.perf_counter() - started)
    return out


def pooled_mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return round(float(values.mean()), 4) if len(values) else None
