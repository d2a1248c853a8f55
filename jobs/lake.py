"""The one I/O layer: table paths under the lake root, partition overwrites, day-range reads.

Every write goes through `Lake.write_partition` / `Lake.overwrite_table`, which
- write exactly the declared columns of the table (a drifted transform fails here),
- refuse rows outside the partition being replaced (Sail's replaceWhere does not check:
  measured, it let another day's rows land and doubled a partition), in the same pass as
  the write, so a refused write commits nothing (delta-spark on the JVM also checks by
  itself, DELTA_REPLACE_WHERE_MISMATCH; the guard's error comes first, measured),
- create the table with its schema first (Sail cannot replaceWhere into a missing table),
- retry commit conflicts of parallel writers with bounded back-off (delta-rs and delta-spark
  name them differently: see _CONFLICT_MARKERS; delta-spark itself retries only commits
  that do not conflict logically, e.g. two writers of different days),
- on a Spark Connect server, cast by SQL type name (see jobs.engine.casts_by_name).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from features import day_status
from features.catalog import ALL_TABLES, PARTITION_COLUMN, TableSpec
from features.days import add_days
from features.settings import load_settings, local_root
from jobs.engine import casts_by_name, table_format
from jobs.schemas import spark_schema

log = logging.getLogger(__name__)

# Commit conflicts as Sail (delta-rs) and delta-spark on the JVM name them (JVM: the
# Concurrent*Exception family, error classes DELTA_CONCURRENT_*).
_CONFLICT_MARKERS = ("Failed to commit transaction", "ConcurrentAppend", "ConcurrentModification",
                     "ProtocolChanged", "MetadataChanged", "version already exists",
                     "ConcurrentDelete", "ConcurrentWrite", "ConcurrentTransaction",
                     "DELTA_CONCURRENT_")


def lake_root(flag: str | Path | None = None) -> Path:
    """The lake root: `--lake` flag, else the settings (file, $LAKE_ROOT), else ./lake."""
    return load_settings(lake_root=flag).lake_root.resolve()  # defaults come unresolved


def day_ranges(days: Iterable[str]) -> str:
    """Sorted days with runs of consecutive days written first..last, e.g.
    `2026-01-01..2026-01-03, 2026-01-07`."""
    runs: list[list[str]] = []
    for day in sorted(set(days)):
        if runs and add_days(runs[-1][-1], 1) == day:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(run[0] if len(run) == 1 else f"{run[0]}..{run[-1]}" for run in runs)


def resolve_under(root: Path, relative: str) -> Path:
    """`root/relative`, refusing absolute paths and anything that escapes the root."""
    if not relative or Path(relative).is_absolute():
        raise ValueError(f"table path must be relative to the lake root, got {relative!r}")
    path = (root / relative).resolve()
    if path != root and root not in path.parents:
        raise ValueError(f"table path {relative!r} escapes the lake root {root}")
    return path


def is_conflict(error: Exception) -> bool:
    """True for a Delta commit conflict between concurrent writers (safe to retry)."""
    text = str(error)
    return any(marker in text for marker in _CONFLICT_MARKERS)


def with_commit_retries(write: Callable[[], None], what: str, attempts: int = 6) -> None:
    """Run `write`, retrying commit conflicts with exponential back-off and jitter."""
    for attempt in range(1, attempts + 1):
        try:
            write()
            return
        except Exception as error:  # engines raise their own exception types
            if attempt == attempts or not is_conflict(error):
                raise
            delay = 0.2 * 2 ** (attempt - 1) * (1 + random.random())
            log.warning("commit conflict on %s (attempt %d/%d), retrying in %.1fs",
                        what, attempt, attempts, delay)
            time.sleep(delay)


# Fault injection for the crash tests: the process kills itself (SIGKILL, no clean-up) after
# this many partition writes. Unset in normal runs.
KILL_AFTER_WRITES_ENV = "PIPELINE_KILL_AFTER_WRITES"
_writes = 0


def _failpoint() -> None:
    global _writes
    _writes += 1
    limit = os.environ.get(KILL_AFTER_WRITES_ENV)
    if limit and _writes >= int(limit):
        os.kill(os.getpid(), signal.SIGKILL)


def guard_partition(column: Column, day: str) -> Column:
    """`column` unchanged when it equals `day`; otherwise the query fails (nothing commits)."""
    found = F.coalesce(column.cast("string"), F.lit("NULL"))
    message = F.concat(F.lit(f"refusing row outside partition {PARTITION_COLUMN}={day}: "
                             f"{PARTITION_COLUMN}="), found)
    return F.when(column == F.lit(day), column).otherwise(F.raise_error(message))


class Lake:
    """Tables of one lake root, read and written through one Spark session."""

    def __init__(self, root: Path | str, spark: SparkSession, fmt: str | None = None) -> None:
        self.root = Path(local_root(root)).resolve()  # a file:// URI is its folder
        self.spark = spark
        self.format = fmt or table_format(spark)

    def path(self, spec: TableSpec | str) -> Path:
        return resolve_under(self.root, spec if isinstance(spec, str) else spec.name)

    def exists(self, spec: TableSpec) -> bool:
        path = self.path(spec)
        return (path / "_delta_log").is_dir() if self.format == "delta" else path.is_dir()

    def create(self, spec: TableSpec, template: DataFrame | None = None) -> None:
        """Create the table empty, once, with the declared schema.

        Given the conformed DataFrame about to be written, the table takes that frame's own
        schema: Sail names nested Arrow fields (list items, map entries) differently for a
        schema built in Python and for a computed column, and then refuses to replace a
        partition of one with the other (measured).
        """
        if self.exists(spec):
            return
        empty = template.limit(0) if template is not None else self.spark.createDataFrame(
            [], spark_schema(spec))
        writer = empty.write.format(self.format).mode("ignore")
        if spec.partitioned:
            writer = writer.partitionBy(PARTITION_COLUMN)
        try:
            writer.save(str(self.path(spec)))
        except Exception:
            if not self.exists(spec):  # a concurrent creator may have won the race
                raise

    def _conform(self, df: DataFrame, spec: TableSpec) -> DataFrame:
        missing = [c for c in spec.columns if c not in df.columns]
        extra = [c for c in df.columns if c not in spec.columns]
        if missing or extra:
            raise ValueError(f"{spec.name}: output columns differ from the declared schema "
                             f"(missing {missing}, unexpected {extra})")
        by_name = casts_by_name(self.spark)
        return df.select([F.col(f.name).cast(f.dataType.simpleString() if by_name
                                             else f.dataType).alias(f.name)
                          for f in spark_schema(spec)])

    def empty(self, spec: TableSpec) -> DataFrame:
        """No rows, with the columns of `spec` (an input that is absent, not missing)."""
        return self.spark.createDataFrame([], spark_schema(spec))

    def write_partition(self, df: DataFrame, spec: TableSpec, day: str,
                        append: bool = False) -> None:
        """Replace partition `dt = day` of `spec` with `df` (or add `df` to it: `append`);
        fail if a row belongs elsewhere."""
        if not spec.partitioned:
            raise ValueError(f"{spec.name} is not partitioned by {PARTITION_COLUMN}")
        out = self._conform(df, spec)
        self.create(spec, out)
        out = out.withColumn(PARTITION_COLUMN, guard_partition(F.col(PARTITION_COLUMN), day))
        mode = "append" if append else "overwrite"
        writer = out.write.format(self.format).mode(mode).partitionBy(PARTITION_COLUMN)
        if not append and self.format == "delta":
            writer = writer.option("replaceWhere", f"{PARTITION_COLUMN} = '{day}'")
        elif not append:  # Parquet (parity tests): dynamic overwrite touches only the day
            writer = writer.option("partitionOverwriteMode", "dynamic")
        with_commit_retries(lambda: writer.save(str(self.path(spec))), f"{spec.name}/{day}")
        log.info("%s %s %s=%s", "added to" if append else "wrote", spec.name,
                 PARTITION_COLUMN, day)
        _failpoint()

    def overwrite_table(self, df: DataFrame, spec: TableSpec,
                        partition_by: str | None = None) -> None:
        """Replace the whole table atomically (one commit), optionally one folder per value
        of `partition_by` (training shards) instead of the day."""
        out = self._conform(df, spec)
        writer = out.write.format(self.format).mode("overwrite")
        if partition_by or spec.partitioned:
            writer = writer.partitionBy(partition_by or PARTITION_COLUMN)
        with_commit_retries(lambda: writer.save(str(self.path(spec))), spec.name)

    def read(self, spec: TableSpec) -> DataFrame:
        """The whole table with its declared columns; a missing table is a clear error."""
        if not self.exists(spec):
            raise FileNotFoundError(self.root_problem()
                                    or f"table {spec.name!r} does not exist at {self.path(spec)}")
        reader = self.spark.read.format(self.format)
        if self.format != "delta":
            reader = reader.schema(spark_schema(spec))
        return reader.load(str(self.path(spec))).select(*spec.columns)

    def read_days(self, spec: TableSpec, start: str, end: str) -> DataFrame:
        """Rows of partitions start <= dt <= end (ISO days compare as strings)."""
        return self.read(spec).where(F.col(PARTITION_COLUMN).between(start, end))

    def days(self, spec: TableSpec) -> set[str]:
        """The partitions that hold data, read from table metadata (no data scan for Delta)."""
        if not self.exists(spec):
            return set()
        path = self.path(spec)
        if self.format == "delta":
            from deltalake import DeltaTable

            return {p[PARTITION_COLUMN] for p in DeltaTable(str(path)).partitions()}
        prefix = f"{PARTITION_COLUMN}="
        return {p.name[len(prefix):] for p in path.glob(f"{prefix}*")
                if any(p.glob("*.parquet"))}

    def missing_days(self, spec: TableSpec, days: Iterable[str]) -> list[str]:
        present = self.days(spec)
        return sorted(d for d in days if d not in present)

    def rows(self, spec: TableSpec, day: str | None = None) -> int:
        """Rows of the table, or of its partition `day`, from the Delta log's per-file
        record counts (no data scan); a count query where the log has none (Parquet)."""
        if not self.exists(spec):
            return 0
        if self.format == "delta":
            import pyarrow as pa
            from deltalake import DeltaTable

            files = pa.table(DeltaTable(str(self.path(spec))).get_add_actions(flatten=True))
            counts = files.column("num_records").to_pylist()
            if day is not None:
                in_day = files.column(f"partition.{PARTITION_COLUMN}").to_pylist()
                counts = [n for n, d in zip(counts, in_day, strict=True) if d == day]
            if None not in counts:
                return sum(counts)
        return (self.read(spec) if day is None else self.read_days(spec, day, day)).count()

    def root_problem(self) -> str | None:
        """Why the lake root cannot be the intended one (missing, or none of the catalog's
        tables), else None: a mistyped root must not read as "some days are missing"."""
        if not self.root.is_dir():
            return f"lake root {self.root} does not exist: check --lake or $LAKE_ROOT"
        if not any(self.exists(spec) for spec in ALL_TABLES):
            return f"lake root {self.root} has no tables: check --lake or $LAKE_ROOT"
        return None

    def missing_input(self, missing: Mapping[str, Sequence[str]], hint: str
                      ) -> FileNotFoundError:
        """The one-line error for input partitions that are not there (table -> days);
        tables missing the same days are named together."""
        problem = self.root_problem()
        if problem:
            return FileNotFoundError(problem)
        groups: dict[str, list[str]] = {}
        for table, days in missing.items():
            if days:
                groups.setdefault(day_ranges(days), []).append(table)
        named = "; ".join(f"{', '.join(tables)} for {days}" for days, tables in groups.items())
        return FileNotFoundError(f"missing {named}: {hint}")

    def missing_by_table(self, specs: Iterable[TableSpec], days: Iterable[str]
                         ) -> dict[str, list[str]]:
        """Table name -> the days of `days` it has no partition for (tables missing none
        are left out)."""
        days = list(days)
        missing = {spec.name: self.missing_days(spec, days) for spec in specs}
        return {name: found for name, found in missing.items() if found}

    def require_days(self, specs: Iterable[TableSpec], days: Iterable[str], hint: str) -> None:
        """Fail unless every table of `specs` has a partition for every day of `days`.

        The FileNotFoundError names each missing table with its days and ends with `hint`
        (what to run); a missing or empty lake root is reported as such instead.
        """
        missing = self.missing_by_table(specs, days)
        if missing:
            raise self.missing_input(missing, hint)

    # --- days as units (features.day_status) ------------------------------------------------

    def ledger(self) -> day_status.Ledger:
        return day_status.Ledger(self.root)

    @contextlib.contextmanager
    def staged(self, table: pa.Table, name: str) -> Iterator[DataFrame]:
        """A DataFrame over an Arrow table built in this process, staged as a Parquet file
        under the lake root: Spark Connect refuses a local relation over 128 MB (a
        bench-scale day of sessions is 143 MB), and a cluster reads the lake root anyway.
        The file is removed when the block ends (after the write that read it)."""
        folder = self.root / "_staging"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}-{uuid.uuid4().hex}.parquet"
        pq.write_table(table, path)
        try:
            yield self.spark.read.parquet(str(path))
        finally:
            path.unlink(missing_ok=True)

    def begin_day(self, job: str, day: str) -> None:
        """Mark `day` of `job` incomplete; call before the job's first write of the day."""
        day_status.begin(self.root, job, day)

    def version(self, spec: TableSpec) -> int | None:
        if self.format != "delta" or not self.exists(spec):
            return None
        from deltalake import DeltaTable

        return DeltaTable(str(self.path(spec))).version()

    def finish_day(self, job: str, day: str, outputs: Iterable[TableSpec],
                   counts: Mapping, inputs: Mapping[str, str]) -> day_status.DayStatus:
        """Record `day` of `job` complete, last. `inputs` ("job/day" -> token, as returned by
        `require_complete`) must still be current: an input re-run meanwhile fails here."""
        ledger = self.ledger()
        changed = sorted(k for k, token in inputs.items()
                         if ledger.token(*k.split("/", 1)) != token)
        if changed:
            raise RuntimeError(f"{job} {day}: inputs {', '.join(changed)} changed while it "
                               f"ran; run it again")
        return day_status.finish(self.root, job, day, counts,
                                 {spec.name: self.version(spec) for spec in outputs}, inputs)

    def ledger_record(self, job: str, day: str) -> dict | None:
        """The counts of the day record of `job` for `day`, or None when there is none."""
        record = day_status.load(self.root, job, day)
        return None if record is None else record.counts

    def complete_days(self, job: str) -> set[str]:
        return self.ledger().complete_days(job)

    def require_complete(self, job: str, tables: Sequence[TableSpec], days: Iterable[str],
                         hint: str) -> dict[str, str]:
        """Tokens ("job/day" -> token) of the complete days of `job`; a one-line
        FileNotFoundError otherwise, naming `tables` (the job's outputs the caller reads)
        with the days that are missing, incomplete (interrupted: partitions without a
        record) or stale (built from an input that was re-run), and ending with `hint`."""
        days = list(days)
        ledger = self.ledger()
        problems = ledger.problems(job, days)
        if problems:
            raise self.incomplete_input(job, tables, problems, hint)
        return {day_status.key(job, d): ledger.token(job, d) for d in days}

    def incomplete_input(self, job: str, tables: Sequence[TableSpec],
                         problems: Mapping[str, tuple[str, str]], hint: str
                         ) -> FileNotFoundError:
        return self.incomplete_inputs([(job, tables, problems)], hint)

    def incomplete_inputs(self, wanted: Sequence[tuple[str, Sequence[TableSpec],
                                                       Mapping[str, tuple[str, str]]]],
                          hint: str) -> FileNotFoundError:
        """The one-line error for days of jobs that are not complete: each (job, its tables
        named, day -> (problem, detail)); tables with the same problem on the same days are
        named together."""
        problem = self.root_problem()
        if problem:
            return FileNotFoundError(problem)
        groups: dict[tuple[str, str], list[str]] = {}
        for job, tables, problems in wanted:
            present = set().union(*(self.days(spec) for spec in tables)) if tables else set()
            kinds: dict[str, list[str]] = {}
            for d, (kind, _) in sorted(problems.items()):
                if kind == day_status.MISSING and d in present:
                    kind = day_status.INCOMPLETE
                kinds.setdefault(kind, []).append(d)
            for kind, found in kinds.items():
                what = {day_status.MISSING: "missing",
                        day_status.INCOMPLETE: f"incomplete (interrupted {job}, no day record)",
                        day_status.STALE: f"out of date ({problems[found[0]][1]})"}[kind]
                groups.setdefault((what, day_ranges(found)), []).extend(
                    spec.name for spec in tables)
        parts = [f"{what} {', '.join(names)} for {days}" for (what, days), names in groups.items()]
        return FileNotFoundError(f"{'; '.join(parts)}: {hint}")
