"""Behaviour thresholds shared by daily stats, labels and profiles."""

from __future__ import annotations

from dataclasses import dataclass

BOUNCE_SECONDS = 2.0  # a watch this short is a bounce (and a negative label by default)
LONG_WATCH_SECONDS = 30.0  # a watch this long is engagement (and a positive label by default)
DEFAULT_WINDOW_DAYS = 7
DEFAULT_LAST_K = 10


@dataclass(frozen=True)
class LabelRule:
    """Day D, per (user, anchor): total watch >= positive -> 1, <= negative -> 0, else dropped."""

    positive_seconds: float = LONG_WATCH_SECONDS
    negative_seconds: float = BOUNCE_SECONDS

    def __post_init__(self) -> None:
        if self.negative_seconds < 0:
            raise ValueError(f"negative threshold must be >= 0, got {self.negative_seconds}")
        if self.negative_seconds >= self.positive_seconds:
            raise ValueError(f"negative threshold ({self.negative_seconds} s) must be below "
                             f"the positive threshold ({self.positive_seconds} s)")
