"""N-day sliding windows for a whole range of profile days in one pass (difference arrays).

A row of source day e belongs to the windows of profile days e+1 .. e+N. Instead of reading
N days again for every profile day, each row becomes two events: +value on the first
profile day it counts in, -value on the day after its last. A running sum over the profile
days then gives every window at once, so each source day is read once, whatever N is and
however many profile days are built. Sums stay exact: fractional values are summed as
decimals, never as floats that +x-x would leave residue in.

Days are integers relative to the first profile day (profile days 0 .. days-1, source days
-N .. days-2). Events before day 0 fold into day 0; events after the last day are dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

EXACT = "decimal(38,9)"  # running sums of fractional values: exact under +x then -x
DAY = "i"  # the profile day number of an event / an output row


def day_number(first: str, column: str = "dt") -> Column:
    """Days from `first` to the ISO day in `column` (negative before it)."""
    return F.datediff(F.to_date(F.col(column)), F.to_date(F.lit(first))).cast("int")


def day_text(first: str, number: Column) -> Column:
    """The ISO day `number` days after `first`."""
    return F.date_add(F.to_date(F.lit(first)), number).cast("string")


def with_previous(rows: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Add `p`, the previous source day (`e`) with a row of the same keys, or null."""
    return rows.withColumn("p", F.lag("e").over(Window.partitionBy(*keys).orderBy("e")))


def first_in_window(window: int) -> Column:
    """The first profile day in whose window a row of day e is the earliest row of its keys:
    e+1 after a gap of more than N days since the previous row `p`, else p+N+1 (when p
    leaves the window). Distinct counts and "first day in window" use it."""
    return F.greatest(F.col("e") + 1, F.coalesce(F.col("p") + window + 1, F.col("e") + 1))


def window_events(rows: DataFrame, keys: Sequence[str], window: int, days: int,
                  values: Mapping[str, Column], enter: Column | None = None) -> DataFrame:
    """+value on the profile day a row of day `e` enters the window (default e+1), -value
    on e+N+1 when it leaves."""
    start = F.greatest(enter if enter is not None else F.col("e") + 1, F.lit(0))
    plus = rows.select(*keys, start.alias(DAY), *[v.alias(n) for n, v in values.items()])
    minus = rows.select(*keys, (F.col("e") + window + 1).alias(DAY),
                        *[(-v).alias(n) for n, v in values.items()])
    return plus.unionByName(minus).where(F.col(DAY) < days)


def marker_events(rows: DataFrame, keys: Sequence[str], days: int, name: str,
                  value: Column, at: Column) -> DataFrame:
    """`value` from profile day `at` on (a running max carries it forward)."""
    return (rows.select(*keys, F.greatest(at, F.lit(0)).alias(DAY), value.alias(name))
            .where(F.col(DAY) < days))


def grid(entities: DataFrame, keys: Sequence[str], start: Column, days: int) -> DataFrame:
    """One row per entity and profile day from `start` (clamped to 0) to days-1."""
    first = F.greatest(start, F.lit(0))
    return (entities.where(first < days)
            .select(*keys, F.explode(F.sequence(first, F.lit(days - 1))).alias(DAY))
            .withColumn("_known", F.lit(1)))


def running_totals(known: DataFrame, events: Sequence[DataFrame], keys: Sequence[str],
                   sums: Sequence[str], markers: Sequence[str]) -> DataFrame:
    """For every row of `known` (keys, i): running sums of the `sums` event columns and
    running maxima of the `markers` over profile days 0 .. i."""
    frames = [known, *events]
    types = {f.name: f.dataType for frame in frames for f in frame.schema.fields}
    columns = [*sums, *markers, "_known"]

    def aligned(frame: DataFrame) -> DataFrame:  # typed nulls: a bare null cannot be summed
        return frame.select(*keys, DAY, *[
            F.col(c) if c in frame.columns else F.lit(None).cast(types[c]).alias(c)
            for c in columns])

    rows = aligned(known)
    for frame in events:
        rows = rows.unionByName(aligned(frame))
    per_day = rows.groupBy(*keys, DAY).agg(
        *[F.sum(c).alias(c) for c in sums], *[F.max(c).alias(c) for c in markers],
        F.max("_known").alias("_known"))
    upto = Window.partitionBy(*keys).orderBy(DAY).rowsBetween(Window.unboundedPreceding, 0)
    totals = per_day.select(
        *keys, DAY, "_known",
        *[F.coalesce(F.sum(c).over(upto), F.lit(0)).alias(c) for c in sums],
        *[F.max(c).over(upto).alias(c) for c in markers])
    return totals.where(F.col("_known") == 1).drop("_known")
