"""Segment popularity: what users like you watched lately, backing off to coarser segments.

A user's segment is (gender, age_bucket, city); a segment with fewer than `min_users`
watching users or `min_sessions` sessions in the window is too small to trust, so the user
gets the (gender, age_bucket) segment's list instead, then the global one. A list is each
anchor's share of the segment's sessions over the window, recent days weighing more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.catalog import DAILY_USER_ANCHOR, USERS
from training.models import register_baseline
from training.models.base import ScoringContext
from training.models.history import decay, positions, read_before
from training.reader import Columns

DEMOGRAPHICS = ("gender", "age_bucket", "city")
LEVELS = (("gender", "age_bucket", "city"), ("gender", "age_bucket"), ())  # finest first


class SegmentPopularitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    window_days: int = Field(28, ge=1)
    half_life_days: float = Field(7.0, gt=0)
    min_users: int = Field(20, ge=1)  # distinct watching users for a segment to be used
    min_sessions: int = Field(50, ge=0)  # sessions in the window, likewise


def _key(frame: pd.DataFrame, level: tuple[str, ...]) -> pd.Series:
    """One string per row naming its segment at `level` ("" is the global segment)."""
    key = pd.Series("", index=frame.index)
    for n, column in enumerate(level):
        key = key + ("|" if n else "") + frame[column].astype(str)
    return key


class _Fit:
    """Per level: the segments big enough to use, each an anchor -> share Series."""

    def __init__(self, history: pd.DataFrame, settings: SegmentPopularitySettings) -> None:
        self.levels: list[dict[str, pd.Series]] = []
        for level in LEVELS:
            keyed = history.assign(segment=_key(history, level))
            support = keyed.groupby("segment").agg(users=("user_id", "nunique"),
                                                   sessions=("sessions", "sum"))
            big = support.index[(support["users"] >= settings.min_users)
                                & (support["sessions"] >= settings.min_sessions)]
            if not level:  # the global list is the last resort, whatever its size
                big = support.index
            weights = keyed[keyed["segment"].isin(big)].groupby(
                ["segment", "anchor_id"])["weight"].sum()
            self.levels.append({segment: (w / w.sum()).droplevel(0)
                                for segment, w in weights.groupby(level=0)})

    def segment_of(self, profile: pd.DataFrame) -> list[tuple[int, str]]:
        """(level, segment) of each user: the finest level whose segment is big enough."""
        keys = [_key(profile, level).tolist() for level in LEVELS]
        chosen = []
        for i in range(len(profile)):
            level = next((n for n, k in enumerate(keys) if k[i] in self.levels[n]),
                         len(LEVELS) - 1)
            chosen.append((level, keys[level][i]))
        return chosen


class SegmentPopularityScorer:
    def __init__(self, lake_root: Path | str, fmt: str = "delta",
                 settings: SegmentPopularitySettings | None = None) -> None:
        self.lake_root, self.fmt = Path(lake_root), fmt
        self.settings = settings or SegmentPopularitySettings()
        self._fits: dict[str, _Fit] = {}
        self._users: dict[str, pd.DataFrame] = {}

    def _known_users(self, day: str) -> pd.DataFrame:
        """Demographics of every user who appeared before `day`, indexed by user_id."""
        if day not in self._users:
            users = read_before(self.lake_root, USERS, day, ["user_id", *DEMOGRAPHICS],
                                self.fmt)
            frame = pd.DataFrame({c: users[c] for c in ("user_id", *DEMOGRAPHICS)})
            self._users[day] = frame.drop_duplicates("user_id", keep="last").set_index(
                "user_id")
        return self._users[day]

    def fit(self, day: str) -> _Fit:
        if day not in self._fits:
            s = self.settings
            rows = read_before(self.lake_root, DAILY_USER_ANCHOR, day,
                               ["user_id", "anchor_id", "sessions"], self.fmt, s.window_days)
            history = pd.DataFrame({"user_id": rows["user_id"], "anchor_id": rows["anchor_id"],
                                    "sessions": rows["sessions"],
                                    "weight": rows["sessions"] * decay(rows["dt"], day,
                                                                       s.half_life_days)})
            known = self._known_users(day)
            history = history.join(known, on="user_id").fillna(
                {c: "" for c in DEMOGRAPHICS})
            self._fits[day] = _Fit(history, s)
        return self._fits[day]

    def _profiles(self, day: str, users: Columns) -> pd.DataFrame:
        """The scored users' demographics: their example columns when given (known at
        sign-up, so not a leak), else the users table before `day`."""
        ids = np.asarray(users["user_id"], dtype=np.int64)
        if all(f"user_{c}" in users for c in DEMOGRAPHICS):
            return pd.DataFrame({c: users[f"user_{c}"] for c in DEMOGRAPHICS})
        return self._known_users(day).reindex(ids)[list(DEMOGRAPHICS)].fillna(
            "").reset_index(drop=True)

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        fit = self.fit(day)
        anchor_ids = np.asarray(anchors["anchor_id"], dtype=np.int64)
        out = np.zeros((len(users["user_id"]), len(anchor_ids)))
        lists: dict[tuple[int, str], np.ndarray] = {}
        for i, chosen in enumerate(fit.segment_of(self._profiles(day, users))):
            if chosen not in lists:
                shares = fit.levels[chosen[0]].get(chosen[1])
                if shares is None:  # no history at all
                    lists[chosen] = np.zeros(len(anchor_ids))
                else:
                    known = shares.index.to_numpy(np.int64)
                    order = np.argsort(known)
                    pos, found = positions(known[order], anchor_ids)
                    lists[chosen] = np.where(found, shares.to_numpy()[order][pos], 0.0)
            out[i] = lists[chosen]
        return out

    def segments(self, day: str, users: Columns) -> list[tuple[int, str]]:
        """(level, segment) each user is scored with: 0 finest, 2 global (for tests, reports)."""
        return self.fit(day).segment_of(self._profiles(day, users))


@register_baseline("segment_popularity")
def segment_popularity_baseline(context: ScoringContext) -> SegmentPopularityScorer:
    data = context.training_set
    return SegmentPopularityScorer(data.lake_root, data.manifest.format)
