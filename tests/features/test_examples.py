"""Example declarations: every feature group names real example columns, with the types
the profiles give them."""

from __future__ import annotations

import pytest

from features import examples as ex
from features.catalog import ANCHOR_PROFILES, LABELS, USER_PROFILES

pytestmark = pytest.mark.unit


def test_feature_groups_are_example_columns():
    user = dict(ex.USER_FEATURE_FIELDS)
    anchor = dict(ex.ANCHOR_FEATURE_FIELDS)
    for name in ex.USER_CONTENT_NUMERIC + ex.USER_PREFERENCE_NUMERIC:
        assert user[name] in ("int", "bigint", "double"), name
    for name in ex.ANCHOR_CONTENT_NUMERIC + ex.ANCHOR_PREFERENCE_NUMERIC:
        assert anchor[name] in ("int", "bigint", "double"), name
    for name in ex.USER_CATEGORICAL:
        assert user[f"user_{name}"] == "string"
    for name in ex.ANCHOR_CATEGORICAL:
        assert anchor[f"anchor_{name}"] == "string"


def test_profile_fields_drop_keys_and_bookkeeping():
    names = [n for n, _ in ex.profile_fields(USER_PROFILES, ex.USER_KEYS)]
    assert names[0] == "gender" and "user_id" not in names and "dt" not in names
    assert not set(ex.NOT_FEATURES) & set(names)
    assert "source_max_dt" in names  # kept: the leakage check of a training row needs it


def test_maps_become_vectors_and_nothing_else_changes():
    user = dict(ex.USER_FEATURE_FIELDS)
    assert user["user_category_shares"] == "array<double>"
    assert user["user_last_anchors"] == USER_PROFILES.type_of("last_anchors")
    assert dict(ex.ANCHOR_FEATURE_FIELDS)["anchor_bounce_rate"] == \
        ANCHOR_PROFILES.type_of("bounce_rate")


def test_example_tables():
    assert ex.TRAIN_EXAMPLES.fields[:len(LABELS.fields)] == LABELS.fields
    assert ex.TRAIN_EXAMPLES.columns[-3:] == list(ex.SHUFFLE_COLUMNS)
    assert ex.VALIDATION_EXAMPLES.fields == ex.EXAMPLE_FIELDS
    assert len(set(ex.TRAIN_EXAMPLES.columns)) == len(ex.TRAIN_EXAMPLES.columns)
    assert ex.CANDIDATES.columns[:2] == ["anchor_id", "dt"]
    assert not any(s.partitioned for s in (ex.TRAIN_EXAMPLES, ex.VALIDATION_EXAMPLES,
                                           ex.CANDIDATES))
