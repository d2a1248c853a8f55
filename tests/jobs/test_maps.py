"""map_agg builds the right map for every group, also when the groups span many batches."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from jobs.maps import map_agg

pytestmark = pytest.mark.engine

USERS = 40_000  # aggregate output of several batches: the slices that broke maps on Sail


def _entries(spark):
    """1-4 entries per user; keys differ between users, every value is unique."""
    rows = spark.range(USERS * 4).select(
        (F.col("id") % USERS).alias("user"), (F.col("id") / USERS).cast("int").alias("j"),
        F.col("id").cast("double").alias("value"))
    rows = rows.where(F.col("j") <= F.col("user") % 4)
    return rows.select("user", F.concat(F.lit("k"), ((F.col("user") * 7 + F.col("j")) % 11)
                                        .cast("string")).alias("key"), "value")


def test_map_agg_matches_the_grouped_rows(spark):
    entries = _entries(spark)
    expected: dict[int, dict[str, float]] = {}
    for r in entries.collect():
        expected.setdefault(r["user"], {})[r["key"]] = r["value"]
    built = entries.groupBy("user").agg(map_agg("key", "value").alias("m"))
    got = {r["user"]: dict(r["m"]) for r in built.collect()}
    assert len(got) == USERS
    wrong = [u for u, m in got.items() if m != expected[u]]
    assert not wrong, f"{len(wrong)} of {USERS} maps differ, e.g. user {wrong[0]}"
