"""Training examples: a label row with the user's and the anchor's profile of the same day.

Profile columns become `user_<name>` / `anchor_<name>`; the user's category shares become a
fixed-length vector over the category vocabulary. The trainer reads its feature groups
from here too, so the Spark output and the model inputs cannot drift apart. Engine-free:
`jobs.training_set` builds the Spark columns from these declarations.
"""

from __future__ import annotations

from features.catalog import ANCHOR_PROFILES, LABELS, USER_PROFILES, VECTOR, TableSpec

USER_KEYS, ANCHOR_KEYS = ("user_id", "dt"), ("anchor_id", "dt")
NOT_FEATURES = ("window_days", "window_days_present", "source_min_dt", "history_days",
                "history_max_dt")
VECTOR_COLUMNS = {"category_shares": VECTOR}  # profile maps stored as vectors in examples

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


def profile_fields(spec: TableSpec, keys: tuple[str, ...]) -> list[tuple[str, str]]:
    """(column, type) of a profile table that become example features."""
    return [(n, t) for n, t in spec.fields if n not in keys and n not in NOT_FEATURES]


def prefixed_fields(spec: TableSpec, keys: tuple[str, ...], prefix: str
                    ) -> tuple[tuple[str, str], ...]:
    """Profile feature fields as example columns `<prefix>_<name>` (maps become vectors)."""
    return tuple((f"{prefix}_{n}", VECTOR_COLUMNS.get(n, t))
                 for n, t in profile_fields(spec, keys))


USER_FEATURE_FIELDS = prefixed_fields(USER_PROFILES, USER_KEYS, "user")
ANCHOR_FEATURE_FIELDS = prefixed_fields(ANCHOR_PROFILES, ANCHOR_KEYS, "anchor")
EXAMPLE_FIELDS = LABELS.fields + USER_FEATURE_FIELDS + ANCHOR_FEATURE_FIELDS
SHUFFLE_FIELDS = (("shuffle_key", "bigint"), ("shard", "int"), ("pos", "int"))
SHUFFLE_COLUMNS = tuple(n for n, _ in SHUFFLE_FIELDS)

TRAIN_EXAMPLES = TableSpec(
    "training_sets/<run>/train",
    "one row per labelled (user, anchor, dt) of the training days, in shuffled order",
    EXAMPLE_FIELDS + SHUFFLE_FIELDS, partitioned=False,
)
VALIDATION_EXAMPLES = TableSpec(
    "training_sets/<run>/validation",
    "one row per labelled (user, anchor, dt) of the held-out days, never shuffled in",
    EXAMPLE_FIELDS, partitioned=False,
)
CANDIDATES = TableSpec(
    "training_sets/<run>/candidates",
    "one row per (anchor, dt) live on a held-out day: the anchors evaluation ranks",
    (("anchor_id", "bigint"), ("dt", "string")) + ANCHOR_FEATURE_FIELDS, partitioned=False,
)
