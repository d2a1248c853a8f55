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
    anchor_buckets: int  # anchor ids are used directly as ids in [1, anchor_buckets)
    last_k: int

    @classmethod
    def from_manifest(cls, manifest: TrainingSetManifest, anchor_buckets: int,
                      last_k: int) -> Vocabularies:
        vocab = manifest.vocabularies
        strings = {f"user_{c}": vocab[f"user_{c}"] for c in USER_CATEGORICAL}
        strings.update({f"anchor_{c}": vocab[f"anchor_{c}"] for c in ANCHOR_CATEGORICAL})
        return cls(strings, len(vocab["category"]), anchor_buckets, last_k)

    def to_json(self) -> dict:
        return {"strings": self.strings, "categories": self.categories,
                "anchor_buckets": self.anchor_buckets, "last_k": self.last_k}


def tower_specs(vocab: Vocabularies, config: TwoTowerConfig) -> tuple[TowerSpec, TowerSpec]:
    """The features of the user and anchor towers (DropoutNet content/preference groups)."""

    def categorical(name: str) -> CategoricalFeature:
        size = len(vocab.strings[name])
        return CategoricalFeature(name, max(size, 1), min(8, max(2, size // 2)))

    def numeric(name: str, group: str = PREFERENCE) -> NumericFeature:
        return NumericFeature(name, group, log1p=name not in RATES)

    ids = config.id_embedding_dim
    user = TowerSpec((
        *[categorical(f"user_{c}") for c in USER_CATEGORICAL],
        *[numeric(n, CONTENT) for n in USER_CONTENT_NUMERIC],
        *[numeric(n) for n in USER_PREFERENCE_NUMERIC],
        NumericFeature("user_category_shares", PREFERENCE, width=vocab.categories),
        SequenceFeature("user_last_anchors", vocab.anchor_buckets, ids, PREFERENCE),
    ))
    anchor = TowerSpec((
        *[categorical(f"anchor_{c}") for c in ANCHOR_CATEGORICAL],
        *[numeric(n, CONTENT) for n in ANCHOR_CONTENT_NUMERIC],
        *[numeric(n) for n in ANCHOR_PREFERENCE_NUMERIC],
        CategoricalFeature("anchor_id", vocab.anchor_buckets, ids, PREFERENCE),
    ))
    return user, anchor


def raw_columns(spec: TowerSpec) -> list[str]:
    """Raw example columns one tower reads (its features plus the has-history flag)."""
    prefix = "user" if spec.names[0].startswith("user_") else "anchor"
    return [*spec.names, f"{prefix}_has_history"]


def anchor_log_q(train_anchor_ids: np.ndarray, buckets: int) -> np.ndarray:
    """`[buckets + 1]` log share of each anchor among all training rows.

    In-batch negatives are the anchors of other rows, whatever their label, so q is the
    anchor's share of rows; anchors never seen get half a count (a finite log q).
    """
    counts = np.bincount(train_anchor_ids, minlength=buckets + 1).astype(np.float64)
    return np.log(np.maximum(counts, 0.5) / max(counts.sum(), 1.0)).astype(np.float32)
