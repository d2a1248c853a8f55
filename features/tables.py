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

ALL_TABLES = (USERS, ANCHORS, LIVE_SCHEDULE, RAW_WATCH_SESSIONS, QUARANTINE)
