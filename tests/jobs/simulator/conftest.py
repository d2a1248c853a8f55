"""One tiny simulation shared by the simulator tests, and an independent reader of its files."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from jobs.simulator import SimParams, simulate, world

START = date(2026, 1, 1)
DAYS = 3
DAY_ISO = [(START + timedelta(days=i)).isoformat() for i in range(DAYS)]
TABLES = ("watch_sessions", "users", "anchors", "live_schedule")
REQUIRED = ("user_id", "anchor_id", "start_time", "watch_seconds")
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# Between tiny (60 anchors: users return to most of them anyway) and demo, fast enough for
# a unit test; registered only while a test needs it (the CLI's scales stay as they are).
SMALL = world.Scale(users=2_000, anchors=400, sessions_per_day=12_500)


@contextmanager
def small_scale() -> Iterator[str]:
    """The scale name "small" (SMALL) while the block runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(world.SCALES, "small", SMALL)
        yield "small"


def run(root: Path, **kw) -> dict:
    params = {"start": START, "days": DAYS, "scale": "tiny", "seed": 7, "bad_rate": 0.1, **kw}
    return simulate(SimParams(**params), root, progress=None)


@pytest.fixture(scope="session")
def sim(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("landing")
    return root, run(root)


def lines(root: Path, table: str, day: str) -> list[str]:
    return (root / table / f"dt={day}" / "part-00000.jsonl").read_text().splitlines()


def records(root: Path, table: str, day: str) -> list[dict]:
    return [json.loads(x) for x in lines(root, table, day)]


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def failures(line: str, day: str, users: set[int], anchors: set[int]) -> list[str]:
    """Every content rule a line breaks (an independent reading of the validation contract)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return ["unparsable"]
    if not isinstance(obj, dict):
        return ["unparsable"]
    out = []
    if any(k not in obj for k in REQUIRED):
        out.append("missing_column")
    ids = [obj[k] for k in ("user_id", "anchor_id") if k in obj]
    if any(v is None for v in ids):
        out.append("null_id")
    if any(v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v > 0)
           for v in ids):
        out.append("malformed_id")
    if "start_time" in obj:
        ts = obj["start_time"]
        if not (isinstance(ts, str) and TS.fullmatch(ts)):
            out.append("bad_timestamp")
        elif ts[:10] != day:
            out.append("out_of_day")
    if "watch_seconds" in obj:
        w = obj["watch_seconds"]
        if not (is_num(w) and 0 <= w <= 43200):
            out.append("bad_duration")
    if "gift_value" in obj and not (is_num(obj["gift_value"]) and obj["gift_value"] >= 0):
        out.append("bad_gift")
    u, a = obj.get("user_id"), obj.get("anchor_id")
    if isinstance(u, int) and u > 0 and u not in users:
        out.append("unknown_user")
    if isinstance(a, int) and a > 0 and a not in anchors:
        out.append("unknown_anchor")
    return out


def classify_days(root: Path) -> dict[str, tuple[Counter, list[dict]]]:
    """Per day: reason counts (first failure, 'ok' for good) and the good sessions."""
    users: set[int] = set()
    anchors: set[int] = set()
    out = {}
    for day in DAY_ISO:
        users |= {r["user_id"] for r in records(root, "users", day)}
        anchors |= {r["anchor_id"] for r in records(root, "anchors", day)}
        counts: Counter = Counter()
        good, seen = [], set()
        for line in lines(root, "watch_sessions", day):
            fails = failures(line, day, users, anchors)
            assert len(fails) <= 1, (line, fails)  # a bad line breaks exactly one rule
            if fails:
                counts[fails[0]] += 1
            elif line in seen:
                counts["duplicate"] += 1
            else:
                counts["ok"] += 1
                good.append(json.loads(line))
            seen.add(line)
        out[day] = (counts, good)
    return out


@pytest.fixture(scope="session")
def classified(sim) -> dict[str, tuple[Counter, list[dict]]]:
    return classify_days(sim[0])


def affinity(root: Path, sessions: list[dict]) -> np.ndarray:
    z = np.load(root / "_ground_truth" / "latents.npz")
    u_row = {int(i): k for k, i in enumerate(z["user_ids"])}
    a_row = {int(i): k for k, i in enumerate(z["anchor_ids"])}
    u = z["user_vecs"][[u_row[s["user_id"]] for s in sessions]]
    a = z["anchor_vecs"][[a_row[s["anchor_id"]] for s in sessions]]
    return np.einsum("ij,ij->i", u, a)
