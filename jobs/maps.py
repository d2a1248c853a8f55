"""Map columns built from grouped rows, correct on every engine we run.

Sail 0.7.2 carries DataFusion's Spark `map_from_entries` / `map_from_arrays` bug for sliced
lists (apache/datafusion#25419, fixed upstream after that release): the values of a sliced
list are paired with keys from rows outside the slice. Aggregate output reaches the next
operator in slices, so on any table of more than one batch most maps came out wrong
(measured: 27,641 of 44,139 users' maps; tiny test data fits in one batch and hid it).
Lists rebuilt by `transform` are not slices, and both functions read those right.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F


def map_agg(key: str, value: str) -> Column:
    """Aggregate: the map of column `key` to column `value` over the rows of each group."""
    entries = F.collect_list(F.struct(key, value))
    return F.map_from_arrays(F.transform(entries, lambda e: e[key]),
                             F.transform(entries, lambda e: e[value]))
