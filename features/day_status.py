"""Days as units: one status record per (job, day), written last, read by every consumer.

A job that builds day D first removes its record of D (from then on the day is incomplete),
writes its tables, then writes the record atomically: what it read and wrote (counts, the
table versions) and the token of each input record it was built from. A record is valid
only while each of its inputs is still valid and carries the same token, so re-running a
day (ingest included) invalidates everything built from the old run, transitively, without
touching it; a kill at any point leaves either the old complete day or no record.

Records are small JSON files, `<lake>/_day_status/<job>/<day>.json`, written through
`features.files` (a temp file, then one rename), so they need no engine: the jobs, the data
gate and the DAGs read them alike, and parallel days never conflict (one file each).
An empty day is a complete day with zero counts.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from features.days import parse_day
from features.files import atomic_write_text

STATUS_DIR = "_day_status"
JOBS = ("ingest", "daily_stats", "running_totals", "profiles", "anchor_neighbours", "labels")
MISSING, INCOMPLETE, STALE = "missing", "incomplete", "stale"


class DayStatus(BaseModel):
    """The record of one job's complete run for one day."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job: str
    day: str
    token: str  # unique per run: consumers record it to notice a re-run
    counts: dict[str, Any]  # rows read / written, per source or table
    versions: dict[str, int | None]  # table -> Delta version after the writes (None: Parquet)
    inputs: dict[str, str]  # "job/day" -> token of the input record it was built from


def _check_job(job: str) -> str:
    if job not in JOBS:
        raise ValueError(f"unknown job {job!r}; day status is kept for {', '.join(JOBS)}")
    return job


def status_path(root: Path | str, job: str, day: str) -> Path:
    parse_day(day)
    return Path(root) / STATUS_DIR / _check_job(job) / f"{day}.json"


def key(job: str, day: str) -> str:
    return f"{job}/{day}"


def begin(root: Path | str, job: str, day: str) -> None:
    """Mark `day` of `job` incomplete (before its first write)."""
    status_path(root, job, day).unlink(missing_ok=True)


def load(root: Path | str, job: str, day: str) -> DayStatus | None:
    """The record, or None when absent or unreadable (an unreadable record is no record)."""
    path = status_path(root, job, day)
    try:
        return DayStatus.model_validate_json(path.read_text())
    except (FileNotFoundError, ValidationError, ValueError):
        return None


def finish(root: Path | str, job: str, day: str, counts: Mapping[str, Any],
           versions: Mapping[str, int | None], inputs: Mapping[str, str]) -> DayStatus:
    """Write the record of a complete run (last, durable)."""
    record = DayStatus(job=_check_job(job), day=day, token=uuid.uuid4().hex,
                       counts=json.loads(json.dumps(dict(counts), default=str)),
                       versions=dict(versions), inputs=dict(inputs))
    atomic_write_text(status_path(root, job, day), record.model_dump_json(indent=2),
                      durable=True)
    return record


class Ledger:
    """Validity of day records under one lake root (memoised for one check)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._state: dict[str, tuple[str | None, str]] = {}

    def state(self, job: str, day: str) -> tuple[str | None, str]:
        """(problem, detail): problem None when complete, else MISSING or STALE (detail
        names the input that changed). Walked with a stack, not recursion: running totals
        chain each day to the day before, as far back as the history goes."""
        pending, records = [key(job, day)], {}
        while pending:
            k = pending[-1]
            if k in self._state:
                pending.pop()
                continue
            if k not in records:  # read once, even when revisited after its inputs
                records[k] = load(self.root, *k.split("/", 1))
            record = records[k]
            if record is None:
                self._state[k] = (MISSING, "")
                pending.pop()
                continue
            unknown = [i for i in sorted(record.inputs) if i not in self._state]
            if unknown:
                pending.extend(unknown)
                continue
            self._state[k] = (None, record.token)
            for input_key, token in sorted(record.inputs.items()):
                problem, current = self._state[input_key]
                if problem is not None or current != token:
                    input_job, input_day = input_key.split("/", 1)
                    self._state[k] = (STALE, f"{input_job} {input_day} was re-run or is "
                                             f"incomplete since")
                    break
            pending.pop()
        return self._state[key(job, day)]

    def token(self, job: str, day: str) -> str | None:
        problem, token = self.state(job, day)
        return None if problem else token

    def problems(self, job: str, days: Iterable[str]) -> dict[str, tuple[str, str]]:
        """day -> (problem, detail) for each day of `days` that is not complete."""
        out = {}
        for day in days:
            problem, detail = self.state(job, day)
            if problem is not None:
                out[day] = (problem, detail)
        return out

    def recorded_days(self, job: str) -> set[str]:
        folder = self.root / STATUS_DIR / _check_job(job)
        return {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()

    def complete_days(self, job: str) -> set[str]:
        return {d for d in self.recorded_days(job) if self.state(job, d)[0] is None}
