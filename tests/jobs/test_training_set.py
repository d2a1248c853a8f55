"""Training set: rows sent to piles by a seeded hash and written unordered (the reader's
side of the shuffle is tests/training/test_reader.py); the pile count bounded by the rows;
hold-out; the typed manifest; the example tables have the schemas features.examples
declares."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from features.catalog import LABELS, TableSpec
from features.examples import CANDIDATES, TRAIN_EXAMPLES, VALIDATION_EXAMPLES
from features.manifest import TrainingSetManifest, load_manifest
from jobs import training_set
from jobs.lake import Lake
from jobs.run_days import run_days
from tests.jobs import tiny_lake
from tests.jobs.tiny_lake import DAYS

ROWS = TableSpec("rows", "test rows", (
    ("dt", "string"), ("user_id", "bigint"), ("anchor_id", "bigint"), ("shuffle_key", "bigint"),
    ("shard", "int"), ("pos", "int")), partitioned=False)
KEYS = ("dt", "user_id", "anchor_id")


def day_sorted_rows(spark, days=30, per_day=1500):
    """Rows in source order: day after day, users in blocks, as labels come out of a join."""
    ids = spark.range(days * per_day)
    return ids.select(
        F.date_format(F.date_add(F.lit("2026-01-01").cast("date"),
                                 (F.col("id") / per_day).cast("int")), "yyyy-MM-dd").alias("dt"),
        (F.col("id") % per_day / 10).cast("long").alias("user_id"),
        (F.col("id") % 97).alias("anchor_id"))


def write_piles(lake, source, name: str, seed: int, piles: int) -> list[str]:
    """`source` written as the job writes its train table; its data files."""
    spec = ROWS.renamed(name)
    lake.overwrite_table(training_set.assign_piles(source, seed, piles), spec,
                         partition_by="shard")
    return sorted(DeltaTable(str(lake.path(spec))).file_uris())


def _pile_of_each_row(files: list[str]) -> dict[tuple, int]:
    """(dt, user, anchor) -> the pile folder its file sits in."""
    out = {}
    for path in files:
        pile = int(path.split("shard=")[1].split("/")[0])
        for row in pq.read_table(path, columns=list(KEYS)).to_pylist():
            out[tuple(row[k] for k in KEYS)] = pile
    return out


@pytest.mark.engine
def test_rows_go_to_piles_by_their_hash(lake):
    source = day_sorted_rows(lake.spark)
    files = write_piles(lake, source, "piled", seed=7, piles=4)
    placed = _pile_of_each_row(files)
    assert sorted(placed) == sorted(tuple(r) for r in source.collect())  # each row once
    for path in files:
        keys = pq.read_table(path, columns=["shuffle_key"]).column("shuffle_key").to_pylist()
        pile = int(path.split("shard=")[1].split("/")[0])
        # the folder is the row's pile: its kept hash mod 4 (Python's % is Spark's pmod)
        assert {k % 4 for k in keys} == {pile}
    sizes = np.bincount(list(placed.values()), minlength=4)
    # 45,000 rows in 4 piles: sd of a pile sqrt(45000 * 1/4 * 3/4) = 92; 6 sd = 550
    assert np.all(np.abs(sizes - 45_000 / 4) < 550), sizes


@pytest.mark.engine
def test_piles_are_a_function_of_the_seed(lake):
    source = day_sorted_rows(lake.spark, days=3, per_day=300)
    placed = [_pile_of_each_row(write_piles(lake, source, name, seed, 2))
              for name, seed in (("a", 1), ("b", 1), ("c", 2))]
    assert placed[0] == placed[1] and placed[0] != placed[2]


@pytest.mark.unit
def test_the_pile_count_keeps_every_pile_under_the_bound():
    bound = training_set.MAX_PILE_ROWS
    assert training_set.pile_count(0) == 1 and training_set.pile_count(bound) == 1
    assert training_set.pile_count(bound + 1) == 2
    assert training_set.pile_count(1_235_141) == 13  # the bench's set: 95,011 rows a pile
    assert training_set.pile_count(10, min_piles=3) == 3  # --shards asks for at least


@pytest.fixture(scope="module")
def built_feature_lake(tmp_path_factory, spark) -> Path:
    """The tiny lake with its features, built once for the module (~30 s)."""
    lake = Lake(tmp_path_factory.mktemp("feature_lake") / "lake", spark)
    tiny_lake.build(lake, seed=21)
    run_days(lake, DAYS, ["daily_stats", "profiles", "labels"], window=3, last_k=3,
             allow_partial=True)
    return lake.root


@pytest.fixture()
def feature_lake(built_feature_lake, tmp_path, spark):
    """A copy of the module's built lake for one test to write to (Delta logs hold
    relative paths: a copied folder is the same lake)."""
    shutil.copytree(built_feature_lake, tmp_path / "lake")
    return Lake(tmp_path / "lake", spark)


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
def test_the_pile_count_follows_the_label_rows(feature_lake, monkeypatch):
    labels = feature_lake.read_days(LABELS, DAYS[5], DAYS[6]).count()  # the train days'
    bound = labels // 3
    monkeypatch.setattr(training_set, "MAX_PILE_ROWS", bound)
    manifest = training_set.run(feature_lake, DAYS[7], days=3, window=3, run_id="p", shards=1)
    assert manifest.shards == math.ceil(labels / bound) >= 3
    train = feature_lake.read(TRAIN_EXAMPLES.renamed(manifest.tables.train))
    assert {r.shard for r in train.select("shard").distinct().collect()} <= set(
        range(manifest.shards))


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
