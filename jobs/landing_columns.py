r"""The columnar path of the landing reader: plain JSON lines parsed and judged in bulk.

Parsing and judging a day line by line in Python was most of an ingest (issue 19: about
90% of a bench-scale day). Most lines of a day are plain: one flat JSON object with only
the source's keys, each of the type the contract wants. Here a regular expression (RE2,
run by Arrow over the whole file as one array) picks the lines of that shape,
`pyarrow.json` parses them with an explicit schema, and Arrow compute checks the row-local
rules of `features.validation` on the parsed columns.

This path only ever answers "valid": every line it does not decide valid (bad UTF-8, a BOM,
bad JSON, a key twice, an extra key, a string id, a null, a time with another offset or
day, a value out of range, ...) goes to the per-record path of `jobs.landing`, which
judges it with its exact reason. So it may be conservative without changing any outcome;
`tests/jobs/test_landing.py` checks that both paths judge a day alike. CSV/TSV and Parquet
files take the per-record path whole.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from features.days import parse_day
from features.validation import (
    ID_COLUMN,
    MAX_ATTRIBUTE_CHARS,
    MAX_GIFT_VALUE,
    MAX_ID,
    MAX_WATCH_SECONDS,
    SOURCE_COLUMNS,
)
from jobs.landing import (
    LandingError,
    Record,
    count_lines,
    format_of,
    json_record,
    list_day_files,
    read_bytes,
    read_file,
)

# Value shapes a plain line may hold (JSON text, no escapes, no signs): anything else is
# left to the per-record path.
_WS = r"[ \t]*"
_INT = r"(?:0|[1-9][0-9]{0,15})"  # up to 16 digits: MAX_ID (2^53 - 1) has 16
# numbers far inside a double's range (a longer one, e.g. 1e400, fails pyarrow's parse)
_NUMBER = r"(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,17})?(?:[eE][-+]?[0-9]{1,2})?"
_STRING = r'"[^"\\\x00-\x1f]*"'
# epoch times as whole numbers of at most 11 digits (seconds) or 14 (milliseconds): their
# microseconds stay far inside int64
_EPOCH = {"epoch_s": r"(?:0|[1-9][0-9]{0,10})", "epoch_ms": r"(?:0|[1-9][0-9]{0,13})"}
# When a file's plain lines fail to parse at once (a key twice), they are parsed in chunks
# of CHUNK_LINES, a failing chunk halved down to MIN_CHUNK_LINES, then left to the per-record
# path whole.
CHUNK_LINES, MIN_CHUNK_LINES = 4096, 64


@dataclass
class Lines:
    """One source of one day: the lines judged valid here, the others as records.

    `valid`: columns `order` (file index << 32 | line), `line`, `text`, `size`, then the
    source's values, typed and checked (`value_schema`); `files`: the day's file names by
    index."""

    lines: int
    valid: pa.Table
    records: list[tuple[int, Record]]  # (file index, record), for the per-record path
    files: list[str]


def value_schema(source: str) -> pa.Schema:
    """The typed columns of a valid line of `source`, as the judge hands them on."""
    if source == "watch_sessions":
        return pa.schema([("user_id", pa.int64()), ("anchor_id", pa.int64()),
                          ("start_time", pa.timestamp("us", tz="UTC")),
                          ("watch_seconds", pa.float64()), ("gift_value", pa.float64())])
    id_key = ID_COLUMN[source]
    return pa.schema([(id_key, pa.int64()),
                      *[(c, pa.string()) for c in SOURCE_COLUMNS[source] if c != id_key]])


ROW_COLUMNS = pa.schema([("order", pa.int64()), ("line", pa.int64()), ("text", pa.string()),
                         ("size", pa.int64())])


def _shapes(source: str, time_format: str) -> dict[str, tuple[str, pa.DataType]]:
    """Key -> (value pattern, parse type) of a plain line."""
    if source == "watch_sessions":
        start = ((_STRING, pa.string()) if time_format == "iso"
                 else (_EPOCH[time_format], pa.int64()))
        return {"user_id": (_INT, pa.int64()), "anchor_id": (_INT, pa.int64()),
                "start_time": start, "watch_seconds": (_NUMBER, pa.float64()),
                "gift_value": (f"(?:{_NUMBER}|null)", pa.float64())}
    id_key = ID_COLUMN[source]
    return {c: ((_INT, pa.int64()) if c == id_key else (f"(?:{_STRING}|null)", pa.string()))
            for c in SOURCE_COLUMNS[source]}


def _plain_pattern(shapes: dict[str, tuple[str, pa.DataType]]) -> str:
    pair = (_WS + "(?:" + "|".join(f'"{re.escape(k)}"{_WS}:{_WS}{v}'
                                   for k, (v, _) in shapes.items()) + ")" + _WS)
    return rf"^{_WS}\{{{pair}(?:,{pair})*\}}{_WS}\r?\n?$"


def _line_array(data: bytes) -> tuple[pa.Array, np.ndarray]:
    """The lines of `data` as one Arrow string array (each value a line with its line end,
    no copy), and the start offsets (n + 1). Its UTF-8 is not checked here."""
    newlines = np.flatnonzero(np.frombuffer(data, np.uint8) == ord("\n")) + 1
    ends = newlines if data.endswith(b"\n") or not data else np.append(newlines, len(data))
    offsets = np.concatenate([[0], ends]).astype(np.int64)
    array = pa.Array.from_buffers(pa.large_string(), len(offsets) - 1,
                                  [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return array, offsets


def _parse(lines: pa.Array, schema: pa.Schema) -> tuple[pa.Table, np.ndarray]:
    """Parse JSON lines (each value one line ending in a newline); (table, positions kept).
    Lines of a chunk that fails at MIN_CHUNK_LINES are left out: they go per record."""
    options = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="error")
    tables, kept = [], []
    chunks = [(0, len(lines))]
    while chunks:
        start, stop = chunks.pop(0)
        if start == stop:
            continue
        part = lines.slice(start, stop - start)
        offsets = np.frombuffer(part.buffers()[1], np.int64)[part.offset:
                                                             part.offset + len(part) + 1]
        body = part.buffers()[2][offsets[0]:offsets[-1]]
        try:
            table = pj.read_json(pa.BufferReader(body), parse_options=options)
        except pa.ArrowInvalid:
            size = stop - start
            step = CHUNK_LINES if size > CHUNK_LINES else (size + 1) // 2
            if size > MIN_CHUNK_LINES:
                chunks[:0] = [(s, min(s + step, stop)) for s in range(start, stop, step)]
            continue
        if table.num_rows != stop - start:
            raise LandingError(f"{stop - start} plain lines parsed into {table.num_rows} rows")
        tables.append(table)
        kept.append(np.arange(start, stop))
    if not tables:
        return schema.empty_table(), np.zeros(0, np.int64)
    return pa.concat_tables(tables), np.concatenate(kept)


def _keep(array: pa.Array, mask: pa.Array) -> pa.Array:
    """`array.filter(mask)` (a copy of runs, faster than a take of strings); no copy when the
    mask keeps everything (the usual day, every line plain and valid)."""
    return array if pc.all(mask).as_py() else array.filter(mask)


def _iso_valid(times: pa.Array, day: str) -> tuple[pa.Array, pa.Array]:
    """(in-day mask, UTC timestamps) for ISO times that are plainly of `day` in UTC: the
    day itself, a valid clock time, `Z` or `+00:00`; any other shape goes per record."""
    pattern = (rf"^{re.escape(day)}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{{1,6}})?"
               r"(?:Z|\+00:00)$")
    ok = pc.fill_null(pc.match_substring_regex(times, pattern), False)
    safe = pc.if_else(ok, times, pa.scalar(f"{day}T00:00:00Z"))
    return ok, pc.cast(safe, pa.timestamp("us", tz="UTC"))


def _epoch_valid(times: pa.Array, day: str, time_format: str) -> tuple[pa.Array, pa.Array]:
    unit = 1000 if time_format == "epoch_ms" else 1_000_000
    start = parse_day(day)
    first = int((datetime(start.year, start.month, start.day, tzinfo=UTC)
                 - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    micros = pc.multiply(times, unit)
    ok = pc.and_(pc.greater_equal(micros, first), pc.less(micros, first + 86_400_000_000))
    return pc.fill_null(ok, False), pc.cast(micros, pa.timestamp("us", tz="UTC"))


def _between(values: pa.Array, low: float, high: float) -> pa.Array:
    return pc.fill_null(pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high)),
                        False)


def _judge_sessions(parsed: pa.Table, day: str, time_format: str) -> tuple[pa.Array, list]:
    """(valid mask, typed columns) of parsed plain session lines."""
    ids_ok = pc.and_(_between(parsed["user_id"], 0, MAX_ID),
                     _between(parsed["anchor_id"], 0, MAX_ID))
    times = parsed["start_time"].combine_chunks()
    in_day, start = (_iso_valid(times, day) if time_format == "iso"
                     else _epoch_valid(times, day, time_format))
    gift = pc.fill_null(parsed["gift_value"], 0.0)
    ok = pc.and_(pc.and_(ids_ok, in_day),
                 pc.and_(_between(parsed["watch_seconds"], 0, MAX_WATCH_SECONDS),
                         _between(gift, 0, MAX_GIFT_VALUE)))
    return ok, [parsed["user_id"], parsed["anchor_id"], start, parsed["watch_seconds"], gift]


def _day_ok(values: pa.Array) -> pa.Array:
    """YYYY-MM-DD that is a real date of year >= 1 (strptime alone rolls 02-30 over)."""
    shaped = pc.match_substring_regex(values, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
    safe = pc.if_else(shaped, values, pa.scalar("2000-01-01"))
    parsed = pc.strptime(safe, "%Y-%m-%d", "s", error_is_null=True)
    same = pc.equal(pc.strftime(parsed, "%Y-%m-%d"), safe)
    return pc.and_(pc.and_(shaped, pc.fill_null(same, False)),
                   pc.invert(pc.starts_with(values, "0000")))


def _judge_dimension(parsed: pa.Table, source: str) -> tuple[pa.Array, list]:
    columns = SOURCE_COLUMNS[source]
    id_key = ID_COLUMN[source]
    ok = _between(parsed[id_key], 0, MAX_ID)
    for name, kind in columns.items():
        if name == id_key:
            continue
        values = parsed[name].combine_chunks()
        good = (_day_ok(values) if kind == "day"
                else _between(pc.utf8_length(values), 1, MAX_ATTRIBUTE_CHARS))
        ok = pc.and_(ok, pc.or_(pc.is_null(values), pc.fill_null(good, False)))
    return ok, [parsed[c] for c in columns]


def _json_file(path: Path, index: int, source: str, day: str, time_format: str
               ) -> tuple[int, pa.Table, list[tuple[int, Record]]]:
    """(lines, valid rows, the other lines as records) of one JSON lines file."""
    _, gz = format_of(path.name)
    data = read_bytes(path, gz)
    total = count_lines(data)
    records: list[tuple[int, Record]] = []
    if data and not data.endswith(b"\n"):
        data += b"\n"  # every value of the line array then ends in a newline
    lines, offsets = _line_array(data)
    numbers = np.arange(1, len(lines) + 1, dtype=np.int64)
    try:
        lines.validate(full=True)  # UTF-8 of every line, in C
    except pa.ArrowInvalid:  # the undecodable lines go per record; the rest stay here
        raws, keep = data.split(b"\n")[:-1], []
        for number, raw in enumerate(raws, 1):
            try:
                raw.decode("utf-8")
                keep.append(number)
            except UnicodeDecodeError:
                records.append((index, json_record(path.name, number, raw.removesuffix(b"\r"))))
        data = b"".join(raws[n - 1] + b"\n" for n in keep)
        lines, offsets = _line_array(data)
        numbers = np.array(keep, np.int64)
    shapes = _shapes(source, time_format)
    plain = pc.match_substring_regex(lines, _plain_pattern(shapes))
    positions = pc.indices_nonzero(plain).to_numpy().astype(np.int64)
    plain_lines = _keep(lines, plain)
    parsed, kept = _parse(plain_lines, pa.schema([(k, t) for k, (_, t) in shapes.items()]))
    if len(kept) < len(plain_lines):  # a chunk failed to parse
        plain_lines, positions = plain_lines.take(kept), positions[kept]
    ok, values = (_judge_sessions(parsed, day, time_format) if source == "watch_sessions"
                  else _judge_dimension(parsed, source))
    mask = pa.chunked_array([ok], pa.bool_()).combine_chunks() if isinstance(ok, pa.Array) \
        else ok.combine_chunks()
    at = positions[pc.indices_nonzero(mask).to_numpy().astype(np.int64)]
    text = pc.utf8_rtrim(_keep(plain_lines, mask), characters="\r\n").cast(pa.string())
    valid = pa.table([pa.array((index << 32) + numbers[at]), pa.array(numbers[at]), text,
                      pc.binary_length(text).cast(pa.int64()),
                      *[pc.filter(v, mask) for v in values]],
                     schema=valid_schema(source))
    rest = np.ones(len(lines), bool)
    rest[at] = False
    for position in np.flatnonzero(rest):
        raw = data[offsets[position]:offsets[position + 1] - 1]  # without its newline
        records.append((index, json_record(path.name, int(numbers[position]),
                                           raw.removesuffix(b"\r"))))
    if len(valid) + len(records) != total:
        raise LandingError(f"{path}: {total} lines but {len(valid)} + {len(records)} read")
    return total, valid, records


def valid_schema(source: str) -> pa.Schema:
    """Columns of `Lines.valid`: where each line came from, its text, its values."""
    return pa.schema([*ROW_COLUMNS, *value_schema(source)])


def read_lines(folder: Path, source: str, day: str, time_format: str = "iso",
               columnar: bool = True) -> Lines:
    """Every line of a day folder: plain valid JSON lines as columns, the rest as records
    (every line when `columnar` is false: the reference the tests compare against)."""
    total, tables, records = 0, [], []
    files = list_day_files(folder)
    for index, path in enumerate(files):
        if columnar and format_of(path.name)[0] == "json":
            lines, valid, rest = _json_file(path, index, source, day, time_format)
            tables.append(valid)
            records.extend(rest)
        else:
            file_records = read_file(path, source, time_format)
            lines = len(file_records)
            records.extend((index, r) for r in file_records)
        total += lines
    schema = valid_schema(source)
    valid = pa.concat_tables(tables) if tables else schema.empty_table()
    return Lines(total, valid, records, [p.name for p in files])
