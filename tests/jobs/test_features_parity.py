"""Parity: daily stats, profiles and labels on JVM Spark local equal those on Sail."""

from __future__ import annotations

from features.tables import (
    ALL_TABLES,
    ANCHOR_PROFILES,
    ANCHORS,
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
    steps = ["daily_stats", "profiles", "labels"]
    days = DAYS[:6]  # days 3..5 get full 3-day windows
    run_days(lake, days, steps, window=3, last_k=3, allow_partial=True)
    run_on_jvm("jobs.run_days", "--start", days[0], "--end", days[-1], "--steps",
               ",".join(steps), "--window", "3", "--last-k", "3", "--allow-partial",
               "--lake", str(jvm_lake.root))
    for spec in (DAILY_USER_STATS, USER_PROFILES, ANCHOR_PROFILES, LABELS):
        assert spec in ALL_TABLES
        assert _rows(jvm_lake, spec) == _rows(lake, spec), spec.name
