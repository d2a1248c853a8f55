"""Validation of the two-tower model while it trains: after every epoch, the pooled ranking
metrics of the validation days (never the test days, which only the gate sees) and the loss
of their labelled rows, both in inference mode (no preference dropout).

The metrics are `training.evaluate`'s, on the towers in memory, so early stopping chooses by
the measure the gate judges by. Each slice's recall@50 is logged beside them
(`val_cold_anchor_recall@50`, ...): the overall figure can keep rising while the cold-anchor
slice falls, and any of them can be the `monitor`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from training.evaluate import SLICES, EvalSettings, Rows, held_out_days, score_day, summarise
from training.reader import Columns, TrainingSet

REPORTED = ("recall@10", "recall@50", "ndcg@10", "ndcg@50", "auc")
MAX_LOSS_BATCHES = 50  # the validation loss is a sample of the days' labelled rows


class InMemoryScorer:
    """Cosine scores of the towers being trained, from raw columns (as a Scorer)."""

    def __init__(self, trainable) -> None:
        self.trainable = trainable

    def parts(self, users: Columns, anchors: Columns) -> tuple[np.ndarray, np.ndarray]:
        """`[U, A]` scores of the MLP part and of the memory part (unscaled)."""
        u, a = self._embed("user", users), self._embed("anchor", anchors)
        d = self.trainable.model.user_tower.output_dim
        return u[:, :d] @ a[:, :d].T, u[:, d:] @ a[:, d:].T

    def _embed(self, side: str, rows: Columns) -> np.ndarray:
        t = self.trainable
        encoder, raw = ((t.user_encoder, t.user_raw) if side == "user"
                        else (t.anchor_encoder, t.anchor_raw))
        features, mask = encoder({c: tf.constant(rows[c]) for c in raw})
        tower = t.model.user_tower if side == "user" else t.model.anchor_tower
        return tower(features, training=False, preference_mask=mask).numpy()

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        return self._embed("user", users) @ self._embed("anchor", anchors).T


class Validator:
    """`validator(trainable) -> {"val_recall@50": ..., "val_loss": ...}` over the validation
    days, read once (`days`, also what the cold-anchor offset is fitted on)."""

    def __init__(self, data: TrainingSet, columns: Sequence[str], id_list_width: int,
                 settings: EvalSettings | None = None) -> None:
        names = list(data.manifest.validation_days)
        self.days = held_out_days(data, settings or EvalSettings(), names)
        self.pool_users = np.concatenate([d.users["user_id"][d.pool] for d in self.days])
        rows = data.read("validation", list(columns), id_list_width)
        keep = np.isin(rows["dt"], names)
        self.rows = {c: v[keep] for c, v in rows.items()}

    def __call__(self, trainable) -> dict[str, float | None]:
        parts = [score_day("model", InMemoryScorer(trainable), d) for d in self.days]
        summary = summarise(Rows.concat(parts), self.pool_users)
        out = {f"val_{m}": summary.get(m) for m in REPORTED}
        out.update({f"val_{s}_recall@50": summary["slices"][s].get("recall@50")
                    for s in SLICES})
        out["val_loss"] = _loss(trainable, self.rows)
        return out


def make_validator(data: TrainingSet, columns: Sequence[str], id_list_width: int,
                   settings: EvalSettings | None = None) -> Validator | None:
    """The validator of the manifest's validation days, or None when there are none."""
    if not data.manifest.validation_days:
        return None
    return Validator(data, columns, id_list_width, settings)


def _loss(trainable, rows: Columns) -> float | None:
    """Mean per-example loss over whole replica batches of `rows`; None when there are
    fewer rows than one batch (in-batch negatives need a full one)."""
    size = trainable.replica_batch
    batches = min(len(rows["label"]) // size, MAX_LOSS_BATCHES)
    if not batches:
        return None
    losses = []
    for b in range(batches):
        batch = {c: tf.constant(v[b * size:(b + 1) * size]) for c, v in rows.items()}
        losses.append(float(tf.reduce_mean(trainable.loss(trainable.encode(batch),
                                                          training=False))))
    return float(np.mean(losses))
