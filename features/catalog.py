"""Every lake table, declared once: name, grain, columns with their types. Engine-free.

Types are Spark SQL type names (`bigint`, `map<string,double>`); `jobs.schemas` turns a
spec into a Spark schema, the trainer and the DAGs read names and columns from here, so
none of them keeps its own copy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

PARTITION_COLUMN = "dt"

S, L, D, TS, INT, B = "string", "bigint", "double", "timestamp", "int", "boolean"
CATEGORY_SECONDS = "map<string,double>"
CATEGORY_MILLIS = "map<string,bigint>"
ID_LIST = "array<bigint>"
VECTOR = "array<double>"


@dataclass(frozen=True)
class TableSpec:
    """A table under the lake root, partitioned by day unless `partitioned` is False."""

    name: str
    grain: str
    fields: tuple[tuple[str, str], ...]  # (column, Spark SQL type), in order
    partitioned: bool = True

    @property
    def columns(self) -> list[str]:
        return [name for name, _ in self.fields]

    def type_of(self, column: str) -> str:
        return dict(self.fields)[column]

    def renamed(self, name: str) -> TableSpec:
        """The same table under another folder (e.g. one training set run's tables)."""
        return replace(self, name=name)


USERS = TableSpec(
    "users", "one row per user, in the partition of the day the user first appeared",
    (("user_id", L), ("signup_date", S), ("gender", S), ("age_bucket", S), ("city", S),
     ("device", S), ("dt", S)),
)

ANCHORS = TableSpec(
    "anchors", "one row per anchor, in the partition of the day the anchor first appeared",
    (("anchor_id", L), ("debut_date", S), ("category", S), ("gender", S), ("city", S),
     ("dt", S)),
)

LIVE_SCHEDULE = TableSpec(
    "live_schedule", "one row per (anchor_id, dt) for every anchor live that day",
    (("anchor_id", L), ("dt", S)),
)

RAW_WATCH_SESSIONS = TableSpec(
    "raw_watch_sessions",
    "one row per accepted watch session; session_id = xxhash64 of the raw line",
    (("session_id", L), ("user_id", L), ("anchor_id", L), ("start_time", TS),
     ("watch_seconds", D), ("gift_value", D), ("dt", S)),
)

QUARANTINE = TableSpec(
    "quarantine",
    "one row per rejected input line: where it came from (source, file, line number), why, "
    "and the line itself (at most 64 KiB of it; payload_bytes and payload_sha256 describe "
    "the whole line)",
    (("source", S), ("reason", S), ("payload", S), ("payload_bytes", L), ("payload_sha256", S),
     ("file", S), ("line", L), ("dt", S)),
)

# Daily partial aggregates: profiles sum these over their window, so each raw day is read once.
DAILY_USER_STATS = TableSpec(
    "daily_user_stats", "one row per (user_id, dt) for every user with a session that day",
    (("user_id", L), ("sessions", L), ("watch_seconds", D), ("bounces", L),
     ("long_watches", L), ("gift_value", D), ("gift_sessions", L),
     ("category_seconds", CATEGORY_SECONDS), ("dt", S)),
)

DAILY_ANCHOR_STATS = TableSpec(
    "daily_anchor_stats", "one row per (anchor_id, dt) for every anchor live or watched that day",
    (("anchor_id", L), ("is_live", B), ("sessions", L), ("watch_seconds", D),
     ("bounces", L), ("long_watches", L), ("gift_value", D), ("gift_sessions", L), ("dt", S)),
)

DAILY_USER_ANCHOR = TableSpec(
    "daily_user_anchor", "one row per (user_id, anchor_id, dt) pair that had a session that day",
    (("user_id", L), ("anchor_id", L), ("sessions", L), ("watch_seconds", D),
     ("gift_value", D), ("last_start_time", TS), ("dt", S)),
)

# Running totals of the daily stats (fixed point: milliseconds, micro-units of gift value):
# a profile's window sums are the difference of two days' rows, whatever the window's length.
# `since`: the day the entity's running total started (it restarts after a long absence).
_TOTAL_SUMS = (("sessions", L), ("watch_millis", L), ("bounces", L), ("long_watches", L),
               ("gift_micros", L), ("gift_sessions", L), ("active_days", L))

USER_TOTALS = TableSpec(
    "user_running_totals",
    "one row per user active on dt or recently before: sums of daily_user_stats since `since`",
    (("user_id", L), ("since", S), ("last_dt", S), *_TOTAL_SUMS,
     ("category_millis", CATEGORY_MILLIS), ("dt", S)),
)

ANCHOR_TOTALS = TableSpec(
    "anchor_running_totals",
    "one row per anchor live or watched on dt or recently before: sums of daily_anchor_stats "
    "since `since`",
    (("anchor_id", L), ("since", S), ("last_dt", S), ("last_live_dt", S), *_TOTAL_SUMS,
     ("live_days", L), ("dt", S)),
)

_WINDOW_FIELDS = (
    ("window_days", INT), ("window_days_present", INT), ("has_history", B),
    ("source_min_dt", S), ("source_max_dt", S),
)

USER_PROFILES = TableSpec(
    "user_profiles", "one row per user known as of dt, built from days dt-N .. dt-1 only",
    (("user_id", L), ("gender", S), ("age_bucket", S), ("city", S), ("device", S),
     ("tenure_days", INT), *_WINDOW_FIELDS,
     ("sessions", L), ("watch_seconds", D), ("active_days", INT), ("distinct_anchors", L),
     ("bounces", L), ("long_watches", L), ("gift_value", D), ("gift_sessions", L),
     ("bounce_rate", D), ("avg_watch_seconds", D), ("category_shares", CATEGORY_SECONDS),
     ("last_anchors", ID_LIST), ("days_since_last_active", INT),
     # long horizon (H days before dt, H >= N usually): live streaming is repeat-heavy and
     # users return to anchors last watched beyond the window; strongest first
     ("history_anchors", ID_LIST), ("history_weights", VECTOR), ("history_days", INT),
     ("history_max_dt", S), ("dt", S)),
)

ANCHOR_PROFILES = TableSpec(
    "anchor_profiles", "one row per anchor known as of dt, built from days dt-N .. dt-1 only",
    (("anchor_id", L), ("category", S), ("gender", S), ("city", S), ("days_since_debut", INT),
     *_WINDOW_FIELDS,
     ("sessions", L), ("watch_seconds", D), ("live_days", INT), ("active_days", INT),
     ("distinct_viewers", L), ("bounces", L), ("long_watches", L), ("gift_value", D),
     ("gift_sessions", L), ("distinct_gifters", L), ("bounce_rate", D),
     ("avg_watch_seconds", D), ("days_since_last_live", INT), ("dt", S)),
)

LABELS = TableSpec(
    "labels",
    "one row per (user_id, anchor_id) watched on dt whose total watch time is a clear "
    "positive (>= positive threshold) or negative (<= negative threshold)",
    (("user_id", L), ("anchor_id", L), ("label", INT), ("watch_seconds", D), ("sessions", L),
     ("gift_value", D), ("is_new_user", B), ("is_new_anchor", B), ("dt", S)),
)

# Anchor item-CF: the most similar anchors of each anchor by co-watching, as of dt.
ANCHOR_NEIGHBOURS = TableSpec(
    "anchor_neighbours",
    "one row per (anchor_id, neighbour_id) among each anchor's top neighbours by shrunk "
    "cosine of their viewer sets over days dt-W .. dt-1",
    (("anchor_id", L), ("neighbour_id", L), ("similarity", D), ("co_viewers", L),
     ("window_days", INT), ("dt", S)),
)

ALL_TABLES = (
    USERS, ANCHORS, LIVE_SCHEDULE, RAW_WATCH_SESSIONS, QUARANTINE, DAILY_USER_STATS,
    DAILY_ANCHOR_STATS, DAILY_USER_ANCHOR, USER_TOTALS, ANCHOR_TOTALS, USER_PROFILES,
    ANCHOR_PROFILES, ANCHOR_NEIGHBOURS, LABELS,
)
TABLES = {spec.name: spec for spec in ALL_TABLES}
