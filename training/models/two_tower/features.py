"""The two towers' inputs: which example columns each reads, and how they are embedded.

Content features are known from day one (gender, city, category, tenure); preference
features come from behaviour (window statistics, category shares, recent anchors, the
anchor's own id) and are what a cold user or anchor lacks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.examples import (
    ANCHOR_CATEGORICAL,
    ANCHOR_CONTENT_NUMERIC,
    ANCHOR_PREFERENCE_NUMERIC,
    USER_CATEGORICAL,
    USER_CONTENT_NUMERIC,
    USER_PREFERENCE_NUMERIC,
)
from features.manifest import TrainingSetManifest
from training.models.two_tower.config import TwoTowerConfig
from training.models.two_tower.towers import (
    CONTENT,
    PREFERENCE,
    CategoricalFeature,
    Memory,
    NumericFeature,
    SequenceFeature,
    TowerSpec,
)

# Counts and durations are heavy-tailed: log1p; rates are already in [0, 1].
RATES = ("user_bounce_rate", "anchor_bounce_rate")
LABEL_COLUMNS = ("label", "anchor_id", "user_id", "dt")


@dataclass(frozen=True)
class Vocabularies:
    """What the encoder needs to know of the data: string vocabularies and id ranges."""

    strings: dict[str, list[str]]  # raw column -> sorted values (index = id)
    categories: int  # width of user_category_shares
    anchor_ids: np.ndarray  # sorted distinct anchor ids the model embeds (index + 1 = row)
    last_k: int
    history_k: int = 0  # long-history anchors read per user (0: none)

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchor_ids",
                           np.unique(np.asarray(self.anchor_ids, np.int64)))

    @classmethod
    def from_manifest(cls, manifest: TrainingSetManifest, anchor_ids: np.ndarray,
                      last_k: int, history_k: int = 0) -> Vocabularies:
        vocab = manifest.vocabularies
        strings = {f"user_{c}": vocab[f"user_{c}"] for c in USER_CATEGORICAL}
        strings.update({f"anchor_{c}": vocab[f"anchor_{c}"] for c in ANCHOR_CATEGORICAL})
        return cls(strings, len(vocab["category"]), anchor_ids, last_k, history_k)

    @property
    def id_list_width(self) -> int:
        """Width of id-list columns as read: the longest list a tower reads."""
        return max(self.last_k, self.history_k)

    @property
    def anchor_rows(self) -> int:
        """Rows of an anchor id embedding: 0 (padding), one per known id, then unknown."""
        return len(self.anchor_ids) + 1

    def anchor_index(self, ids: np.ndarray) -> np.ndarray:
        """Embedding row of each anchor id: 1 + its rank among the known ids, or
        `anchor_rows` (the out-of-vocabulary row) for an id never seen. Ids are looked up,
        never used as indices, so any id up to 2^53 costs nothing."""
        ids = np.asarray(ids, np.int64)
        pos = np.searchsorted(self.anchor_ids, ids)
        known = (pos < len(self.anchor_ids)) & (
            self.anchor_ids[np.minimum(pos, len(self.anchor_ids) - 1)] == ids)
        return np.where(known, pos + 1, self.anchor_rows)


def tower_specs(vocab: Vocabularies, config: TwoTowerConfig) -> tuple[TowerSpec, TowerSpec]:
    """The features of the user and anchor towers (DropoutNet content/preference groups)."""

    def categorical(name: str) -> CategoricalFeature:
        size = len(vocab.strings[name])
        return CategoricalFeature(name, max(size, 1), min(8, max(2, size // 2)))

    def numeric(name: str, group: str = PREFERENCE) -> NumericFeature:
        return NumericFeature(name, group, log1p=name not in RATES)

    ids = config.id_embedding_dim
    with_memory = config.memory_weight > 0 and vocab.history_k > 0
    user = TowerSpec((
        *[categorical(f"user_{c}") for c in USER_CATEGORICAL],
        *[numeric(n, CONTENT) for n in USER_CONTENT_NUMERIC],
        *[numeric(n) for n in USER_PREFERENCE_NUMERIC],
        NumericFeature("user_category_shares", PREFERENCE, width=vocab.categories),
        SequenceFeature("user_last_anchors", vocab.anchor_rows, ids, PREFERENCE),
    ), Memory("user_history_anchors", "user_history_weights", vocab.history_k)
        if with_memory else None)
    anchor = TowerSpec((
        *[categorical(f"anchor_{c}") for c in ANCHOR_CATEGORICAL],
        *[numeric(n, CONTENT) for n in ANCHOR_CONTENT_NUMERIC],
        *[numeric(n) for n in ANCHOR_PREFERENCE_NUMERIC],
        CategoricalFeature("anchor_id", vocab.anchor_rows, ids, PREFERENCE),
    ), Memory("anchor_id") if with_memory else None)
    return user, anchor


def raw_columns(spec: TowerSpec) -> list[str]:
    """Raw example columns one tower reads (its features, its memory's columns, then the
    has-history flag, last)."""
    prefix = "user" if spec.names[0].startswith("user_") else "anchor"
    memory = [c for c in spec.memory.columns if c not in spec.names] if spec.memory else []
    return [*spec.names, *memory, f"{prefix}_has_history"]


def anchor_log_q(train_anchor_rows: np.ndarray, anchor_rows: int) -> np.ndarray:
    """`[anchor_rows + 1]` log share of each anchor embedding row among all training rows.

    In-batch negatives are the anchors of other rows, whatever their label, so q is the
    anchor's share of rows; rows never seen get half a count (a finite log q).
    """
    counts = np.bincount(train_anchor_rows, minlength=anchor_rows + 1).astype(np.float64)
    return np.log(np.maximum(counts, 0.5) / max(counts.sum(), 1.0)).astype(np.float32)


def exact_code_rows(log_q: np.ndarray, limit: int) -> np.ndarray:
    """Anchor rows that get exact memory codes: every row (padding and out-of-vocabulary
    included) when all `len(log_q)` fit in `limit`, else the `limit` known anchors with the
    most training rows (ties to the lower row)."""
    if len(log_q) <= limit:
        return np.arange(len(log_q))
    known = np.arange(1, len(log_q) - 1)
    return np.sort(known[np.argsort(-log_q[known], kind="stable")[:limit]])
