"""A simulation run written out as a landing zone: one folder per table and day, a summary.

    <landing>/{watch_sessions,users,anchors,live_schedule}/dt=YYYY-MM-DD/part-00000.jsonl
    <landing>/_SIMULATION.json   parameters and per-day counts (sessions, bad lines by kind)
    <landing>/_ground_truth/     latents, habits and choice model (truth.py)

Every file is written atomically, so a reader never sees half a day.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

from features.days import parse_day
from features.files import atomic_write_text
from jobs.simulator.corrupt import BAD_KINDS, bad_lines
from jobs.simulator.lines import (
    anchor_lines,
    days_before,
    live_lines,
    session_lines,
    user_lines,
)
from jobs.simulator.truth import HabitLog, save_truth
from jobs.simulator.world import (
    AFFINITY,
    CATEGORIES,
    DIM,
    SCALES,
    Day,
    SimParams,
    World,
    draw_day,
    make_tastes,
    rng_for,
)

PART = "part-00000.jsonl"
SUMMARY = "_SIMULATION.json"


def write_part(folder: Path, lines: list[str]) -> None:
    """Write a day folder's single part file and drop stale parts left by earlier runs."""
    atomic_write_text(folder / PART, "".join(line + "\n" for line in lines))
    for p in folder.iterdir():
        if p.name != PART and p.name.startswith(("part-", f".{PART}.")):
            p.unlink()


def write_day(landing: Path, params: SimParams, i: int, before: World, drawn: Day) -> dict:
    """Day i's four table folders (sessions shuffled with bad lines); returns its counts."""
    day = params.start + timedelta(days=i)
    folder = f"dt={day.isoformat()}"
    nu, na = len(drawn.new_users["activity"]), len(drawn.new_anchors["pop"])
    # the initial population joined during the past year; later arrivals join today
    signup = [folder[3:]] * nu if drawn.signup_ages is None else days_before(day, drawn.signup_ages)
    debut = [folder[3:]] * na if drawn.debut_ages is None else days_before(day, drawn.debut_ages)
    write_part(landing / "users" / folder, user_lines(drawn.new_users, before.n_users + 1, signup))
    write_part(landing / "anchors" / folder,
               anchor_lines(drawn.new_anchors, before.n_anchors + 1, debut))
    write_part(landing / "live_schedule" / folder, live_lines(drawn.live + 1))

    ids = (drawn.users + 1, drawn.anchors + 1, drawn.secs, drawn.watch, drawn.gift)
    good = session_lines(day, *ids)
    bad, bad_counts = bad_lines(rng_for(params.seed, i, "bad"), day, i, good,
                                round(params.bad_rate * len(good)), *ids)
    lines = good + bad
    order = rng_for(params.seed, i, "shuffle").permutation(len(lines))
    write_part(landing / "watch_sessions" / folder, [lines[k] for k in order.tolist()])
    return {
        "sessions": len(good), "lines": len(lines), "bad": bad_counts,
        "new_users": nu, "new_anchors": na, "live_anchors": int(drawn.live.size),
        "users_total": before.n_users + nu, "anchors_total": before.n_anchors + na,
    }


def simulate(
    params: SimParams, landing: Path | str, progress: Callable[[str], None] | None = print,
) -> dict:
    """Simulate params.days days into `landing`; return (and write) the run summary.

    `progress` gets one line per day (None: silent).
    """
    landing = Path(landing)
    tastes = make_tastes(rng_for(params.seed, 0, "tastes"))
    world = World.empty()
    habits = HabitLog()
    days: dict[str, dict] = {}
    for i in range(params.days):
        iso = (params.start + timedelta(days=i)).isoformat()
        before = world
        world, drawn = draw_day(params, tastes, world, i)
        habits.add(i, drawn)
        days[iso] = stats = write_day(landing, params, i, before, drawn)
        if progress:
            progress(f"{iso}: sessions={stats['sessions']:,} "
                     f"bad={stats['lines'] - stats['sessions']:,} "
                     f"new_users={stats['new_users']:,} new_anchors={stats['new_anchors']:,} "
                     f"live_anchors={stats['live_anchors']:,}")
    save_truth(landing, world, params, tastes, habits)
    summary = {
        "params": {**asdict(params), "start": params.start.isoformat(), "dim": DIM,
                   "n_categories": len(CATEGORIES), "scale_spec": asdict(SCALES[params.scale]),
                   "affinity": AFFINITY},
        "bad_kinds": list(BAD_KINDS),
        "days": days,
    }
    # json.dumps + newline, not atomic_write_json: the summary's bytes predate this package
    atomic_write_text(landing / SUMMARY, json.dumps(summary, indent=2) + "\n")
    return summary


def read_summary(landing: Path | str) -> dict:
    """The `_SIMULATION.json` of a landing zone."""
    return json.loads((Path(landing) / SUMMARY).read_text())


def make_landing(root: Path, start: str, days: int, scale: str = "tiny", seed: int = 5) -> Path:
    """Simulated landing files under `root / "landing"` (silently); returns that folder.

    The one way tests, benchmarks and fixtures make landing data.
    """
    landing = Path(root) / "landing"
    simulate(SimParams(start=parse_day(start, "start"), days=days, scale=scale, seed=seed),
             landing, progress=None)
    return landing

