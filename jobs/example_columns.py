"""Spark columns of a training example, built from the declarations in features.examples.

A profile table's feature fields become `<prefix>_<name>`; a map column listed in
`VECTOR_COLUMNS` becomes a fixed-length vector over its vocabulary (0.0 for a key the row
lacks), so the trainer gets dense inputs in a known order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

from features.catalog import ANCHOR_PROFILES, USER_PROFILES, TableSpec
from features.examples import ANCHOR_KEYS, USER_KEYS, VECTOR_COLUMNS, profile_fields


def feature_columns(spec: TableSpec, keys: tuple[str, ...], prefix: str,
                    vocabularies: Mapping[str, Sequence[str]] | None = None) -> list[Column]:
    """The keys of `spec`, then its feature fields renamed `<prefix>_<name>`.

    Args:
      vocabularies: map column -> its keys in vector order, for every VECTOR_COLUMNS
        column of `spec`.
    """
    out = [F.col(k) for k in keys]
    for name, _ in profile_fields(spec, keys):
        alias = f"{prefix}_{name}"
        if name not in VECTOR_COLUMNS:
            out.append(F.col(name).alias(alias))
            continue
        if vocabularies is None or name not in vocabularies:
            raise ValueError(f"{spec.name}.{name} becomes a vector: give its vocabulary")
        values = [F.coalesce(F.col(name).getItem(key), F.lit(0.0)) for key in vocabularies[name]]
        out.append(F.array(*values).cast(VECTOR_COLUMNS[name]).alias(alias))
    return out


def user_feature_columns(categories: Sequence[str]) -> list[Column]:
    """user_profiles columns renamed `user_*`; category shares as a vector over `categories`."""
    return feature_columns(USER_PROFILES, USER_KEYS, "user", {"category_shares": categories})


def anchor_feature_columns() -> list[Column]:
    """anchor_profiles columns renamed `anchor_*`."""
    return feature_columns(ANCHOR_PROFILES, ANCHOR_KEYS, "anchor")
