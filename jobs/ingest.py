"""Ingest one day of landing files into the lake.

Inputs (one folder per source and day; see README "Bring your own log"):
  <landing>/watch_sessions/dt=D/  -> raw_watch_sessions (dt = D)
  <landing>/users/dt=D/            -> users (dt = D)         new users of the day
  <landing>/anchors/dt=D/          -> anchors (dt = D)       new anchors of the day
  <landing>/live_schedule/dt=D/    -> live_schedule (dt = D)
Files are listed and parsed by `jobs.landing` (JSON lines, CSV/TSV, Parquet, any gzipped)
and judged by `features.validation`, all before the first write: a bad file fails the day
naming it, with nothing of the day committed. Plain valid JSON lines, most of a day, are
parsed and judged in bulk with Arrow (`jobs.landing_columns`); ids, duplicates and
reasons after the row-local rules are judged with Arrow for all lines alike. Every line is
accepted or goes to `quarantine` (dt = D) with its reason; lines in (counted apart from the
parser) = accepted + quarantined is checked per source after the writes, and the day's record
(`features.day_status`) is written last. Ids are checked against the users and anchors of
the landing days <= D (day folders parsed as dates), so a day can be ingested without the
other days' runs (backfills run days in parallel).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import functions as F

from features.catalog import ANCHORS, LIVE_SCHEDULE, QUARANTINE, RAW_WATCH_SESSIONS, USERS
from features.days import add_days, day_arg, parse_day
from features.settings import Settings, load_settings
from features.validation import (
    ID_COLUMN,
    SOURCE_COLUMNS,
    TIME_FORMATS,
    dimension_reason,
    session_reason,
)
from jobs.cli import job_parser, rows_summary, run_job
from jobs.lake import Lake
from jobs.landing import Record, capped_payload, day_folders
from jobs.landing_columns import Lines, read_lines

log = logging.getLogger(__name__)

JOB = "ingest"
SESSIONS_SOURCE = "watch_sessions"
DIMENSIONS = {  # landing source -> (table, id column, attribute columns)
    source: (spec, ID_COLUMN[source],
             tuple(c for c in SOURCE_COLUMNS[source] if c != ID_COLUMN[source]))
    for source, spec in (("users", USERS), ("anchors", ANCHORS),
                         ("live_schedule", LIVE_SCHEDULE))
}
SOURCES = (SESSIONS_SOURCE, *DIMENSIONS)
TABLES = {SESSIONS_SOURCE: RAW_WATCH_SESSIONS, **{s: t for s, (t, _, _) in DIMENSIONS.items()}}
OUTPUTS = (USERS, ANCHORS, LIVE_SCHEDULE, RAW_WATCH_SESSIONS, QUARANTINE)


def landing_root(flag: str | Path | None = None) -> Path:
    """The landing zone: `--landing` flag, else the settings ($LANDING_ROOT), else ./landing."""
    return load_settings(landing_root=flag).landing_root.resolve()  # defaults: unresolved


def day_folder(landing: Path, source: str, day: str) -> Path:
    return landing / source / f"dt={day}"


def require_landing(landing: Path, day: str) -> None:
    """Fail naming every missing landing folder of `day` (or a missing landing root)."""
    if not landing.is_dir():
        raise FileNotFoundError(f"landing root {landing} does not exist: check --landing or "
                                f"$LANDING_ROOT")
    missing = [str(day_folder(landing, s, day)) for s in SOURCES
               if not day_folder(landing, s, day).is_dir()]
    if missing:
        raise FileNotFoundError(f"landing data for {day} is missing: {', '.join(missing)}")


@dataclass
class Judged:
    """One source of one day: the accepted rows (an Arrow table of the output's columns)
    and the rejects as (file, line, text, size in bytes, reason)."""

    lines: int
    accepted: pa.Table
    rejects: list[tuple[str, int, str, int, str]] = field(default_factory=list)


def _reject(record: Record, reason: str) -> tuple[str, int, str, int, str]:
    return record.file, record.line, record.text, record.size, reason


def _judge_records(read: Lines, judge: Callable[[Record], tuple[str | None, tuple]],
                   rejects: list) -> pa.Table:
    """The row-locally valid rows of both paths in one table (`Lines.valid`'s columns):
    the columnar path's, then the per-record path's judged by `judge`."""
    rows = []
    for index, record in read.records:
        reason = record.reason
        if reason is None:
            reason, values = judge(record)
        if reason is None:
            rows.append(((index << 32) + record.line, record.line, record.text, record.size,
                         *values))
        else:
            rejects.append(_reject(record, reason))
    schema = read.valid.schema
    extra = pa.Table.from_arrays([pa.array([row[i] for row in rows], type=f.type)
                                  for i, f in enumerate(schema)], schema=schema)
    return pa.concat_tables([read.valid, extra])


def _take_rejects(read: Lines, rows: pa.Table, codes: np.ndarray, names: Sequence[str],
                  rejects: list) -> None:
    """Add the rows of `rows` with a reason (code > 0, `names[code]`) to `rejects`."""
    at = np.flatnonzero(codes)
    if not len(at):
        return
    picked = rows.select(["order", "line", "text", "size"]).take(at).to_pydict()
    for i, code in enumerate(codes[at]):
        rejects.append((read.files[picked["order"][i] >> 32], picked["line"][i],
                        picked["text"][i], picked["size"][i], names[code]))


def _first_of_runs(keys: np.ndarray) -> np.ndarray:
    """True where a sorted key array starts a new run."""
    first = np.ones(len(keys), bool)
    first[1:] = keys[1:] != keys[:-1]
    return first


def judge_dimension(read: Lines, source: str) -> Judged:
    """Accepted rows (id, *attributes); a second valid line for an id that day is a
    `duplicate` (the line first in text order is kept, then the first in file order)."""
    rejects: list = []
    rows = _judge_records(read, lambda record: dimension_reason(record.fields, source),
                          rejects)
    id_key = ID_COLUMN[source]
    rows = rows.take(pc.sort_indices(rows, [(id_key, "ascending"), ("text", "ascending"),
                                            ("order", "ascending")]))
    kept = _first_of_runs(rows[id_key].to_numpy())
    _take_rejects(read, rows, (~kept).astype(np.int8), ("", "duplicate"), rejects)
    columns = list(SOURCE_COLUMNS[source])
    return Judged(read.lines, rows.filter(pa.array(kept)).select(columns), rejects)


def judge_sessions(read: Lines, day: str, known_users: pa.Array, known_anchors: pa.Array,
                   time_format: str = "iso") -> Judged:
    """Accepted rows (value = the line's text, user_id, anchor_id, start_time,
    watch_seconds, gift_value), each line judged by the first rule of
    features.validation.SESSION_REASONS that fails."""
    the_day: date = parse_day(day)
    rejects: list = []
    rows = _judge_records(read, lambda record: session_reason(record.fields, the_day,
                                                              time_format), rejects)
    user_ok = np.asarray(pc.is_in(rows["user_id"], value_set=known_users), bool)
    anchor_ok = np.asarray(pc.is_in(rows["anchor_id"], value_set=known_anchors), bool)
    # a byte-identical copy of an earlier line (file order) that passed every other rule
    codes = pc.dictionary_encode(rows["text"].combine_chunks()).indices.to_numpy()
    in_order = np.argsort(rows["order"].to_numpy(), kind="stable")
    known = in_order[(user_ok & anchor_ok)[in_order]]
    first = np.zeros(len(rows), bool)
    first[known[np.unique(codes[known], return_index=True)[1]]] = True
    reasons = np.select([~user_ok, ~anchor_ok, ~first], [1, 2, 3], 0).astype(np.int8)
    _take_rejects(read, rows, reasons, ("", "unknown_user", "unknown_anchor", "duplicate"),
                  rejects)
    accepted = rows.filter(pa.array(reasons == 0)).select(
        ["text", "user_id", "anchor_id", "start_time", "watch_seconds", "gift_value"])
    return Judged(read.lines, accepted.rename_columns(["value", *accepted.column_names[1:]]),
                  rejects)


def known_ids(landing: Path, source: str, day: str, time_format: str = "iso") -> pa.Array:
    """Valid ids of a dimension from every landing day <= `day` (folders parsed as days)."""
    ids = [pa.array([], pa.int64())]
    for folder_day, folder in day_folders(landing / source).items():
        if folder_day <= day:
            judged = judge_dimension(read_lines(folder, source, folder_day, time_format),
                                     source)
            ids.append(judged.accepted[ID_COLUMN[source]].combine_chunks())
    return pc.unique(pa.concat_arrays(ids))


_ARROW_TYPES = {"string": pa.string(), "bigint": pa.int64(), "int": pa.int32()}


def _quarantine(judged: dict[str, Judged], day: str) -> pa.Table:
    rows = []
    for source in SOURCES:
        for file, line, text, size, reason in judged[source].rejects:
            payload, size, digest = capped_payload(text, size)
            rows.append((source, reason, payload, size, digest, file, line, day))
    schema = pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in QUARANTINE.fields])
    return pa.Table.from_arrays([pa.array([row[i] for row in rows], type=f.type)
                                 for i, f in enumerate(schema)], schema=schema)


def ingest_day(lake: Lake, landing: Path, day: str, time_format: str = "iso") -> dict:
    """Ingest every source of `day`; returns counts per source: lines, accepted, rejects."""
    if time_format not in TIME_FORMATS:
        raise ValueError(f"time format must be one of {', '.join(TIME_FORMATS)}, "
                         f"got {time_format!r}")
    require_landing(landing, day)
    # Read and judge everything first: a bad file fails here, before any write of the day.
    judged = {source: judge_dimension(read_lines(day_folder(landing, source, day), source,
                                                 day, time_format), source)
              for source in DIMENSIONS}
    # earlier days' ids from their landing files; the day's own from what was just judged
    known = {source: pc.unique(pa.concat_arrays([
        known_ids(landing, source, add_days(day, -1), time_format),
        judged[source].accepted[ID_COLUMN[source]].combine_chunks()]))
        for source in ("users", "anchors")}
    judged[SESSIONS_SOURCE] = judge_sessions(
        read_lines(day_folder(landing, SESSIONS_SOURCE, day), SESSIONS_SOURCE, day,
                   time_format), day, known["users"], known["anchors"], time_format)

    lake.begin_day(JOB, day)
    for source, (spec, _, _) in DIMENSIONS.items():
        with lake.staged(judged[source].accepted, f"{day}-{source}") as frame:
            lake.write_partition(frame.withColumn("dt", F.lit(day)), spec, day)
    with lake.staged(judged[SESSIONS_SOURCE].accepted, f"{day}-{SESSIONS_SOURCE}") as frame:
        lake.write_partition(frame.select(
            F.xxhash64("value").alias("session_id"), "user_id", "anchor_id", "start_time",
            "watch_seconds", "gift_value", F.lit(day).alias("dt")), RAW_WATCH_SESSIONS, day)
    with lake.staged(_quarantine(judged, day), f"{day}-quarantine") as frame:
        lake.write_partition(frame, QUARANTINE, day)
    summary = _reconcile(lake, {s: j.lines for s, j in judged.items()}, day)
    lake.finish_day(JOB, day, OUTPUTS, summary["sources"], {})
    return summary


def _reconcile(lake: Lake, lines: dict[str, int], day: str) -> dict:
    """Count what was written against what came in; fail if any line is unaccounted for."""
    rejects: dict[str, dict[str, int]] = {s: {} for s in SOURCES}
    for row in (lake.read_days(QUARANTINE, day, day).groupBy("source", "reason").count()
                .collect()):
        rejects[row["source"]][row["reason"]] = row["count"]
    summary = {"day": day, "sources": {}}
    for source in SOURCES:
        kept = lake.rows(TABLES[source], day)
        quarantined = sum(rejects[source].values())
        if lines[source] != kept + quarantined:
            raise RuntimeError(f"{source} {day}: {lines[source]} lines in but {kept} accepted "
                               f"+ {quarantined} quarantined; rows were lost or duplicated")
        summary["sources"][source] = {"lines": lines[source], "accepted": kept,
                                      "quarantined": dict(sorted(rejects[source].items()))}
    return summary


def summary_line(summary: dict) -> str:
    """`ingest D: raw_watch_sessions 2,101 rows (21 quarantined), users ..., quarantine N rows`."""
    parts, quarantined = [], 0
    for source, counts in summary["sources"].items():
        rejects = sum(counts["quarantined"].values())
        quarantined += rejects
        parts.append(rows_summary({TABLES[source].name: counts["accepted"]})
                     + (f" ({rejects:,} quarantined)" if rejects else ""))
    parts.append(rows_summary({QUARANTINE.name: quarantined}))
    return f"ingest {summary['day']}: {', '.join(parts)}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_parser("Validate one day of landing files into raw_watch_sessions, the "
                        "dimension tables and quarantine.")
    parser.add_argument("--date", required=True, type=day_arg, help="the day, YYYY-MM-DD")
    parser.add_argument("--landing", help="landing root (default: $LANDING_ROOT or ./landing)")
    parser.add_argument("--time-format", choices=TIME_FORMATS, default="iso",
                        help="how start_time is written: ISO-8601 with a zone (default), "
                             "epoch seconds or epoch milliseconds")
    args = parser.parse_args(argv)

    def work(lake: Lake, settings: Settings) -> str:
        landing = landing_root(args.landing) if args.landing else settings.landing_root.resolve()
        return summary_line(ingest_day(lake, landing, args.date, args.time_format))

    return run_job("ingest", args, work)


if __name__ == "__main__":
    sys.exit(main())
