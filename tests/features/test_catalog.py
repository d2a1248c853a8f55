"""The catalog: one declaration per table, consistent names, keys and partitioning."""

from __future__ import annotations

import pytest

from features.catalog import ALL_TABLES, LABELS, PARTITION_COLUMN, TABLES, USER_PROFILES

pytestmark = pytest.mark.unit

# The type names jobs.schemas maps; the catalog must not use any other.
KNOWN_TYPES = {"string", "bigint", "int", "double", "boolean", "timestamp",
               "map<string,double>", "map<string,bigint>", "array<bigint>", "array<double>"}


def test_names_are_unique_and_indexed():
    assert len(TABLES) == len(ALL_TABLES) == 14
    assert all(TABLES[spec.name] is spec for spec in ALL_TABLES)


@pytest.mark.parametrize("spec", ALL_TABLES, ids=lambda s: s.name)
def test_each_table_is_well_formed(spec):
    assert len(set(spec.columns)) == len(spec.columns), "duplicate column"
    assert {t for _, t in spec.fields} <= KNOWN_TYPES
    assert spec.partitioned and spec.columns[-1] == PARTITION_COLUMN
    assert spec.type_of(PARTITION_COLUMN) == "string"  # ISO days compare as strings
    assert spec.grain.startswith("one row per")


def test_accessors():
    assert LABELS.columns[:3] == ["user_id", "anchor_id", "label"]
    assert LABELS.type_of("label") == "int"
    assert USER_PROFILES.type_of("category_shares") == "map<string,double>"
    with pytest.raises(KeyError):
        LABELS.type_of("no_such_column")
    moved = LABELS.renamed("training_sets/r/labels")
    assert moved.name == "training_sets/r/labels" and moved.fields == LABELS.fields
    assert LABELS.name == "labels"  # frozen: renamed() copies
