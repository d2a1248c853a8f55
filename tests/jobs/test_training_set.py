"""Training set: global shuffle proven statistically on the written files; hold-out; manifest."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F
from pyspark.sql import types as T

from features.mixing import batch_mixing_z
from features.tables import LABELS, TableSpec
from jobs import training_set
from jobs.run_days import run_days
from tests.jobs import tiny_lake
from tests.jobs.tiny_lake import DAYS

ROWS = TableSpec("rows", "test rows", T.StructType([
    T.StructField("dt", T.StringType()), T.StructField("user_id", T.LongType()),
    T.StructField("anchor_id", T.LongType()), T.StructField("shuffle_key", T.LongType()),
    T.StructField("shard", T.IntegerType()), T.StructField("pos", T.IntegerType())]),
    partitioned=False)


def _read_in_order(path) -> dict[str, np.ndarray]:
    """Rows as a trainer reads them: one shard file after another, rows in file order."""
    files = sorted(DeltaTable(str(path)).file_uris())
    tables = [pq.read_table(f) for f in files]
    return {c: np.concatenate([t.column(c).to_numpy() for t in tables])
            for c in ("dt", "user_id", "anchor_id")}


def _day_sorted_rows(spark, days=30, per_day=1500):
    """Rows in source order: day after day, users in blocks, as labels come out of a join."""
    ids = spark.range(days * per_day)
    return ids.select(
        F.date_format(F.date_add(F.lit("2026-01-01").cast("date"),
                                 (F.col("id") / per_day).cast("int")), "yyyy-MM-dd").alias("dt"),
        (F.col("id") % per_day / 10).cast("long").alias("user_id"),
        (F.col("id") % 97).alias("anchor_id"))


def _z_scores(order: dict[str, np.ndarray], batch: int = 256) -> dict[str, float]:
    return {"day": batch_mixing_z(order["dt"], batch),
            "user": batch_mixing_z(order["user_id"] % 16, batch),
            "anchor": batch_mixing_z(order["anchor_id"] % 16, batch)}


def test_written_order_is_globally_shuffled(lake):
    source = _day_sorted_rows(lake.spark)
    spec = replace(ROWS, name="shuffled")
    lake.overwrite_table(training_set.shuffle_globally(source, seed=7, shards=4), spec,
                         partition_by="shard")
    order = _read_in_order(lake.path(spec))
    written = sorted(zip(order["dt"].tolist(), order["user_id"].tolist(),
                         order["anchor_id"].tolist(), strict=True))
    assert written == sorted(tuple(r) for r in source.collect())  # same rows, only reordered
    for group, z in _z_scores(order).items():
        assert abs(z) < 4, f"{group} mix of consecutive batches differs from the whole set: {z}"
    # the first batch alone already holds most of the 30 days
    assert len(set(order["dt"][:256])) >= 25


def test_a_day_sorted_write_fails_the_mixing_test(lake):
    source = _day_sorted_rows(lake.spark).withColumn("shuffle_key", F.lit(0).cast("long")) \
        .withColumn("shard", F.lit(0)).withColumn("pos", F.lit(0))
    spec = replace(ROWS, name="sorted")
    lake.overwrite_table(source, spec)
    z = _z_scores(_read_in_order(lake.path(spec)))
    assert z["day"] > 100 and z["user"] > 4


def test_the_shuffle_is_deterministic_and_seeded(lake):
    source = _day_sorted_rows(lake.spark, days=3, per_day=300)
    orders = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        spec = replace(ROWS, name=name)
        lake.overwrite_table(training_set.shuffle_globally(source, seed, 2), spec,
                             partition_by="shard")
        orders.append(_read_in_order(lake.path(spec))["user_id"].tolist())
    assert orders[0] == orders[1] and orders[0] != orders[2]


@pytest.fixture()
def feature_lake(lake):
    tiny_lake.build(lake, seed=21)
    run_days(lake, DAYS, ["daily_stats", "profiles", "labels"], window=3, last_k=3,
             allow_partial=True)
    return lake


def test_training_set_holds_out_the_last_day(feature_lake):
    lake = feature_lake
    manifest = training_set.run(lake, DAYS[7], days=4, window=3, run_id="r1", shards=2)
    assert manifest["train_days"] == DAYS[4:7] and manifest["holdout_days"] == [DAYS[7]]
    train = lake.read(replace(training_set.TRAIN_EXAMPLES, name=manifest["tables"]["train"]))
    validation = lake.read(replace(training_set.VALIDATION_EXAMPLES,
                                   name=manifest["tables"]["validation"]))
    assert {r.dt for r in train.select("dt").distinct().collect()} == set(DAYS[4:7])
    assert {r.dt for r in validation.select("dt").distinct().collect()} == {DAYS[7]}
    labels = lake.read_days(LABELS, DAYS[4], DAYS[7])
    assert train.count() + validation.count() == labels.count()  # every label has profiles
    assert manifest["counts"]["train"]["rows"] == train.count()
    row = train.where("user_has_history").first()
    assert row.user_source_max_dt < row.dt and len(row.user_category_shares) == 3
    assert manifest["vocabularies"]["category"] == sorted(tiny_lake.CATEGORIES)
    assert manifest["source_versions"]["labels"] is not None
    assert training_set.load_manifest(lake.root, "r1") == manifest
    candidates = lake.read(replace(training_set.CANDIDATES, name=manifest["tables"]["candidates"]))
    assert candidates.count() == 7  # six anchors plus the new one, all live that day


def test_missing_days_and_window_mismatch_are_clear_errors(feature_lake):
    with pytest.raises(FileNotFoundError, match="labels 2026-03-31"):
        training_set.run(feature_lake, DAYS[2], days=4, window=3, run_id="r2")
    with pytest.raises(ValueError, match="windows"):
        training_set.run(feature_lake, DAYS[7], days=3, window=5, run_id="r3")
    with pytest.raises(FileNotFoundError, match="incomplete"):
        training_set.load_manifest(feature_lake.root, "r3")
