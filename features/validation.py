"""Rules for raw watch sessions: what a valid row is, and the reason codes of rejects.

A rejected row carries the first reason that applies, in the order of `SESSION_REASONS`,
so every input line is counted under exactly one outcome.
"""

from __future__ import annotations

# Input contract of a landing line (JSON object); gift_value is optional.
REQUIRED_SESSION_KEYS = ("user_id", "anchor_id", "start_time", "watch_seconds")
OPTIONAL_SESSION_KEYS = ("gift_value",)

# Longest plausible single session; anything above is a logging bug, not a viewer.
MAX_WATCH_SECONDS = 12 * 3600

SESSION_REASONS = (
    "unparsable",  # not a JSON object
    "missing_column",  # a required key is absent
    "null_id",  # user_id or anchor_id is null
    "malformed_id",  # an id that is not a positive integer
    "bad_timestamp",  # start_time not an ISO-8601 timestamp
    "out_of_day",  # start_time outside the file's day (UTC)
    "bad_duration",  # watch_seconds not a number, negative or > MAX_WATCH_SECONDS
    "bad_gift",  # gift_value present but not a non-negative number
    "unknown_user",  # user_id not known as of the day
    "unknown_anchor",  # anchor_id not known as of the day
    "duplicate",  # byte-identical copy of an earlier line of the same day
)

DIMENSION_REASONS = ("unparsable", "null_id", "malformed_id")
