"""Every lake table, declared once: name, grain, schema. Jobs write exactly these columns."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import types as T

PARTITION_COLUMN = "dt"


@dataclass(frozen=True)
class TableSpec:
    """A Delta table under the lake root, partitioned by day unless `partitioned` is False."""

    name: str
    grain: str
    schema: T.StructType
    partitioned: bool = True

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.schema.fields]


def _schema(*fields: tuple[str, T.DataType]) -> T.StructType:
    return T.StructType([T.StructField(name, dtype, nullable=True) for name, dtype in fields])


S, L, D, TS = T.StringType(), T.LongType(), T.DoubleType(), T.TimestampType()
INT, B = T.IntegerType(), T.BooleanType()

USERS = TableSpec(
    "users",
    "one row per user, in the partition of the day the user first appeared",
    _schema(
        ("user_id", L), ("signup_date", S), ("gender", S), ("age_bucket", S),
        ("city", S), ("device", S), ("dt", S),
    ),
)

ANCHORS = TableSpec(
    "anchors",
    "one row per anchor, in the partition of the day the anchor first appeared",
    _schema(
        ("anchor_id", L), ("debut_date", S), ("category", S), ("gender", S),
        ("city", S), ("dt", S),
    ),
)

LIVE_SCHEDULE = TableSpec(
    "live_schedule",
    "one row per (anchor_id, dt) for every anchor live that day",
    _schema(("anchor_id", L), ("dt", S)),
)

RAW_WATCH_SESSIONS = TableSpec(
    "raw_watch_sessions",
    "one row per accepted watch session; session_id = xxhash64 of the raw line",
    _schema(
        ("session_id", L), ("user_id", L), ("anchor_id", L), ("start_time", TS),
        ("watch_seconds", D), ("gift_value", D), ("dt", S),
    ),
)

QUARANTINE = TableSpec(
    "quarantine",
    "one row per rejected input line: where it came from, why, and the line itself",
    _schema(("source", S), ("reason", S), ("payload", S), ("dt", S)),
)

CATEGORY_SECONDS = T.MapType(S, D)
ID_LIST = T.ArrayType(L)

# Daily partial aggregates: profiles sum these over their window, so each raw day is read once.
DAILY_USER_STATS = TableSpec(
    "daily_user_stats",
    "one row per (user_id, dt) for every user with a session that day",
    _schema(
        ("user_id", L), ("sessions", L), ("watch_seconds", D), ("bounces", L),
        ("long_watches", L), ("gift_value", D), ("gift_sessions", L),
        ("category_seconds", CATEGORY_SECONDS), ("dt", S),
    ),
)

DAILY_ANCHOR_STATS = TableSpec(
    "daily_anchor_stats",
    "one row per (anchor_id, dt) for every anchor live or watched that day",
    _schema(
        ("anchor_id", L), ("is_live", B), ("sessions", L), ("watch_seconds", D),
        ("bounces", L), ("long_watches", L), ("gift_value", D), ("gift_sessions", L),
        ("dt", S),
    ),
)

DAILY_USER_ANCHOR = TableSpec(
    "daily_user_anchor",
    "one row per (user_id, anchor_id, dt) pair that had a session that day",
    _schema(
        ("user_id", L), ("anchor_id", L), ("sessions", L), ("watch_seconds", D),
        ("gift_value", D), ("last_start_time", TS), ("dt", S),
    ),
)

_WINDOW_FIELDS = (
    ("window_days", INT), ("window_days_present", INT), ("has_history", B),
    ("source_min_dt", S), ("source_max_dt", S),
)

USER_PROFILES = TableSpec(
    "user_profiles",
    "one row per user known as of dt, built from days dt-N .. dt-1 only",
    _schema(
        ("user_id", L), ("gender", S), ("age_bucket", S), ("city", S), ("device", S),
        ("tenure_days", INT), *_WINDOW_FIELDS,
        ("sessions", L), ("watch_seconds", D), ("active_days", INT), ("distinct_anchors", L),
        ("bounces", L), ("long_watches", L), ("gift_value", D), ("gift_sessions", L),
        ("bounce_rate", D), ("avg_watch_seconds", D), ("category_shares", CATEGORY_SECONDS),
        ("last_anchors", ID_LIST), ("days_since_last_active", INT), ("dt", S),
    ),
)

ANCHOR_PROFILES = TableSpec(
    "anchor_profiles",
    "one row per anchor known as of dt, built from days dt-N .. dt-1 only",
    _schema(
        ("anchor_id", L), ("category", S), ("gender", S), ("city", S),
        ("days_since_debut", INT), *_WINDOW_FIELDS,
        ("sessions", L), ("watch_seconds", D), ("live_days", INT), ("active_days", INT),
        ("distinct_viewers", L), ("bounces", L), ("long_watches", L), ("gift_value", D),
        ("gift_sessions", L), ("distinct_gifters", L), ("bounce_rate", D),
        ("avg_watch_seconds", D), ("days_since_last_live", INT), ("dt", S),
    ),
)

LABELS = TableSpec(
    "labels",
    "one row per (user_id, anchor_id) watched on dt whose total watch time is a clear "
    "positive (>= positive threshold) or negative (<= negative threshold)",
    _schema(
        ("user_id", L), ("anchor_id", L), ("label", INT), ("watch_seconds", D), ("sessions", L),
        ("gift_value", D), ("is_new_user", B), ("is_new_anchor", B), ("dt", S),
    ),
)

ALL_TABLES = (
    USERS, ANCHORS, LIVE_SCHEDULE, RAW_WATCH_SESSIONS, QUARANTINE, DAILY_USER_STATS,
    DAILY_ANCHOR_STATS, DAILY_USER_ANCHOR, USER_PROFILES, ANCHOR_PROFILES, LABELS,
)
