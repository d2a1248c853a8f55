"""Catalog specs and Spark schemas agree: every table converts, type for type."""

from __future__ import annotations

import pytest
from pyspark.sql import types as T

from features.catalog import ALL_TABLES, LABELS, USER_PROFILES, TableSpec
from features.examples import CANDIDATES, TRAIN_EXAMPLES, VALIDATION_EXAMPLES
from jobs.schemas import SQL_TYPES, spark_schema, spark_type, table_spec

pytestmark = pytest.mark.unit

SPECS = (*ALL_TABLES, TRAIN_EXAMPLES, VALIDATION_EXAMPLES, CANDIDATES)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_table_converts_type_for_type(spec: TableSpec):
    schema = spark_schema(spec)
    # Spark names each type as the catalog does, so the mapping is a round trip
    assert [(f.name, f.dataType.simpleString()) for f in schema.fields] == list(spec.fields)
    assert all(f.nullable for f in schema.fields)


def test_the_mapping_is_explicit():
    assert spark_type("bigint") == T.LongType()
    assert spark_type("map<string,double>") == T.MapType(T.StringType(), T.DoubleType())
    assert spark_type("array<bigint>") == T.ArrayType(T.LongType())
    assert {spark_type(t).simpleString() for t in SQL_TYPES} == set(SQL_TYPES)
    for unknown in ("decimal(10,2)", "long", "map<string, double>", "STRING"):
        with pytest.raises(ValueError, match="unsupported column type"):
            spark_type(unknown)


def test_an_unknown_type_names_the_table_and_column():
    bad = TableSpec("odd", "test", (("x", "bigint"), ("price", "decimal(10,2)")))
    with pytest.raises(ValueError, match=r"odd\.price: unsupported column type "
                                         r"'decimal\(10,2\)'.*jobs/schemas\.py"):
        spark_schema(bad)


def test_table_spec_from_a_spark_schema_round_trips():
    spec = table_spec("copy", "a copy of user_profiles", spark_schema(USER_PROFILES))
    assert spec.fields == USER_PROFILES.fields and spec.partitioned
    with pytest.raises(ValueError, match="unsupported"):
        table_spec("odd", "test", T.StructType([T.StructField("d", T.DateType())]))


def test_schemas_are_cached_per_spec():
    assert spark_schema(LABELS) is spark_schema(LABELS)
    assert spark_schema(LABELS.renamed("other")) == spark_schema(LABELS)
