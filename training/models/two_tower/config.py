"""Settings of the two-tower DropoutNet model (the loop's settings are training.config's)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from features.rules import DEFAULT_HISTORY_K, DEFAULT_LAST_K

# How a memory channel pools its rows: "normalised", the unit-norm weighted sum;
# "max_scaled", the sum of unit rows weighted by their share of the largest weight
# "learned", unit rows each weighted by a strength learned from its weight and rank
MemoryPooling = Literal["normalised", "max_scaled", "learned"]
# How the cold-anchor offset is chosen on the validation days (cold_offset.py): "one_se" the
# largest within one standard error of the best recall@50, "best" the best, "none" no offset
OffsetRule = Literal["one_se", "best", "none"]


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
    # 0 = none (popular anchors sink). Demo scale, learned memory, 512 dims, three epochs,
    # test day recall@50 / cold-anchor recall@50: 0.5 0.765 / 0.312; 0.75 0.777 / 0.321;
    # 1 0.783 / 0.152 (the content-only oracle's cold-anchor figure: 0.271)
    logq_weight: float = Field(0.75, ge=0, le=1)
    remove_accidental_hits: bool = True
    last_k: int = Field(DEFAULT_LAST_K, ge=1, le=200)  # recent anchors read per user
    id_embedding_dim: int = Field(16, ge=1)  # anchor id and last-anchors embeddings
    # Memory channel: the user's long history (weighted bag) and the anchor's own id share
    # one embedding table, so a returning viewer scores the anchors they watched (and those
    # embedded near them); this share of the score is theirs, the rest the towers' MLPs'.
    # 0 turns it off.
    memory_weight: float = Field(0.5, ge=0, le=1)
    # random codes of this size: crosstalk between codes ~ 1/sqrt(memory_dim) (demo scale,
    # learned pooling, validation recall@50 after one epoch: 256 dims 0.691, 1024 0.716)
    memory_dim: int = Field(512, ge=2, le=1024)
    # Exact codes (one-hot: each history anchor scored by its own strength, no crosstalk) for
    # the anchors with the most training rows, at most this many; every anchor when the
    # vocabulary fits, and then no random codes. One embedding dimension each: 4096 keeps a
    # 100,000-anchor index at 1.9 GB of float32. 0 = random codes only. Demo scale (2,500
    # anchors, all exact), seed 11, three epochs: see docs/decisions.md, 2026-12-01 (seventh).
    exact_codes: int = Field(4096, ge=0)
    # False: the shared rows stay random codes (nearly orthogonal in high dimension), so the
    # channel scores the user's own anchors by their history weight, as rewatching does,
    # and the MLP part generalises; True: trained, so co-watched anchors draw together
    memory_trainable: bool = False
    # "learned" (default): each history anchor's code weighted by a strength in (0, 2) that a
    # monotone layer learns from its weight, its share of the user's largest and its rank
    # (never lower for a stronger anchor), so the dot product with an anchor's code is that
    # anchor's learned rewatch score;
    # "normalised": the history's unit-norm weighted sum (a history anchor's share of the
    # cosine shrinks as the history grows); "max_scaled": unit rows weighted by their share of
    # the user's largest weight. Measured at demo scale (seed 11, test day 2026-01-14,
    # recall@50): normalised, trained 128-dim rows, w 0.7: 0.677 (rewatch 0.789); learned,
    # the defaults, three epochs: 0.777. See docs/decisions.md, 2026-12-01 (third session).
    memory_pooling: MemoryPooling = "learned"
    history_k: int = Field(DEFAULT_HISTORY_K, ge=1, le=200)  # long-history anchors read per user
    # Trained to its stop, the model ranks new anchors just below the top 50 (demo scale,
    # seed 11, test day: cold-anchor recall@50 0.152 at epoch 9, 0.308 at epoch 4); the
    # offset lifts them at serving, chosen after training on the validation days (none
    # without one). "one_se" at epoch 4: 0.5 logit, cold-anchor 0.481, recall@50 0.793
    # (0.792 without)
    cold_anchor_offset: OffsetRule = "one_se"
    # The memory part's scale at serving, chosen after training on the validation days by
    # NDCG@10 (memory_scale.py; "one_se" the smallest within one standard error of the best,
    # before the cold-anchor offset): the loss leaves the memory too quiet beside the MLP
    # inside a user's history. Demo scale, seed 11, three epochs: validation NDCG@10 0.427
    # at 1, 0.441 at 4; the test day 0.441 to 0.456, recall@50 unchanged.
    memory_scale: OffsetRule = "one_se"
