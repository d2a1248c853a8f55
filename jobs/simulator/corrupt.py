"""Bad lines mixed into the session files, one per kind of reject the ingest must count.

Each bad line is made from a distinct good session and breaks exactly one rule of
`features.validation`, so a test can classify every line and match the summary's counts.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from features.validation import MAX_WATCH_SECONDS, REQUIRED_SESSION_KEYS
from jobs.simulator.lines import HMS, render, session_fields

BAD_KINDS = (
    "unparsable", "missing_column", "null_id", "malformed_id",
    "bad_duration", "out_of_day", "unknown_anchor", "duplicate",
)
UNKNOWN_ANCHOR_BASE = 900_000_000  # far above any id the simulation hands out


def corrupt(kind: str, f: dict[str, str], day: date, sec: int, good: str,
            rng: np.random.Generator, serial: int) -> str:
    """One bad line of `kind` from a good session's fields; every other field stays valid."""
    f = dict(f)
    if kind == "unparsable":
        # Cut after start_time so the fragment stays unique to its (user, anchor, time).
        cut = good.index('"watch_seconds"')
        return good[: int(rng.integers(cut, len(good) - 1))]
    if kind == "missing_column":
        del f[REQUIRED_SESSION_KEYS[int(rng.integers(len(REQUIRED_SESSION_KEYS)))]]
    elif kind == "null_id":
        f[("user_id", "anchor_id")[int(rng.integers(2))]] = "null"
    elif kind == "malformed_id":
        key = ("user_id", "anchor_id")[int(rng.integers(2))]
        f[key] = (f'"u{f[key]}x"', "0", str(-int(rng.integers(1, 100))))[int(rng.integers(3))]
    elif kind == "bad_duration":
        if rng.random() < 0.5:
            f["watch_seconds"] = f"{-(float(f['watch_seconds']) + 1.0):.1f}"
        else:
            f["watch_seconds"] = f"{rng.uniform(MAX_WATCH_SECONDS + 1, 1e7):.1f}"
    elif kind == "out_of_day":
        other = day + timedelta(days=1 if rng.random() < 0.5 else -1)
        f["start_time"] = f'"{other.isoformat()}T{HMS[sec]}Z"'
    elif kind == "unknown_anchor":
        f["anchor_id"] = str(UNKNOWN_ANCHOR_BASE + serial)
    elif kind == "duplicate":
        return good
    else:
        raise ValueError(f"unknown bad kind {kind!r}")
    return render(f)


def bad_lines(
    rng: np.random.Generator, day: date, day_idx: int, good: list[str], n_bad: int,
    users: np.ndarray, anchors: np.ndarray, secs: np.ndarray, watch: np.ndarray,
    gift: np.ndarray,
) -> tuple[list[str], dict[str, int]]:
    """n_bad bad lines, kinds in rotation so each occurs; each from a distinct good session.

    Session arrays are aligned with `good` and carry ids (not indices). Returns the lines and
    their count per kind (every kind present, 0 when none).
    """
    counts = dict.fromkeys(BAD_KINDS, 0)
    out: list[str] = []
    seen: set[str] = set()
    ts_prefix = day.isoformat() + "T"
    templates = rng.choice(len(good), size=n_bad, replace=False).tolist()
    offset = int(rng.integers(len(BAD_KINDS)))
    for j, t in enumerate(templates):
        kind = BAD_KINDS[(j + offset) % len(BAD_KINDS)]
        f = session_fields(int(users[t]), int(anchors[t]), f"{ts_prefix}{HMS[secs[t]]}Z",
                           float(watch[t]), float(gift[t]))
        line = corrupt(kind, f, day, int(secs[t]), good[t], rng,
                       serial=day_idx * 1_000_000 + j)
        # A rare collision between two bad lines would blur the duplicate count; skip it.
        if kind != "duplicate" and line in seen:
            continue
        seen.add(line)
        out.append(line)
        counts[kind] += 1
    return out, counts
