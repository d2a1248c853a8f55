"""Day arithmetic on ISO day strings (`YYYY-MM-DD`), the partition values of every table.

The one place a day is parsed: jobs, the simulator, the DAGs and the trainer all call
`parse_day` (or `day_arg` for argparse), so every bad day gets the same one-line error.
"""

from __future__ import annotations

import argparse
import re
from datetime import date, timedelta

DAY_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
_ISO_DAY = re.compile(DAY_PATTERN)
# Days far from the calendar's ends, so that a window or a horizon never overflows `date`.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(9000, 12, 31)


def parse_day(text: str, what: str = "day") -> date:
    """The date of an ISO day string; ValueError naming `what` and the offending text."""
    if not isinstance(text, str) or not _ISO_DAY.match(text):
        raise ValueError(f"{what} must be a day as YYYY-MM-DD, got {text!r}")
    try:
        day = date.fromisoformat(text)
    except ValueError as error:
        raise ValueError(f"{what} is not a calendar day: {text!r} ({error})") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"{what} {text} is outside the supported range "
                         f"{FIRST_DAY} .. {LAST_DAY}")
    return day


def day_arg(text: str) -> str:
    """argparse type for a `YYYY-MM-DD` day (kept as the string)."""
    try:
        parse_day(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def add_days(day: str, n: int) -> str:
    return (parse_day(day) + timedelta(days=n)).isoformat()


def days_between(start: str, end: str) -> list[str]:
    """Every day from start to end, both included."""
    first, last = parse_day(start, "start day"), parse_day(end, "end day")
    if last < first:
        raise ValueError(f"end day {end} is before start day {start}")
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def window_before(day: str, n: int) -> list[str]:
    """The N days D-N .. D-1 that a profile as of D may read (never D itself)."""
    if n < 1:
        raise ValueError(f"window must be at least 1 day, got {n}")
    return days_between(add_days(day, -n), add_days(day, -1))
