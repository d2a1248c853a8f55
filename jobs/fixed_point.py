"""Decimal amounts as whole numbers of a fixed resolution (milliseconds of watch time,
micro-units of gift value): their sums are exact and do not depend on the engine's order of
rows. `features.rules.to_millis` is the same rounding in Python."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def fixed_point(column: str, per_unit: float) -> Column:
    """`column` * `per_unit`, rounded half up to a whole number (bigint)."""
    return F.floor(F.col(column) * F.lit(float(per_unit)) + F.lit(0.5)).cast("bigint")
