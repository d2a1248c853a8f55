"""JSON lines of the landing files, formatted by hand: fixed key order, one decimal, so the
same draws always give the same bytes (json.dumps of floats would not)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import numpy as np

from jobs.simulator.world import (
    AGE_BUCKETS,
    ANCHOR_GENDERS,
    CATEGORIES,
    CITIES,
    DAY_SECONDS,
    DEVICES,
    USER_GENDERS,
)


def _hms() -> list[str]:
    s = np.arange(DAY_SECONDS)
    return [f"{h:02d}:{m:02d}:{x:02d}" for h, m, x in
            zip((s // 3600).tolist(), (s // 60 % 60).tolist(), (s % 60).tolist(), strict=True)]


HMS = _hms()  # second of day -> "HH:MM:SS"; formatting via a table is ~5x faster


def days_before(day: date, offsets: np.ndarray) -> list[str]:
    """ISO days `offsets[i]` days before `day`."""
    return [(day - timedelta(days=int(k))).isoformat() for k in offsets]


def user_lines(batch: dict[str, np.ndarray], first_id: int, signup: Sequence[str]) -> list[str]:
    """One line per new user of a `draw_users` batch; ids count up from `first_id`."""
    return [
        f'{{"user_id": {first_id + i}, "signup_date": "{signup[i]}", '
        f'"gender": "{USER_GENDERS[g]}", "age_bucket": "{AGE_BUCKETS[a]}", '
        f'"city": "{CITIES[c]}", "device": "{DEVICES[d]}"}}'
        for i, (g, a, c, d) in enumerate(zip(
            batch["gender"].tolist(), batch["age"].tolist(),
            batch["city"].tolist(), batch["device"].tolist(), strict=True))
    ]


def anchor_lines(batch: dict[str, np.ndarray], first_id: int, debut: Sequence[str]) -> list[str]:
    """One line per new anchor of a `draw_anchors` batch; ids count up from `first_id`."""
    return [
        f'{{"anchor_id": {first_id + i}, "debut_date": "{debut[i]}", '
        f'"category": "{CATEGORIES[k]}", "gender": "{ANCHOR_GENDERS[g]}", "city": "{CITIES[c]}"}}'
        for i, (k, g, c) in enumerate(zip(
            batch["category"].tolist(), batch["gender"].tolist(), batch["city"].tolist(),
            strict=True))
    ]


def live_lines(anchor_ids: np.ndarray) -> list[str]:
    return [f'{{"anchor_id": {a}}}' for a in anchor_ids.tolist()]


def session_fields(user: int, anchor: int, ts: str, watch: float, gift: float) -> dict[str, str]:
    """JSON literals of one session, keyed in file order."""
    f = {"user_id": str(user), "anchor_id": str(anchor), "start_time": f'"{ts}"',
         "watch_seconds": f"{watch:.1f}"}
    if gift > 0:
        f["gift_value"] = f"{gift:.1f}"
    return f


def render(fields: dict[str, str]) -> str:
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


def session_lines(
    day: date, users: np.ndarray, anchors: np.ndarray, secs: np.ndarray,
    watch: np.ndarray, gift: np.ndarray,
) -> list[str]:
    """Good session lines, formatted in bulk (same text as render(session_fields(...)))."""
    p = day.isoformat() + "T"
    lines = [
        f'{{"user_id": {u}, "anchor_id": {a}, "start_time": "{p}{HMS[s]}Z", '
        f'"watch_seconds": {w:.1f}}}'
        for u, a, s, w in zip(users.tolist(), anchors.tolist(), secs.tolist(), watch.tolist(),
                              strict=True)
    ]
    for i in np.flatnonzero(gift).tolist():
        lines[i] = f'{lines[i][:-1]}, "gift_value": {gift[i]:.1f}}}'
    return lines
