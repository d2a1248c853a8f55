"""Days as units: empty days flow end to end, re-ingesting a day invalidates what was built
from it, and a job killed (SIGKILL) at any point leaves the day refused until re-run, which
restores exactly the uninterrupted result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from features import day_status
from features.catalog import (
    ANCHORS,
    DAILY_ANCHOR_STATS,
    DAILY_USER_ANCHOR,
    DAILY_USER_STATS,
    LABELS,
    LIVE_SCHEDULE,
    QUARANTINE,
    RAW_WATCH_SESSIONS,
    USER_PROFILES,
    USERS,
)
from features.days import days_between
from jobs import daily_stats, ingest, labels, profiles, training_set
from jobs.lake import KILL_AFTER_WRITES_ENV
from jobs.run_days import STEPS, run_days

DAYS = days_between("2026-06-01", "2026-06-04")
INGESTED = (USERS, ANCHORS, LIVE_SCHEDULE, RAW_WATCH_SESSIONS, QUARANTINE)
DAILY = (DAILY_USER_STATS, DAILY_ANCHOR_STATS, DAILY_USER_ANCHOR)


def _session(user: int, anchor: int, day: str, seconds: float, minute: int = 0) -> str:
    return json.dumps({"user_id": user, "anchor_id": anchor,
                       "start_time": f"{day}T10:{minute:02d}:00Z", "watch_seconds": seconds})


def write_day(landing: Path, day: str, sessions: list[str], users=(), anchors=(),
              live=()) -> None:
    """One landing day; a source without lines gets an empty folder (no file at all)."""
    content = {"watch_sessions": sessions,
               "users": [json.dumps({"user_id": u, "signup_date": day}) for u in users],
               "anchors": [json.dumps({"anchor_id": a, "debut_date": day, "category": "music"})
                           for a in anchors],
               "live_schedule": [json.dumps({"anchor_id": a}) for a in live]}
    for source, lines in content.items():
        folder = landing / source / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        if lines:
            (folder / "part-0.jsonl").write_text("".join(line + "\n" for line in lines))


def make_landing(root: Path) -> Path:
    """Day 0: users 0..3 (ids from 0) and anchors 0..1 with sessions; day 1: nothing at all;
    day 2: sessions only in the dropped band (2 s < total < 30 s); day 3: sessions again,
    one pair at exactly 30 s in decimal parts (10.1 + 10.2 + 9.7)."""
    first, empty, band, last = DAYS
    write_day(root, first, [_session(0, 0, first, 45.0), _session(1, 0, first, 1.0),
                            _session(2, 1, first, 120.0), _session(3, 1, first, 0.5)],
              users=range(4), anchors=range(2), live=range(2))
    write_day(root, empty, [])
    write_day(root, band, [_session(0, 1, band, 10.0), _session(1, 1, band, 25.0)],
              live=[1])
    write_day(root, last, [_session(0, 0, last, s, i) for i, s in enumerate((10.1, 10.2, 9.7))]
              + [_session(1, 1, last, 2.0), _session(2, 0, last, 60.0)], live=range(2))
    return root


def _rows(lake, spec, day) -> list[tuple]:
    return sorted(tuple(r) for r in lake.read_days(spec, day, day).collect())


@pytest.mark.engine
def test_empty_and_label_free_days_flow_end_to_end(lake, tmp_path):
    landing = make_landing(tmp_path / "landing")
    first, empty, band, last = DAYS
    run_days(lake, DAYS, STEPS, window=2,
             allow_partial=True, landing=str(landing))
    record = day_status.load(lake.root, "ingest", empty)
    assert record.counts["watch_sessions"] == {"lines": 0, "accepted": 0, "quarantined": {}}
    for job in day_status.JOBS:  # every job recorded the empty day as complete
        assert empty in lake.complete_days(job), job
    assert lake.rows(RAW_WATCH_SESSIONS, empty) == 0 and lake.rows(DAILY_USER_STATS, empty) == 0
    # the window of `band` (first, empty) counts the empty day as present
    window = lake.read_days(USER_PROFILES, band, band).select("window_days_present")
    assert {r[0] for r in window.collect()} == {2}
    assert lake.rows(LABELS, empty) == 0 and lake.rows(LABELS, band) == 0  # 10 s, 25 s: dropped
    # ids from 0 are ordinary ids; 10.1 + 10.2 + 9.7 is 30 s: a positive
    assert [(r.user_id, r.anchor_id, r.label) for r in sorted(
        lake.read_days(LABELS, last, last).collect())] == [(0, 0, 1), (1, 1, 0), (2, 0, 1)]
    manifest = training_set.run(lake, last, days=3, window=2, run_id="r", shards=1)
    assert manifest.train_days == [empty, band] and manifest.empty_days == [empty, band]
    assert manifest.counts.train.rows == 0 and manifest.counts.validation.rows == 3


@pytest.mark.engine
def test_reingesting_a_day_invalidates_what_was_built_from_it(lake, tmp_path):
    landing = make_landing(tmp_path / "landing")
    first = DAYS[0]
    run_days(lake, DAYS[:3], ["ingest", "daily_stats", "profiles", "labels"], window=2,
             allow_partial=True, landing=str(landing))
    write_day(landing, first, [], users=range(4), anchors=range(2))  # the day became empty
    ingest.ingest_day(lake, landing, first)
    with pytest.raises(FileNotFoundError, match=rf"out of date \(ingest {first} was re-run "
                                                rf".*daily_user_stats.* for {first}"):
        profiles.run(lake, DAYS[2], window=2, allow_partial=True)
    with pytest.raises(FileNotFoundError, match=rf"out of date .*labels.* for {first}"):
        training_set.run(lake, DAYS[2], days=3, window=2, run_id="r2", shards=1)
    daily_stats.run(lake, first)
    labels.run(lake, first)
    assert lake.rows(DAILY_USER_STATS, first) == 0 and lake.rows(LABELS, first) == 0
    profiles.run(lake, DAYS[2], window=2, allow_partial=True)  # the rebuilt day is present
    sessions = lake.read_days(USER_PROFILES, DAYS[2], DAYS[2]).agg({"sessions": "sum"})
    assert sessions.collect()[0][0] == 0  # nothing of the old day is left in the window


def _job(module: str, lake, *args: str, kill_after: int | None = None
         ) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIPELINE_ENGINE": "sail"}
    env.pop(KILL_AFTER_WRITES_ENV, None)
    if kill_after is not None:
        env[KILL_AFTER_WRITES_ENV] = str(kill_after)
    return subprocess.run([sys.executable, "-m", module, "--lake", str(lake.root), *args],
                          env=env, text=True, capture_output=True, timeout=300)


@pytest.mark.e2e
def test_a_killed_job_leaves_the_day_refused_until_a_rerun_restores_it(lake, tmp_path, spark):
    from jobs.lake import Lake

    landing = make_landing(tmp_path / "landing")
    day = DAYS[0]
    reference = Lake(tmp_path / "reference", spark)
    ingest.ingest_day(reference, landing, day)
    daily_stats.run(reference, day)
    expected = {spec.name: _rows(reference, spec, day) for spec in INGESTED + DAILY}

    # ingest writes users, anchors, live_schedule, raw_watch_sessions, quarantine, record
    for kill_after in (1, 3, 5):
        done = _job("jobs.ingest", lake, "--date", day, "--landing", str(landing),
                    kill_after=kill_after)
        assert done.returncode == -9, done.stderr[-2000:]
        assert day not in lake.complete_days("ingest")
        refused = _job("jobs.daily_stats", lake, "--date", day)
        assert refused.returncode == 2
        assert refused.stderr.strip().endswith(f"for {day}: run jobs.ingest --date {day} first")
    ingest.ingest_day(lake, landing, day)
    daily_stats.run(lake, day)
    done = _job("jobs.daily_stats", lake, "--date", day, kill_after=2)
    assert done.returncode == -9
    with pytest.raises(FileNotFoundError, match=rf"incomplete \(interrupted daily_stats, no "
                                                rf"day record\) .* for {day}"):
        profiles.run(lake, DAYS[1], window=1)
    daily_stats.run(lake, day)
    assert {spec.name: _rows(lake, spec, day) for spec in INGESTED + DAILY} == expected
    assert day in lake.complete_days("daily_stats")
