"""Parity: daily stats, profiles and labels on JVM Spark local equal those on Sail, row for
row, and hold the rows the tiny lake implies."""

from __future__ import annotations

import pytest

from features.catalog import (
    ANCHOR_PROFILES,
    ANCHORS,
    DAILY_ANCHOR_STATS,
    DAILY_USER_ANCHOR,
    DAILY_USER_STATS,
    LABELS,
    LIVE_SCHEDULE,
    RAW_WATCH_SESSIONS,
    USER_PROFILES,
    USERS,
)
from jobs.lake import Lake
from jobs.run_days import run_days
from tests.conftest import run_on_jvm
from tests.jobs import tiny_lake
from tests.jobs.tiny_lake import DAYS

pytestmark = pytest.mark.e2e

BUILT = (DAILY_USER_STATS, DAILY_ANCHOR_STATS, DAILY_USER_ANCHOR, USER_PROFILES,
         ANCHOR_PROFILES, LABELS)


def _rows(lake: Lake, spec) -> list:
    def plain(value):
        if isinstance(value, dict):
            return sorted((k, round(v, 9)) for k, v in value.items())
        if isinstance(value, float):
            return round(value, 9)
        return list(value) if isinstance(value, list) else value

    return sorted(tuple(plain(v) for v in row) for row in lake.read(spec).collect())


def test_feature_jobs_match_on_jvm_spark(lake, jvm_lake):
    tiny_lake.build(lake, seed=11)
    for spec in (USERS, ANCHORS, LIVE_SCHEDULE, RAW_WATCH_SESSIONS):
        jvm_lake.overwrite_table(lake.read(spec), spec)  # same inputs, as Parquet
    for day in DAYS:
        tiny_lake.record_ingested(jvm_lake, day)
    steps = ["daily_stats", "profiles", "labels"]
    days = DAYS[:6]  # days 3..5 get full 3-day windows
    run_days(lake, days, steps, window=3, last_k=3, allow_partial=True)
    done = run_on_jvm("jobs.run_days", "--start", days[0], "--end", days[-1], "--steps",
                      ",".join(steps), "--window", "3", "--last-k", "3", "--allow-partial",
                      "--lake", str(jvm_lake.root))
    sail = {spec.name: _rows(lake, spec) for spec in BUILT}
    for spec in BUILT:
        assert _rows(jvm_lake, spec) == sail[spec.name], spec.name
    # Rows the inputs imply, so that two empty tables cannot pass as equal: a profile for
    # each entity known that day (12 users and 6 anchors from day 0, one more of each from
    # day 5), a daily anchor row for each anchor live that day, labels every day.
    assert len(sail["user_profiles"]) == 12 * 6 + 1
    assert len(sail["anchor_profiles"]) == 6 * 6 + 1
    assert len(sail["daily_anchor_stats"]) == 6 * 6 + 1
    assert {row[-1] for row in sail["labels"]} == set(days)
    # the JVM job's summary counts what it wrote, as the Sail tables hold it
    assert done.stdout.splitlines()[-1].endswith(
        f"user_profiles {len(sail['user_profiles'])} rows, "
        f"anchor_profiles {len(sail['anchor_profiles'])} rows, "
        f"labels {len(sail['labels'])} rows")
