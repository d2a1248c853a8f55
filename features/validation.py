"""The landing contract: what a valid record is, and the reason codes of rejects. Engine-free.

Every format's parser (`jobs.landing`) turns a line or row into a record of plain Python
values (a JSON object's own types; CSV cells typed by the declared column types); the
functions here judge a record the same way whatever its format. A rejected record carries
the first reason that applies, in the order of `SESSION_REASONS` / `DIMENSION_REASONS`, so
every input line is counted under exactly one outcome.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

# Input contract of a session record; gift_value is optional.
REQUIRED_SESSION_KEYS = ("user_id", "anchor_id", "start_time", "watch_seconds")
OPTIONAL_SESSION_KEYS = ("gift_value",)

# Ids are integers in [MIN_ID, MAX_ID]: 0 is valid (many logs count from 0); the top is the
# largest integer a double holds exactly, so an id survives any JSON or float round trip.
MIN_ID, MAX_ID = 0, 2**53 - 1
# Longest plausible single session; anything above is a logging bug, not a viewer.
MAX_WATCH_SECONDS = 12 * 3600
MAX_GIFT_VALUE = 1_000_000.0  # per session, in the log's currency unit
MAX_ATTRIBUTE_CHARS = 64  # gender, city, category, ...: short codes, not free text
# Quarantine keeps at most this much of a rejected line, with its full length and hash.
MAX_PAYLOAD_BYTES = 64 * 1024

# How start_time is written: declared per landing (ingest --time-format), never guessed.
TIME_FORMATS = ("iso", "epoch_s", "epoch_ms")
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")

LINE_REASONS = (
    "bad_encoding",  # not UTF-8, or starts with a byte order mark
    "unparsable",  # not a JSON object / a CSV row with the header's number of cells
    "duplicate_key",  # a JSON object naming one key twice
)
SESSION_REASONS = (
    *LINE_REASONS,
    "missing_column",  # a required key is absent
    "null_id",  # user_id or anchor_id is null
    "malformed_id",  # an id that is not an integer in [MIN_ID, MAX_ID] (strings refused)
    "bad_timestamp",  # start_time not a complete timestamp of the declared format
    "out_of_day",  # start_time outside the file's day (UTC)
    "bad_duration",  # watch_seconds not a finite number in [0, MAX_WATCH_SECONDS]
    "bad_gift",  # gift_value present but not a finite number in [0, MAX_GIFT_VALUE]
    "unknown_user",  # user_id not known as of the day
    "unknown_anchor",  # anchor_id not known as of the day
    "duplicate",  # byte-identical copy of an earlier valid line of the same day
)
DIMENSION_REASONS = (
    *LINE_REASONS,
    "null_id",
    "malformed_id",
    "bad_attribute",  # a date that is not YYYY-MM-DD, or an attribute not a short string
    "duplicate",  # a second valid line for an id already seen that day
)

# Declared column types of each landing source ("id", "time", "number", "day", "text"):
# CSV cells are typed by them, and the validators below check them.
SOURCE_COLUMNS: dict[str, dict[str, str]] = {
    "watch_sessions": {"user_id": "id", "anchor_id": "id", "start_time": "time",
                       "watch_seconds": "number", "gift_value": "number"},
    "users": {"user_id": "id", "signup_date": "day", "gender": "text", "age_bucket": "text",
              "city": "text", "device": "text"},
    "anchors": {"anchor_id": "id", "debut_date": "day", "category": "text", "gender": "text",
                "city": "text"},
    "live_schedule": {"anchor_id": "id"},
}
ID_COLUMN = {"watch_sessions": None, "users": "user_id", "anchors": "anchor_id",
             "live_schedule": "anchor_id"}


def is_number(value: Any) -> bool:
    """A finite int or float (bool is not a number here)."""
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def valid_id(value: Any) -> int | None:
    """The id when it is an integer (not a string, not a float) in [MIN_ID, MAX_ID]."""
    if isinstance(value, int) and not isinstance(value, bool) and MIN_ID <= value <= MAX_ID:
        return value
    return None


def parse_time(value: Any, time_format: str) -> datetime | None:
    """A timezone-aware UTC datetime, or None when `value` is not a complete timestamp of
    `time_format` (ISO-8601 with seconds and a zone; epoch seconds or milliseconds as a
    number). Typed timestamps (Parquet) must carry a zone."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo is not None else None
    try:
        if time_format == "iso":
            if not isinstance(value, str) or not _ISO_TIME.match(value):
                return None
            return datetime.fromisoformat(value).astimezone(UTC)
        if not is_number(value):
            return None
        seconds = value / 1000 if time_format == "epoch_ms" else value
        return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
    except (ValueError, OverflowError):
        return None


def session_reason(record: Mapping[str, Any], day: date, time_format: str = "iso"
                   ) -> tuple[str | None, tuple]:
    """(first failing row-local rule or None, (user_id, anchor_id, start_time (UTC),
    watch_seconds, gift_value)). Known ids and duplicates are judged by the caller."""
    if any(k not in record for k in REQUIRED_SESSION_KEYS):
        return "missing_column", ()
    raw_user, raw_anchor = record["user_id"], record["anchor_id"]
    if raw_user is None or raw_anchor is None:
        return "null_id", ()
    user, anchor = valid_id(raw_user), valid_id(raw_anchor)
    if user is None or anchor is None:
        return "malformed_id", ()
    start = parse_time(record["start_time"], time_format)
    if start is None:
        return "bad_timestamp", ()
    if start.date() != day:
        return "out_of_day", ()
    seconds = record["watch_seconds"]
    if not is_number(seconds) or not 0 <= seconds <= MAX_WATCH_SECONDS:
        return "bad_duration", ()
    gift = record.get("gift_value")
    gift = 0.0 if gift is None else gift
    if not is_number(gift) or not 0 <= gift <= MAX_GIFT_VALUE:
        return "bad_gift", ()
    return None, (user, anchor, start, float(seconds), float(gift))


def _attribute_ok(kind: str, value: Any) -> bool:
    if value is None:
        return True  # unknown attributes are allowed; profiles carry them as null
    if not isinstance(value, str):
        return False
    if kind == "day":
        if not _DAY.match(value):
            return False
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return True
    return 0 < len(value) <= MAX_ATTRIBUTE_CHARS


def dimension_reason(record: Mapping[str, Any], source: str) -> tuple[str | None, tuple]:
    """(first failing rule or None, (id, *attributes in SOURCE_COLUMNS order))."""
    columns = SOURCE_COLUMNS[source]
    id_key = ID_COLUMN[source]
    raw = record.get(id_key)
    if raw is None:
        return "null_id", ()
    value = valid_id(raw)
    if value is None:
        return "malformed_id", ()
    attributes = [c for c in columns if c != id_key]
    if not all(_attribute_ok(columns[c], record.get(c)) for c in attributes):
        return "bad_attribute", ()
    return None, (value, *(record.get(c) for c in attributes))
