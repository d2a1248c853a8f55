"""Settings of the two-tower DropoutNet model (the loop's settings are training.config's)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

# How a memory channel pools its rows: "normalised", the unit-norm weighted sum;
# "max_scaled", the sum of unit rows weighted by their share of the largest weight
MemoryPooling = Literal["normalised", "max_scaled"]


class TwoTowerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    embedding_dim: int = Field(32, ge=2, le=1024)
    hidden_units: tuple[int, ...] = (128, 64)
    # DropoutNet: drop the whole preference group per example with this probability
    user_dropout_rate: float = Field(0.5, ge=0, le=1)
    anchor_dropout_rate: float = Field(0.5, ge=0, le=1)
    num_negatives: int = Field(64, ge=1)  # K rolled in-batch negatives per positive
    margin: float = Field(0.1, ge=0)  # support-vector-guided softmax: pos' = pos - margin
    t: float = Field(1.2, ge=1)  # hard negatives become t*neg + t - 1
    gamma: float = Field(20.0, gt=0)  # logit scale
    softmax_weight: float = Field(1.0, ge=0)
    pairwise_weight: float = Field(0.2, ge=0)
    pointwise_weight: float = Field(0.5, ge=0)
    logq_correction: bool = True
    # subtract logq_weight * log q: 1 = full correction (warm anchors win, cold ones sink),
    # 0 = none (popular anchors sink); 0.5 measured best on the simulator
    logq_weight: float = Field(0.5, ge=0, le=1)
    remove_accidental_hits: bool = True
    last_k: int = Field(10, ge=1, le=200)  # recent anchors read per user
    id_embedding_dim: int = Field(16, ge=1)  # anchor id and last-anchors embeddings
    # Memory channel: the user's long history (weighted bag) and the anchor's own id share
    # one embedding table, so a returning viewer scores the anchors they watched (and those
    # embedded near them); this share of the score is theirs, the rest the towers' MLPs'.
    # 0 turns it off.
    # measured at demo scale (validation day, recall@50 / NDCG@10 after one epoch): w 0.5,
    # 32 dims 0.596 / 0.264; w 0.7, 128 dims 0.655 / 0.345; w 0.7, 256 fixed random codes
    # 0.613 / 0.363
    memory_weight: float = Field(0.7, ge=0, le=1)
    memory_dim: int = Field(128, ge=2, le=1024)
    # False: the shared rows stay random codes (nearly orthogonal in high dimension), so the
    # channel scores the user's own anchors by their history weight, as rewatching does,
    # and the MLP part generalises; True: trained, so co-watched anchors draw together
    memory_trainable: bool = True
    # "normalised": the history's unit-norm weighted sum (a history anchor's share of the
    # cosine shrinks as the history grows); "max_scaled": unit rows weighted by their share of
    # the user's largest weight, so the user's top anchor scores a full cosine. Measured at
    # demo scale, validation day, epoch 1, recall@50 / recall@10 / NDCG@10: normalised w 0.7
    # 0.663 / 0.504 / 0.351; max_scaled w 0.7 0.622 / 0.489 / 0.351, w 0.5 0.648 / 0.504 /
    # 0.359; max_scaled fixed 256-dim codes w 0.7 0.632 / 0.534 / 0.378, w 0.5 0.642 / 0.532 /
    # 0.376 (normalised w 0.9: 0.622 / 0.478 / 0.334). Max-scaling puts the history on top
    # (better top 10) but the user's unwatched history then outranks the model's other
    # anchors, and recall@50 drops: a setting for the tuner, not the default
    memory_pooling: MemoryPooling = "normalised"
    history_k: int = Field(32, ge=1, le=200)  # long-history anchors read per user
