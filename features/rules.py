"""Behaviour thresholds shared by daily stats, labels and profiles."""

from __future__ import annotations

import math
from dataclasses import dataclass

BOUNCE_SECONDS = 2.0  # a watch this short is a bounce (and a negative label by default)
LONG_WATCH_SECONDS = 30.0  # a watch this long is engagement (and a positive label by default)
DEFAULT_WINDOW_DAYS = 7
DEFAULT_LAST_K = 10
# The long-horizon history of a user profile: the top K anchors of the H days before the
# profile day by log1p(watch seconds, each day's halving every HISTORY_HALF_LIFE_DAYS).
DEFAULT_HISTORY_DAYS = 56
DEFAULT_HISTORY_K = 64
HISTORY_HALF_LIFE_DAYS = 14.0
MAX_WINDOW_DAYS = 365
# Running totals drop an entity inactive this long (and restart it from zero when it comes
# back): longer than any window, so no window difference ever needs a dropped row.
TOTALS_RETENTION_DAYS = MAX_WINDOW_DAYS + 1
# Anchor item-CF (jobs.anchor_neighbours builds the table, training.models.item_cf reads it
# when it was built with the same settings): co-watching over the W days before the day,
# shrunk cosine, the top neighbours of each anchor, a user's most watched anchors voting.
ITEM_CF_WINDOW_DAYS = 28
ITEM_CF_SHRINKAGE = 10.0
ITEM_CF_TOP_N = 50
ITEM_CF_MAX_USER_ANCHORS = 200
MAX_THRESHOLD_SECONDS = 86_400.0  # a label threshold on one day's total watch of a pair


def to_millis(seconds: float) -> int:
    """Seconds as whole milliseconds (half up): watch totals are compared in fixed point,
    so 10.1 + 10.2 + 9.7 is 30 s exactly, as written, not 29.999999999999996."""
    return math.floor(seconds * 1000 + 0.5)


@dataclass(frozen=True)
class LabelRule:
    """Day D, per (user, anchor): total watch >= positive -> 1, <= negative -> 0, else dropped."""

    positive_seconds: float = LONG_WATCH_SECONDS
    negative_seconds: float = BOUNCE_SECONDS

    def __post_init__(self) -> None:
        for name in ("positive_seconds", "negative_seconds"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or not 0 <= value <= MAX_THRESHOLD_SECONDS):
                raise ValueError(f"{name} must be a finite number of seconds in "
                                 f"[0, {MAX_THRESHOLD_SECONDS}], got {value!r}")
        if self.negative_seconds < 0:
            raise ValueError(f"negative threshold must be >= 0, got {self.negative_seconds}")
        if self.negative_seconds >= self.positive_seconds:
            raise ValueError(f"negative threshold ({self.negative_seconds} s) must be below "
                             f"the positive threshold ({self.positive_seconds} s)")

    @property
    def positive_millis(self) -> int:
        return to_millis(self.positive_seconds)

    @property
    def negative_millis(self) -> int:
        return to_millis(self.negative_seconds)
