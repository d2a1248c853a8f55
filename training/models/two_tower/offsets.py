"""Two score offsets chosen on the validation days after training: the history offset lifts
each user's own history anchors, the cold-anchor offset lifts new anchors.

The in-batch softmax calibrates scores against sampled negatives, not against the whole
candidate list, so two groups end up misplaced in a user's ranking:
- a user's own history anchors rank a little low (demo scale, seed 11, converged, test day:
  lifting them by 2 logits raised recall@50 from 0.793 to 0.799 and NDCG@10 from 0.441 to
  0.446);
- new anchors have content only, and the model learns content-only scores from warm
  anchors whose preference group was dropped; trained to convergence it ranks them just below
  the top-K (the median cold positive 0.04 below the 50th score, cold-anchor recall@50
  0.152).
The history offset is added to every history anchor's strength in the user tower's memory
channel (`Tower.history_offset`); the cold-anchor offset is one extra embedding coordinate
(1 on the user side, the offset on a cold anchor, 0 on a warm one). Serving still ranks by a
dot product. The history offset is fitted first, the cold offset on the lifted scores.

The choice follows the one-standard-error rule (Hastie, Tibshirani and Friedman, The
Elements of Statistical Learning, 7.10): among the offsets whose pooled validation
recall@50 lies within one standard error of the best offset's, the one that leans the way
the product wants when the validation days cannot tell them apart: the largest cold offset
(exposure for new anchors), the smallest history offset (the least pull away from
discovery). The standard error is the best offset's, over its user-day rows, so a small
validation set allows more and a large one less.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Literal

import numpy as np

from training.evaluate import HeldOutDay
from training.metrics import per_user_metrics
from training.models.two_tower.config import OffsetRule, TwoTowerConfig
from training.models.two_tower.validation import InMemoryScorer

COLD_STEPS = tuple(np.round(np.arange(0.0, 1.01, 0.1), 2))  # logits (score x gamma)
HISTORY_STEPS = tuple(np.round(np.arange(0.0, 3.01, 0.25), 2))
METRIC = "recall@50"
CHUNK = 4096  # validation user-days scored per pass

Lean = Literal["largest", "smallest"]
log = logging.getLogger(__name__)


def choose(rows: np.ndarray, rule: OffsetRule, lean: Lean = "largest") -> int:
    """Index of the chosen offset.

    Args:
      rows: `[offsets, user_days]` the metric of every pooled validation user-day under each
        offset, offsets in increasing order (index 0: no offset).
      rule: "one_se" the offset within one standard error of the best mean that `lean`
        names, "best" the best mean (the smallest offset on a tie), "none" index 0.
    """
    if rule == "none" or rows.shape[1] == 0:
        return 0
    means = rows.mean(axis=1)
    best = int(np.argmax(means))
    if rule == "best" or rows.shape[1] < 2:
        return best
    se = rows[best].std(ddof=1) / np.sqrt(rows.shape[1])
    within = np.flatnonzero(means >= means[best] - se)
    return int(within.max() if lean == "largest" else within.min())


def fit(scores: Sequence[np.ndarray], shifts: Sequence[np.ndarray],
        days: Sequence[HeldOutDay], steps: Sequence[float], rule: OffsetRule,
        lean: Lean = "largest", gamma: float = 1.0,
        slices: dict[str, Sequence[np.ndarray]] | None = None) -> dict:
    """The offset by `rule` from the validation days' `[U, A]` scores.

    Args:
      shifts: per day, the score change of one logit of offset, `[U, A]` or `[A]`.
      steps: the offsets tried, in logits, increasing, the first 0.
      gamma: logit scale; the returned offset is logit / gamma.
      slices: name -> per day an `[A]` bool mask of the candidates whose positives the
        slice counts, for the table.

    Returns `{"rule", "logit", "offset", "recall@50", "ndcg@10", "<slice>_recall@50"...,
    "table"}`: the table holds, per step, the pooled validation figures (None where no
    user-day counts), and the figures beside the offset are its row's.
    """
    slices = slices or {}
    names = ("recall@50", "ndcg@10", *[f"{s}_recall@50" for s in slices])
    figures = {n: [[] for _ in steps] for n in names}
    for d, (s, shift, day) in enumerate(zip(scores, shifts, days, strict=True)):
        pool_rows = np.flatnonzero(day.pool)
        for start in range(0, len(pool_rows), CHUNK):  # a few shifted copies in memory
            users = pool_rows[start:start + CHUNK]
            chunk, positives = s[users], day.positives[users]
            step_shift = shift[users] if shift.ndim == 2 else shift[None, :]
            for i, step in enumerate(steps):
                shifted = chunk + step * step_shift
                overall = per_user_metrics(shifted, positives)
                figures["recall@50"][i].append(overall[METRIC])
                figures["ndcg@10"][i].append(overall["ndcg@10"])
                for name, masks in slices.items():
                    counted = np.broadcast_to(masks[d][None, :], positives.shape)
                    figures[f"{name}_recall@50"][i].append(
                        per_user_metrics(shifted, positives, counted=counted)[METRIC])
    rows = {n: [np.concatenate(r) if r else np.zeros(0) for r in per_step]
            for n, per_step in figures.items()}
    chosen = choose(np.stack(rows[METRIC]), rule, lean)
    table = [{"logit": float(step), **{n: _mean(rows[n][i]) for n in names}}
             for i, step in enumerate(steps)]
    return {"rule": rule, "logit": float(steps[chosen]),
            "offset": float(steps[chosen] / gamma), **{n: table[chosen][n] for n in names},
            "table": table}


def none(rule: OffsetRule) -> dict:
    """No offset (no validation day, rule "none", or a model without the channel)."""
    return {"rule": rule, "logit": 0.0, "offset": 0.0, "recall@50": None, "ndcg@10": None,
            "table": []}


def fit_on_validation(days: Sequence[HeldOutDay], trainable, config: TwoTowerConfig
                      ) -> dict[str, dict]:
    """Both offsets on the validation days (`Validator.days`) with the towers in memory;
    sets the user tower's history offset. `{"history": fit, "cold_anchor": fit}`."""
    if not days:
        return {"history": none(config.history_offset),
                "cold_anchor": none(config.cold_anchor_offset)}
    started = time.perf_counter()
    scorer = InMemoryScorer(trainable)
    scores = [np.asarray(scorer.score(d.day, d.users, d.anchors), np.float64) for d in days]
    tower = trainable.model.user_tower
    history = none(config.history_offset)
    if (config.history_offset != "none" and hasattr(tower, "history_offset")
            and config.memory_weight > 0):
        # a history anchor's score moves by memory_weight x its strength's change: one logit
        per_logit = 1.0 / (config.gamma * config.memory_weight)
        tower.history_offset.assign(per_logit)
        shifts = [(scorer.score(d.day, d.users, d.anchors) - s).astype(np.float32)
                  for d, s in zip(days, scores, strict=True)]
        history = fit(scores, shifts, days, HISTORY_STEPS, config.history_offset, "smallest",
                      gamma=1.0 / per_logit)  # offset: in strength units
        tower.history_offset.assign(history["logit"] * per_logit)
        scores = [s + history["logit"] * shift for s, shift in zip(scores, shifts, strict=True)]
    cold = none(config.cold_anchor_offset)
    if config.cold_anchor_offset != "none":
        is_cold = [~np.asarray(d.anchors["anchor_has_history"], bool) for d in days]
        cold = fit(scores, [c / config.gamma for c in is_cold], days, COLD_STEPS,
                   config.cold_anchor_offset, gamma=config.gamma,
                   slices={"cold_anchor": is_cold})
    first = {k: (v["table"][0] if v["table"] else {}) for k, v in
             (("history", history), ("cold", cold))}
    log.info("history offset %.2f logit (%s), cold-anchor offset %.1f logit (%s): validation "
             "recall@50 %s (none: %s), NDCG@10 %s (none: %s), cold anchors %s (none: %s), "
             "in %.0f s", history["logit"], history["rule"], cold["logit"], cold["rule"],
             cold["recall@50"], first["history"].get("recall@50"), cold["ndcg@10"],
             first["history"].get("ndcg@10"), cold.get("cold_anchor_recall@50"),
             first["cold"].get("cold_anchor_recall@50"), time.perf_counter() - started)
    return {"history": history, "cold_anchor": cold}


def _mean(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return round(float(values.mean()), 4) if len(values) else None
