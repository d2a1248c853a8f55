"""The past of the lake as the baselines see it: days strictly before the scored day.

Lake tables (features/catalog.py) are read with `deltalake` (or pyarrow for a Parquet lake),
never Spark: training must not import pyspark. Every read is bounded above by the scored day
(`dt < day`), so no baseline can see the day it is scored on or any later one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds

from features.catalog import PARTITION_COLUMN, TableSpec
from features.days import add_days
from training.reader import Columns, to_numpy


def read_before(lake_root: Path | str, table: TableSpec, day: str, columns: Sequence[str],
                fmt: str = "delta", days: int | None = None) -> Columns:
    """Rows of `table` with `day - days <= dt < day` (every day before `day` when `days` is
    None) as NumPy columns (`dt` always among them); empty columns when the table is
    absent."""
    path = Path(lake_root) / table.name
    wanted = list(dict.fromkeys([*columns, PARTITION_COLUMN]))
    bounds = [(PARTITION_COLUMN, "<", day)]
    if days is not None:
        bounds.append((PARTITION_COLUMN, ">=", add_days(day, -days)))
    if fmt == "delta":
        from deltalake import DeltaTable

        if not (path / "_delta_log").is_dir():
            return {c: np.array([]) for c in wanted}
        arrow = DeltaTable(str(path)).to_pyarrow_table(columns=wanted, filters=bounds)
    else:
        if not path.is_dir():
            return {c: np.array([]) for c in wanted}
        partitioning = ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.string())]),
                                       flavor="hive")
        dataset = ds.dataset(str(path), format="parquet", partitioning=partitioning)
        where = None
        for column, op, value in bounds:
            term = ds.field(column) < value if op == "<" else ds.field(column) >= value
            where = term if where is None else where & term
        arrow = dataset.to_table(columns=wanted, filter=where)
    out = {c: to_numpy(arrow.column(c), 0) for c in wanted}
    if len(out[PARTITION_COLUMN]) and max(out[PARTITION_COLUMN]) >= day:
        raise AssertionError(f"{table.name}: read a day >= {day}")  # the filter is the contract
    return out


def age_days(dts: np.ndarray, day: str) -> np.ndarray:
    """Days from each `dt` to `day` (1 for the day before)."""
    if not len(dts):
        return np.zeros(0, dtype=np.int64)
    return (np.datetime64(day, "D") - dts.astype("datetime64[D]")).astype(np.int64)


def decay(dts: np.ndarray, day: str, half_life_days: float) -> np.ndarray:
    """Weight of each row's day: 1 for the day before `day`, halved every `half_life_days`."""
    return 0.5 ** ((age_days(dts, day) - 1) / half_life_days)


def positions(known: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each of `ids` in the sorted unique array `known`, and whether it is there."""
    ids = np.asarray(ids, dtype=np.int64)
    if not len(known):
        return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
    pos = np.clip(np.searchsorted(known, ids), 0, len(known) - 1)
    return pos, known[pos] == ids


def pair_values(fit_users: np.ndarray, fit_anchors: np.ndarray, user_ids: np.ndarray,
                anchor_ids: np.ndarray, block: Callable[[np.ndarray, np.ndarray], np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(`[U, A]` values, `[U, A]` known): `block(user_rows, anchor_rows)` of a fit where both
    the user and the anchor are in it, 0 elsewhere (a baseline backs off there)."""
    u, u_found = positions(fit_users, user_ids)
    a, a_found = positions(fit_anchors, anchor_ids)
    values = np.zeros((len(u), len(a)))
    if u_found.any() and a_found.any():
        values[np.ix_(u_found, a_found)] = block(u[u_found], a[a_found])
    return values, u_found[:, None] & a_found[None, :]


def tiered(primary: np.ndarray, has: np.ndarray, backoff: np.ndarray) -> np.ndarray:
    """`[U, A]` scores that rank every pair with a primary score above every pair without,
    keeping each tier's own order; the back-off (`[A]` or `[U, A]`) orders the rest."""
    backoff = np.broadcast_to(np.asarray(backoff, dtype=float), primary.shape)
    span = backoff.max(initial=0.0) - backoff.min(initial=0.0)
    low = (backoff - backoff.min(initial=0.0)) / (2 * span) if span > 0 else backoff * 0.0
    if not has.any():
        return low
    top = 1.0 + primary - primary[has].min()  # >= 1 > 0.5 >= every back-off score
    return np.where(has, top, low)
