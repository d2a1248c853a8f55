"""The two-tower model as the training loop sees it: batches in, per-example loss out.

`encode` runs in the input pipeline, on the host (string lookups cannot run on an
accelerator nor under XLA); `loss` is all the compiled step computes. The towers take the
dtype policy they are built under (training.loop sets it); the loss layers are always built
float32, so a mixed-precision run rounds the towers' MLPs, never the scores or the losses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tensorflow as tf

from training.loop import dtype_policy
from training.models.two_tower.config import TwoTowerConfig
from training.models.two_tower.encoder import RawFeatureEncoder
from training.models.two_tower.features import (
    LABEL_COLUMNS,
    Vocabularies,
    anchor_log_q,
    exact_code_rows,
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
    log_q: np.ndarray  # [anchor_rows + 1] log share of each anchor row among training rows
    columns: list[str]  # example columns a batch holds


def _ids(files: list[str], column: str) -> np.ndarray:
    """Every id of `column` (an id or a list of ids) in `files`."""
    parts = []
    for path in files:
        values = pq.read_table(path, columns=[column]).column(column).combine_chunks()
        if pa.types.is_list(values.type):
            values = pc.list_flatten(values)
        parts.append(values.drop_null().to_numpy(zero_copy_only=False))
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def prepare(data: TrainingSet, config: TwoTowerConfig) -> Prepared:
    train_files = data.files("train")
    rows = _ids(train_files, "anchor_id")
    history_k = config.history_k if "user_history_anchors" in data.schema("train").names else 0
    vocab = Vocabularies.from_manifest(
        data.manifest, np.concatenate([rows, _ids(data.files("candidates"), "anchor_id"),
                                       _ids(train_files, "user_last_anchors"),
                                       *([_ids(train_files, "user_history_anchors")]
                                         if history_k else [])]),
        config.last_k, history_k)
    user, anchor = tower_specs(vocab, config)
    columns = sorted({*LABEL_COLUMNS, *raw_columns(user), *raw_columns(anchor)})
    return Prepared(vocab, {"user_tower": user, "anchor_tower": anchor},
                    anchor_log_q(vocab.anchor_index(rows), vocab.anchor_rows), columns)


class TwoTowerTrainable:
    """Towers, loss and encoders of one replica batch size (built under a strategy scope)."""

    def __init__(self, prepared: Prepared, config: TwoTowerConfig, seed: int,
                 replica_batch: int) -> None:
        specs = prepared.specs
        self.columns = prepared.columns
        self.replica_batch = replica_batch
        self.id_list_width = prepared.vocab.id_list_width
        self.model = TwoTowerModel(specs["user_tower"], specs["anchor_tower"],
                                   config.embedding_dim, config.hidden_units,
                                   config.user_dropout_rate, config.anchor_dropout_rate, seed,
                                   memory_rows=prepared.vocab.anchor_rows,
                                   memory_dim=config.memory_dim,
                                   memory_weight=config.memory_weight,
                                   memory_trainable=config.memory_trainable,
                                   memory_pooling=config.memory_pooling,
                                   exact_rows=exact_code_rows(prepared.log_q,
                                                              config.exact_codes))
        with dtype_policy("float32"):  # a layer autocasts its inputs to its own policy
            softmax = InBatchSoftmaxLoss(
                num_negatives=min(config.num_negatives, replica_batch - 1),
                margin=config.margin, t=config.t, gamma=config.gamma,
                remove_accidental_hits=config.remove_accidental_hits,
                logq_correction=config.logq_correction, seed=seed)
            self.loss_fn = CombinedLoss(config.softmax_weight, config.pairwise_weight,
                                        config.pointwise_weight, softmax=softmax)
        with tf.device("/cpu:0"):  # string tables live on the host, where encode runs
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

    def encode(self, batch: Mapping[str, tf.Tensor]) -> dict:
        """Raw columns of a batch `[B, ...]` -> tower inputs, preference masks `[B]`, label
        `[B]` float32 and anchor_id `[B]`: no strings left, so the batch can go to a device."""
        users, user_mask = self.user_encoder({c: batch[c] for c in self.user_raw})
        anchors, anchor_mask = self.anchor_encoder({c: batch[c] for c in self.anchor_raw})
        return {"user": users, "user_mask": user_mask, "anchor": anchors,
                "anchor_mask": anchor_mask, "label": tf.cast(batch["label"], tf.float32),
                "anchor_id": tf.cast(batch["anchor_id"], tf.int64)}

    def embed(self, encoded: Mapping, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """(user, anchor) embeddings `[B, D]` float32 of an encoded batch."""
        u = self.model.user_tower(encoded["user"], training=training,
                                  preference_mask=encoded["user_mask"])
        a = self.model.anchor_tower(encoded["anchor"], training=training,
                                    preference_mask=encoded["anchor_mask"])
        return u, a

    def loss(self, encoded: Mapping, training: bool = True) -> tf.Tensor:
        """Per-example loss `[B]` float32 of an encoded batch (training mode: with dropout)."""
        u, a = self.embed(encoded, training=training)
        rows = encoded["anchor"]["anchor_id"]  # embedding rows: log q is kept per row
        per_example, _ = self.loss_fn(u, a, encoded["label"], anchor_ids=encoded["anchor_id"],
                                      anchor_log_q=tf.gather(self.log_q, rows))
        return per_example
