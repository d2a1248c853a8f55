"""Ingest one day of landing files into the lake.

Inputs (one folder per source and day; see README "Bring your own log"):
  <landing>/watch_sessions/dt=D/  -> raw_watch_sessions (dt = D)
  <landing>/users/dt=D/            -> users (dt = D)         new users of the day
  <landing>/anchors/dt=D/          -> anchors (dt = D)       new anchors of the day
  <landing>/live_schedule/dt=D/    -> live_schedule (dt = D)
Files are listed and parsed by `jobs.landing` (JSON lines, CSV/TSV, Parquet, any gzipped)
and judged by `features.validation`, all before the first write: a bad file fails the day
naming it, with nothing of the day committed. Every line is accepted or goes to
`quarantine` (dt = D) with its reason; lines in (counted apart from the parser) = accepted +
quarantined is checked per source after the writes, and the day's record
(`features.day_status`) is written last. Ids are checked against the users and anchors of
the landing days <= D (day folders parsed as dates), so a day can be ingested without the
other days' runs (backfills run days in parallel).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa
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
from jobs.landing import Record, capped_payload, day_folders, read_day

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
    """One source of one day: accepted rows (each with its line text first) and rejects."""

    lines: int = 0
    accepted: list[tuple] = field(default_factory=list)
    rejects: list[tuple[Record, str]] = field(default_factory=list)


def judge_dimension(records: Sequence[Record], source: str) -> Judged:
    """Accepted rows (text, id, *attributes); a second valid line for an id that day is a
    `duplicate` (the line first in text order is kept)."""
    out = Judged(lines=len(records))
    valid: dict[int, list[tuple]] = {}
    for record in records:
        reason = record.reason
        if reason is None:
            reason, values = dimension_reason(record.fields, source)
            if reason is None:
                valid.setdefault(values[0], []).append((record.text, *values, record))
                continue
        out.rejects.append((record, reason))
    for rows in valid.values():
        rows.sort(key=lambda row: row[0])
        out.accepted.append(rows[0][:-1])
        out.rejects.extend((row[-1], "duplicate") for row in rows[1:])
    return out


def judge_sessions(records: Sequence[Record], day: str, known_users: set[int],
                   known_anchors: set[int], time_format: str = "iso") -> Judged:
    """Accepted rows (text, user_id, anchor_id, start_time, watch_seconds, gift_value), each
    line judged by the first rule of features.validation.SESSION_REASONS that fails."""
    out = Judged(lines=len(records))
    the_day: date = parse_day(day)
    seen: set[str] = set()
    for record in records:
        reason = record.reason
        if reason is None:
            reason, values = session_reason(record.fields, the_day, time_format)
        if reason is None:
            if values[0] not in known_users:
                reason = "unknown_user"
            elif values[1] not in known_anchors:
                reason = "unknown_anchor"
            elif record.text in seen:
                reason = "duplicate"
        if reason is None:
            seen.add(record.text)
            out.accepted.append((record.text, *values))
        else:
            out.rejects.append((record, reason))
    return out


def known_ids(landing: Path, source: str, day: str, time_format: str = "iso") -> set[int]:
    """Valid ids of a dimension from every landing day <= `day` (folders parsed as days)."""
    ids: set[int] = set()
    for folder_day, folder in day_folders(landing / source).items():
        if folder_day <= day:
            judged = judge_dimension(read_day(folder, source, time_format), source)
            ids.update(row[1] for row in judged.accepted)
    return ids


def _arrow(columns: Sequence[tuple[str, pa.DataType]], rows: Sequence[tuple]) -> pa.Table:
    arrays = [pa.array([row[i] for row in rows], type=kind)
              for i, (_, kind) in enumerate(columns)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(columns))


_ARROW_TYPES = {"string": pa.string(), "bigint": pa.int64(), "int": pa.int32()}


def _quarantine_rows(source: str, judged: Judged, day: str) -> list[tuple]:
    rows = []
    for record, reason in judged.rejects:
        payload, size, digest = capped_payload(record)
        rows.append((source, reason, payload, size, digest, record.file, record.line, day))
    return rows


def ingest_day(lake: Lake, landing: Path, day: str, time_format: str = "iso") -> dict:
    """Ingest every source of `day`; returns counts per source: lines, accepted, rejects."""
    if time_format not in TIME_FORMATS:
        raise ValueError(f"time format must be one of {', '.join(TIME_FORMATS)}, "
                         f"got {time_format!r}")
    require_landing(landing, day)
    # Read and judge everything first: a bad file fails here, before any write of the day.
    judged = {source: judge_dimension(read_day(day_folder(landing, source, day), source),
                                      source) for source in DIMENSIONS}
    # earlier days' ids from their landing files; the day's own from what was just judged
    known = {source: known_ids(landing, source, add_days(day, -1), time_format)
             | {row[1] for row in judged[source].accepted} for source in ("users", "anchors")}
    judged[SESSIONS_SOURCE] = judge_sessions(
        read_day(day_folder(landing, SESSIONS_SOURCE, day), SESSIONS_SOURCE, time_format),
        day, known["users"], known["anchors"], time_format)

    lake.begin_day(JOB, day)
    for source, (spec, id_key, attributes) in DIMENSIONS.items():
        rows = [row[1:] for row in judged[source].accepted]
        columns = [(id_key, pa.int64()), *[(a, pa.string()) for a in attributes]]
        with lake.staged(_arrow(columns, rows), f"{day}-{source}") as frame:
            lake.write_partition(frame.withColumn("dt", F.lit(day)), spec, day)
    sessions = _arrow([("value", pa.string()), ("user_id", pa.int64()),
                       ("anchor_id", pa.int64()), ("start_time", pa.timestamp("us", tz="UTC")),
                       ("watch_seconds", pa.float64()), ("gift_value", pa.float64())],
                      judged[SESSIONS_SOURCE].accepted)
    with lake.staged(sessions, f"{day}-{SESSIONS_SOURCE}") as frame:
        lake.write_partition(frame.select(
            F.xxhash64("value").alias("session_id"), "user_id", "anchor_id", "start_time",
            "watch_seconds", "gift_value", F.lit(day).alias("dt")), RAW_WATCH_SESSIONS, day)
    quarantine = [row for source in SOURCES
                  for row in _quarantine_rows(source, judged[source], day)]
    quarantine_types = [(name, _ARROW_TYPES[kind]) for name, kind in QUARANTINE.fields]
    with lake.staged(_arrow(quarantine_types, quarantine), f"{day}-quarantine") as frame:
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
