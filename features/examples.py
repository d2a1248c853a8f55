"""Training examples: a label row with the user's and the anchor's profile of the same day.

Profile columns become `user_<name>` / `anchor_<name>`; the user's category shares become a
fixed-length vector over the category vocabulary. The trainer reads its feature groups
from here too, so the Spark output and the model inputs cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.tables import ANCHOR_PROFILES, LABELS, USER_PROFILES, TableSpec

USER_KEYS, ANCHOR_KEYS = ("user_id", "dt"), ("anchor_id", "dt")
_NOT_FEATURES = ("window_days", "window_days_present", "source_min_dt")

USER_CATEGORICAL = ("gender", "age_bucket", "city", "device")
ANCHOR_CATEGORICAL = ("category", "gender", "city")

# Feature groups of DropoutNet: content is known at sign-up; preference comes from behaviour
# and is what a cold user or anchor lacks (dropped at random in training).
USER_CONTENT_NUMERIC = ("user_tenure_days",)
USER_PREFERENCE_NUMERIC = (
    "user_sessions", "user_watch_seconds", "user_active_days", "user_distinct_anchors",
    "user_bounces", "user_long_watches", "user_gift_value", "user_gift_sessions",
    "user_bounce_rate", "user_avg_watch_seconds", "user_days_since_last_active",
)
ANCHOR_CONTENT_NUMERIC = ("anchor_days_since_debut",)
ANCHOR_PREFERENCE_NUMERIC = (
    "anchor_sessions", "anchor_watch_seconds", "anchor_live_days", "anchor_active_days",
    "anchor_distinct_viewers", "anchor_bounces", "anchor_long_watches", "anchor_gift_value",
    "anchor_gift_sessions", "anchor_distinct_gifters", "anchor_bounce_rate",
    "anchor_avg_watch_seconds", "anchor_days_since_last_live",
)


def _profile_fields(spec: TableSpec, keys: Sequence[str]) -> list[T.StructField]:
    return [f for f in spec.schema.fields if f.name not in keys and f.name not in _NOT_FEATURES]


def user_feature_columns(categories: Sequence[str]) -> list[Column]:
    """user_profiles columns renamed `user_*`; category shares as a vector over `categories`."""
    out = [F.col(k) for k in USER_KEYS]
    for field in _profile_fields(USER_PROFILES, USER_KEYS):
        if field.name == "category_shares":
            shares = [F.coalesce(F.col("category_shares").getItem(c), F.lit(0.0))
                      for c in categories]
            out.append(F.array(*shares).cast("array<double>").alias("user_category_shares"))
        else:
            out.append(F.col(field.name).alias(f"user_{field.name}"))
    return out


def anchor_feature_columns() -> list[Column]:
    return [F.col(k) for k in ANCHOR_KEYS] + [
        F.col(f.name).alias(f"anchor_{f.name}") for f in _profile_fields(ANCHOR_PROFILES,
                                                                          ANCHOR_KEYS)]


def _prefixed(spec: TableSpec, keys: Sequence[str], prefix: str) -> list[T.StructField]:
    fields = []
    for f in _profile_fields(spec, keys):
        dtype = T.ArrayType(T.DoubleType()) if f.name == "category_shares" else f.dataType
        fields.append(T.StructField(f"{prefix}_{f.name}", dtype))
    return fields


_LABEL_FIELDS = [f for f in LABELS.schema.fields]
_EXAMPLE_FIELDS = (_LABEL_FIELDS + _prefixed(USER_PROFILES, USER_KEYS, "user")
                   + _prefixed(ANCHOR_PROFILES, ANCHOR_KEYS, "anchor"))
SHUFFLE_COLUMNS = ("shuffle_key", "shard", "pos")

TRAIN_EXAMPLES = TableSpec(
    "training_sets/<run>/train",
    "one row per labelled (user, anchor, dt) of the training days, in shuffled order",
    T.StructType(_EXAMPLE_FIELDS + [T.StructField("shuffle_key", T.LongType()),
                                    T.StructField("shard", T.IntegerType()),
                                    T.StructField("pos", T.IntegerType())]),
    partitioned=False,
)
VALIDATION_EXAMPLES = TableSpec(
    "training_sets/<run>/validation",
    "one row per labelled (user, anchor, dt) of the held-out days, never shuffled in",
    T.StructType(_EXAMPLE_FIELDS), partitioned=False,
)
CANDIDATES = TableSpec(
    "training_sets/<run>/candidates",
    "one row per (anchor, dt) live on a held-out day: the anchors evaluation ranks",
    T.StructType([T.StructField("anchor_id", T.LongType()), T.StructField("dt", T.StringType())]
                 + _prefixed(ANCHOR_PROFILES, ANCHOR_KEYS, "anchor")),
    partitioned=False,
)
