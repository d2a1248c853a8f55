"""A seeded tiny lake of ingested tables, for feature tests (no landing files needed)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from features.catalog import ANCHORS, LIVE_SCHEDULE, RAW_WATCH_SESSIONS, USERS
from features.days import add_days, days_between
from jobs.lake import Lake
from jobs.schemas import spark_schema

START = "2026-04-01"
DAYS = days_between(START, add_days(START, 7))  # 8 days
NEW_USER, NEW_ANCHOR = 99, 199  # first appear on day index 5 (cold start)
CATEGORIES = ("music", "games", "chat")


def sessions_for(day: str, seed: int, n: int = 40) -> list[tuple]:
    """Random sessions of `day` among users 1..12 and anchors 101..106 (watch 0.5..120 s)."""
    rng = np.random.default_rng([seed, int(day.replace("-", ""))])
    base = datetime.fromisoformat(day)
    rows = []
    for i in range(n):
        user, anchor = int(rng.integers(1, 13)), int(rng.integers(101, 107))
        start = base + timedelta(seconds=int(rng.integers(0, 86400)))
        seconds = float(rng.choice([0.5, 1.0, 2.0, 3.0, 29.0, 30.0, 45.0, 120.0]))
        gift = float(rng.choice([0.0, 0.0, 0.0, 5.0]))
        rows.append((int(rng.integers(1, 2**62)) + i, user, anchor, start, seconds, gift, day))
    return rows


def write_sessions(lake: Lake, day: str, rows: list[tuple]) -> None:
    lake.write_partition(lake.spark.createDataFrame(rows, spark_schema(RAW_WATCH_SESSIONS)),
                         RAW_WATCH_SESSIONS, day)
    if lake.ledger().state("ingest", day)[0] is None:
        record_ingested(lake, day)  # a re-written day is a re-ingested day


def build(lake: Lake, seed: int = 0) -> Lake:
    """Users 1..12 and anchors 101..106 from day 0, plus a user and an anchor on day 5."""
    spark = lake.spark
    first, fifth = DAYS[0], DAYS[5]
    users = [(u, "2025-12-01", "FM"[u % 2], "18-24", f"c{u % 3}", "ios", first)
             for u in range(1, 13)]
    lake.write_partition(spark.createDataFrame(users, spark_schema(USERS)), USERS, first)
    lake.write_partition(spark.createDataFrame(
        [(NEW_USER, fifth, "F", "25-34", "c1", "web", fifth)], spark_schema(USERS)),
        USERS, fifth)
    anchors = [(a, "2025-11-01", CATEGORIES[a % 3], "F", "c0", first) for a in range(101, 107)]
    lake.write_partition(spark.createDataFrame(anchors, spark_schema(ANCHORS)), ANCHORS, first)
    lake.write_partition(spark.createDataFrame(
        [(NEW_ANCHOR, fifth, "music", "M", "c2", fifth)], spark_schema(ANCHORS)),
        ANCHORS, fifth)
    for day in DAYS:
        live = [(a, day) for a in range(101, 107)] + ([(NEW_ANCHOR, day)] if day >= fifth else [])
        lake.write_partition(spark.createDataFrame(live, spark_schema(LIVE_SCHEDULE)),
                             LIVE_SCHEDULE, day)
        write_sessions(lake, day, sessions_for(day, seed))
        record_ingested(lake, day)
    return lake


def record_ingested(lake: Lake, day: str) -> None:
    """Record `day` as ingested (the tables above stand in for what jobs.ingest writes)."""
    lake.finish_day("ingest", day, (), {}, {})
