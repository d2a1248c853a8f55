"""The two-tower model as the training loop sees it: batches in, per-example loss out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tensorflow as tf

from training.models.two_tower.config import TwoTowerConfig
from training.models.two_tower.encoder import RawFeatureEncoder
from training.models.two_tower.features import (
    LABEL_COLUMNS,
    Vocabularies,
    anchor_log_q,
    raw_columns,
    tower_specs,
)
from training.models.two_tower.losses import CombinedLoss, InBatchSoftmaxLoss
from training.models.two_tower.towers import Tower, TowerSpec, TwoTowerModel
from training.reader import TrainingSet


@dataclass
class Prepared:
    """Everything derived from the training set before the model is built."""

    vocab: Vocabularies
    specs: dict[str, TowerSpec]  # "user_tower" / "anchor_tower"
    log_q: np.ndarray  # [anchor_buckets + 1] log share of each anchor among training rows
    columns: list[str]  # example columns a batch holds


def prepare(data: TrainingSet, config: TwoTowerConfig) -> Prepared:
    train = [pq.read_table(f, columns=["anchor_id"]) for f in data.files("train")]
    candidates = [pq.read_table(f, columns=["anchor_id"]) for f in data.files("candidates")]
    max_id = max(int(pc.max(t.column("anchor_id")).as_py() or 0) for t in train + candidates)
    buckets = max_id + 1
    rows = np.concatenate([t.column("anchor_id").to_numpy() for t in train])
    vocab = Vocabularies.from_manifest(data.manifest, buckets, config.last_k)
    user, anchor = tower_specs(vocab, config)
    columns = sorted({*LABEL_COLUMNS, *raw_columns(user), *raw_columns(anchor)})
    return Prepared(vocab, {"user_tower": user, "anchor_tower": anchor},
                    anchor_log_q(rows, buckets), columns)


class TwoTowerTrainable:
    """Towers, loss and encoders of one replica batch size (built under a strategy scope)."""

    def __init__(self, prepared: Prepared, config: TwoTowerConfig, seed: int,
                 replica_batch: int) -> None:
        specs = prepared.specs
        self.columns = prepared.columns
        self.id_list_width = config.last_k
        self.model = TwoTowerModel(specs["user_tower"], specs["anchor_tower"],
                                   config.embedding_dim, config.hidden_units,
                                   config.user_dropout_rate, config.anchor_dropout_rate, seed)
        softmax = InBatchSoftmaxLoss(
            num_negatives=min(config.num_negatives, replica_batch - 1), margin=config.margin,
            t=config.t, gamma=config.gamma, remove_accidental_hits=config.remove_accidental_hits,
            logq_correction=config.logq_correction, seed=seed)
        self.loss_fn = CombinedLoss(config.softmax_weight, config.pairwise_weight,
                                    config.pointwise_weight, softmax=softmax)
        self.user_encoder = RawFeatureEncoder(specs["user_tower"], prepared.vocab)
        self.anchor_encoder = RawFeatureEncoder(specs["anchor_tower"], prepared.vocab)
        self.user_raw = raw_columns(specs["user_tower"])
        self.anchor_raw = raw_columns(specs["anchor_tower"])
        self.log_q = tf.constant(prepared.log_q * config.logq_weight)

    @property
    def trainable_variables(self) -> list:
        return self.model.trainable_variables + self.loss_fn.trainable_variables

    def checkpoint_items(self) -> dict:
        return {"user_tower": self.model.user_tower, "anchor_tower": self.model.anchor_tower,
                "loss": self.loss_fn}

    def towers(self) -> dict[str, Tower]:
        return {"user_tower": self.model.user_tower, "anchor_tower": self.model.anchor_tower}

    def loss(self, batch: Mapping[str, tf.Tensor]) -> tf.Tensor:
        users, user_mask = self.user_encoder({c: batch[c] for c in self.user_raw})
        anchors, anchor_mask = self.anchor_encoder({c: batch[c] for c in self.anchor_raw})
        u = self.model.user_tower(users, training=True, preference_mask=user_mask)
        a = self.model.anchor_tower(anchors, training=True, preference_mask=anchor_mask)
        per_example, _ = self.loss_fn(u, a, tf.cast(batch["label"], tf.float32),
                                      anchor_ids=batch["anchor_id"],
                                      anchor_log_q=tf.gather(self.log_q, batch["anchor_id"]))
        return per_example
