"""Hand-made lake tables for the baselines, written with deltalake (no Spark).

Rows are dicts of the catalog's columns; a column left out is null.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from features.catalog import DAILY_USER_ANCHOR, LIVE_SCHEDULE, USERS, TableSpec

ARROW = {"bigint": pa.int64(), "double": pa.float64(), "string": pa.string(),
         "timestamp": pa.timestamp("us", tz="UTC"), "int": pa.int32(), "boolean": pa.bool_()}


def write(root: Path, spec: TableSpec, rows: list[dict]) -> None:
    """Append `rows` to `spec`'s Delta table under `root`, partitioned by day."""
    schema = pa.schema([(name, ARROW[kind]) for name, kind in spec.fields])
    table = pa.Table.from_pylist([{c: r.get(c) for c in spec.columns} for r in rows], schema)
    write_deltalake(str(Path(root) / spec.name), table, mode="append",
                    partition_by=["dt"] if spec.partitioned else None)


def watch(user: int, anchor: int, dt: str, seconds: float = 600.0, sessions: int = 1) -> dict:
    """A daily_user_anchor row."""
    return {"user_id": user, "anchor_id": anchor, "dt": dt, "watch_seconds": seconds,
            "sessions": sessions, "gift_value": 0.0}


def write_lake(root: Path, watches: list[dict], users: list[dict] = (),
               live: list[tuple[int, str]] = ()) -> Path:
    """daily_user_anchor, users and live_schedule of a tiny lake (live: (anchor, dt)); an
    anchor watched on a day is live that day unless `live` says otherwise."""
    write(root, DAILY_USER_ANCHOR, watches)
    if users:
        write(root, USERS, list(users))
    schedule = set(live) or {(w["anchor_id"], w["dt"]) for w in watches}
    write(root, LIVE_SCHEDULE, [{"anchor_id": a, "dt": d} for a, d in sorted(schedule)])
    return root


def user(user_id: int, gender: str, age: str, city: str, dt: str = "2026-01-01") -> dict:
    return {"user_id": user_id, "gender": gender, "age_bucket": age, "city": city, "dt": dt}
