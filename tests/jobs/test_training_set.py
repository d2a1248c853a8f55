"""Training set: global shuffle proven statistically on the written files; hold-out; the
typed manifest; the example tables have the schemas features.examples declares."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from features.catalog import LABELS, TableSpec
from features.examples import CANDIDATES, TRAIN_EXAMPLES, VALIDATION_EXAMPLES
from features.manifest import TrainingSetManifest, load_manifest
from features.mixing import batch_mixing_z
from jobs import training_set
from jobs.run_days import run_days
from tests.jobs import tiny_lake
from tests.jobs.tiny_lake import DAYS

ROWS = TableSpec("rows", "test rows", (
    ("dt", "string"), ("user_id", "bigint"), ("anchor_id", "bigint"), ("shuffle_key", "bigint"),
    ("shard", "int"), ("pos", "int")), partitioned=False)


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


@pytest.mark.engine
def test_written_order_is_globally_shuffled(lake):
    source = _day_sorted_rows(lake.spark)
    spec = ROWS.renamed("shuffled")
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


@pytest.mark.engine
def test_a_day_sorted_write_fails_the_mixing_test(lake):
    source = _day_sorted_rows(lake.spark).withColumn("shuffle_key", F.lit(0).cast("long")) \
        .withColumn("shard", F.lit(0)).withColumn("pos", F.lit(0))
    spec = ROWS.renamed("sorted")
    lake.overwrite_table(source, spec)
    z = _z_scores(_read_in_order(lake.path(spec)))
    assert z["day"] > 100 and z["user"] > 4


@pytest.mark.engine
def test_the_shuffle_is_deterministic_and_seeded(lake):
    source = _day_sorted_rows(lake.spark, days=3, per_day=300)
    orders = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        spec = ROWS.renamed(name)
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


def _fields(lake, spec: TableSpec) -> list[tuple[str, str]]:
    """(column, type) of a written table, as its Delta log declares them."""
    return [(f.name, f.dataType.simpleString()) for f in lake.read(spec).schema.fields]


@pytest.mark.engine
def test_training_set_holds_out_the_last_day(feature_lake):
    lake = feature_lake
    manifest = training_set.run(lake, DAYS[7], days=4, window=3, run_id="r1", shards=2)
    assert isinstance(manifest, TrainingSetManifest)
    assert manifest.train_days == DAYS[4:7] and manifest.holdout_days == [DAYS[7]]
    train = lake.read(TRAIN_EXAMPLES.renamed(manifest.tables.train))
    validation = lake.read(VALIDATION_EXAMPLES.renamed(manifest.tables.validation))
    assert {r.dt for r in train.select("dt").distinct().collect()} == set(DAYS[4:7])
    assert {r.dt for r in validation.select("dt").distinct().collect()} == {DAYS[7]}
    labels = lake.read_days(LABELS, DAYS[4], DAYS[7])
    assert train.count() + validation.count() == labels.count()  # every label has profiles
    assert manifest.counts.train.rows == train.count()
    row = train.where("user_has_history").first()
    assert row.user_source_max_dt < row.dt and len(row.user_category_shares) == 3
    assert manifest.vocabularies["category"] == sorted(tiny_lake.CATEGORIES)
    assert manifest.source_versions["labels"] is not None
    assert load_manifest(lake.root, "r1") == manifest
    candidates = lake.read(CANDIDATES.renamed(manifest.tables.candidates))
    assert candidates.count() == 7  # six anchors plus the new one, all live that day
    assert manifest.counts.candidates == 7


@pytest.mark.engine
def test_written_tables_have_the_declared_schemas(feature_lake):
    """features.examples declares the example tables engine-free; what Spark wrote (read
    back from the Delta log) must be exactly that, column for column and type for type."""
    manifest = training_set.run(feature_lake, DAYS[7], days=3, window=3, run_id="r4", shards=1)
    for spec, folder in ((TRAIN_EXAMPLES, manifest.tables.train),
                         (VALIDATION_EXAMPLES, manifest.tables.validation),
                         (CANDIDATES, manifest.tables.candidates)):
        assert _fields(feature_lake, spec.renamed(folder)) == list(spec.fields), spec.name


@pytest.mark.engine
def test_example_columns_build_the_declared_fields(spark):
    """The Spark columns, before the writer conforms them, already have the declared names
    and types (the writer's cast cannot hide a drifted builder)."""
    from features.catalog import ANCHOR_PROFILES, USER_PROFILES
    from features.examples import ANCHOR_FEATURE_FIELDS, EXAMPLE_FIELDS, USER_FEATURE_FIELDS
    from jobs.schemas import spark_schema

    def empty(spec):
        return spark.createDataFrame([], spark_schema(spec))

    rows = training_set.examples(empty(LABELS), empty(USER_PROFILES), empty(ANCHOR_PROFILES),
                                 ["chat", "games", "music"])
    built = {f.name: f.dataType.simpleString() for f in rows.schema.fields}
    assert built == dict(EXAMPLE_FIELDS)
    assert len(rows.columns) == len(EXAMPLE_FIELDS)  # no duplicate column either
    assert [n for n, _ in USER_FEATURE_FIELDS + ANCHOR_FEATURE_FIELDS] == [
        c for c in rows.columns if c.startswith(("user_", "anchor_")) and c not in (
            "user_id", "anchor_id")]


@pytest.mark.engine
def test_missing_days_and_window_mismatch_are_clear_errors(feature_lake):
    with pytest.raises(FileNotFoundError) as missing:
        training_set.run(feature_lake, DAYS[2], days=4, window=3, run_id="r2")
    # label days 2026-03-31..04-03: the tiny lake starts on 04-01
    assert str(missing.value) == (
        "missing labels, user_profiles, anchor_profiles for 2026-03-31: a training set needs "
        "every label day and its profiles: run jobs.run_days (or jobs.profiles and "
        "jobs.labels) for these days")
    with pytest.raises(ValueError, match="windows"):
        training_set.run(feature_lake, DAYS[7], days=3, window=5, run_id="r3")
    with pytest.raises(FileNotFoundError, match="incomplete"):
        load_manifest(feature_lake.root, "r3")


@pytest.mark.unit
@pytest.mark.parametrize("run_id", ["..", "../users", "a/b", "", ".hidden"])
def test_unsafe_run_ids_are_refused_before_any_work(run_id):
    # no lake and no engine: the run id is checked first
    with pytest.raises(ValueError, match="run id must match"):
        training_set.run(None, DAYS[7], days=3, window=3, run_id=run_id)


@pytest.mark.unit
def test_the_summary_line_counts_each_table():
    manifest = TrainingSetManifest.model_validate({
        "run_id": "r9", "end": DAYS[7], "days": 2, "window": 3, "seed": 7, "shards": 2,
        "train_days": [DAYS[6]], "holdout_days": [DAYS[7]],
        "tables": {"train": "t", "validation": "v", "candidates": "c"}, "format": "delta",
        "counts": {"train": {"rows": 1234, "positive_rate": 0.5},
                   "validation": {"rows": 1, "positive_rate": 1.0}, "candidates": 0},
        "source_versions": {}, "vocabularies": {}})
    assert training_set.summary_line(manifest) == (
        "training_set r9: train 1,234 rows, validation 1 row, candidates 0 rows "
        "(under training_sets/r9)")


@pytest.mark.engine
def test_a_label_day_re_run_after_the_set_was_built_makes_the_set_out_of_date(feature_lake):
    from jobs import labels
    from training.reader import TrainingSet

    lake = feature_lake
    manifest = training_set.run(lake, DAYS[7], days=3, window=3, run_id="fresh", shards=2)
    assert set(manifest.inputs) == {f"{job}/{d}" for job in ("labels", "profiles")
                                    for d in DAYS[5:8]}
    assert TrainingSet(lake.root, "fresh").manifest == manifest
    labels.run(lake, DAYS[6])  # same rows, but a new run of a day the set was built from
    with pytest.raises(ValueError) as stale:
        TrainingSet(lake.root, "fresh")
    assert str(stale.value) == (
        f"training set 'fresh' is out of date: labels {DAYS[6]} re-run or incomplete since "
        "it was built; rebuild it with python -m jobs.training_set")
    assert TrainingSet(lake.root, "fresh", check_inputs=False).run_id == "fresh"
    training_set.run(lake, DAYS[7], days=3, window=3, run_id="fresh", shards=2)
    assert TrainingSet(lake.root, "fresh").manifest.inputs[f"labels/{DAYS[6]}"] != \
        manifest.inputs[f"labels/{DAYS[6]}"]
