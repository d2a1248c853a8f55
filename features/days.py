"""Day arithmetic on ISO day strings (`YYYY-MM-DD`), the partition values of every table."""

from __future__ import annotations

import re
from datetime import date, timedelta

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_day(text: str) -> date:
    """The date of an ISO day string; ValueError with the offending text otherwise."""
    if not isinstance(text, str) or not _ISO_DAY.match(text):
        raise ValueError(f"expected a day as YYYY-MM-DD, got {text!r}")
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"not a calendar day: {text!r} ({error})") from None


def add_days(day: str, n: int) -> str:
    return (parse_day(day) + timedelta(days=n)).isoformat()


def days_between(start: str, end: str) -> list[str]:
    """Every day from start to end, both included."""
    first, last = parse_day(start), parse_day(end)
    if last < first:
        raise ValueError(f"end day {end} is before start day {start}")
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def window_before(day: str, n: int) -> list[str]:
    """The N days D-N .. D-1 that a profile as of D may read (never D itself)."""
    if n < 1:
        raise ValueError(f"window must be at least 1 day, got {n}")
    return days_between(add_days(day, -n), add_days(day, -1))
