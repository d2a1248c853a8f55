r"""Landing files behind one interface: list a day folder explicitly, parse each file by its
format into records, count its lines apart from the parser. Engine-free (no Spark). A day
folder is read by `jobs.landing_columns.read_lines`: plain JSON lines in bulk there, every
other line and format through the per-record reader here (the reference both are tested
against).

Formats, by file name: `.jsonl` / `.json` (JSON lines), `.csv` / `.tsv` (a header record,
then one record per row; empty cell = null), `.parquet`; any of them with `.gz`. A line
that cannot be read (bad UTF-8, a byte order mark, bad JSON, a key twice, a wrong cell
count) becomes a record with its reason; a file that cannot be read (bad gzip or Parquet,
a CSV header without the required columns) fails the day with a `LandingError` naming it.
A day folder holds regular files only: symlinks, subfolders, hidden or `_` files and
unknown suffixes are refused, all named in one error, never skipped.

CSV/TSV records follow the quoting rules of Python's csv module (default dialect, `,` or
a tab): a field that starts with `"` runs to the next lone `"` (`""` is a quote inside it)
and may hold delimiters and newlines, so one record may span several physical lines; a
`"` anywhere else is an ordinary character. Records end at `\n` or `\r\n` outside quotes
(a lone `\r` is no line end: csv refuses it outside quotes, so that record is
`unparsable`). Each record is decoded on its own, so bad UTF-8 or a byte order mark costs
only that record (`bad_encoding`); a record with a wrong cell count is `unparsable`; its
`line` is its first physical line. A file that ends inside a quoted field (an unterminated
quote) fails the day with a `LandingError` naming the file and the line the quote opened
on: under the csv rules every line after a stray opening quote belongs to that one field,
so quarantining it as one record would silently swallow the rest of the file.

Lines in. For JSON lines a record is a physical line. For CSV/TSV, "lines in" (the
`lines` of the ingest summary, checked against accepted + quarantined) counts records
(header excluded), not physical lines. Two checks keep that count independent of the
parser: the records' physical line spans must cover the file's lines (newline bytes
counted on the raw bytes) exactly once each, in order, and `count_csv_records`, a separate
scan with a regular expression, must find as many records as the parser made.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import logging
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.days import parse_day
from features.validation import (
    MAX_PAYLOAD_BYTES,
    REQUIRED_SESSION_KEYS,
    SOURCE_COLUMNS,
)

log = logging.getLogger(__name__)

TEXT_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".tsv": "tsv"}
FORMATS = {**TEXT_FORMATS, ".parquet": "parquet"}
# whole cells (fullmatch: `$` would also match before a final newline, which a quoted
# CSV cell may end with)
_INT = re.compile(r"0|-?[1-9][0-9]*")
_NUMBER = re.compile(r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?")


class LandingError(ValueError):
    """A landing file or folder that cannot be read: the day fails, nothing is written."""


@dataclass(frozen=True)
class Record:
    """One line (or CSV record, or Parquet row) of a landing file.

    `text`: the record as read (for hashing and duplicate checks); `fields`: its values, or
    None with `reason` set when the record itself is bad; `size`: its length in bytes;
    `line`: its first physical line; `lines`: the physical lines it spans (a CSV record
    with a quoted newline spans several; 1 otherwise)."""

    file: str
    line: int
    text: str
    fields: dict[str, Any] | None
    reason: str | None = None
    size: int = 0
    lines: int = 1


def format_of(name: str) -> tuple[str, bool] | None:
    """(format, gzipped) from a file name, or None for an unknown suffix."""
    gz = name.endswith(".gz")
    stem = name[:-3] if gz else name
    for suffix, fmt in FORMATS.items():
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return fmt, gz
    return None


def list_day_files(folder: Path) -> list[Path]:
    """The data files of a day folder, sorted; LandingError naming every entry refused."""
    if folder.is_symlink():
        raise LandingError(f"{folder} is a symlink: landing day folders must be real folders")
    refused = []
    files = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            refused.append(f"{entry.name} (symlink)")
        elif entry.is_dir():
            refused.append(f"{entry.name}/ (subfolder)")
        elif entry.name.startswith((".", "_")):
            refused.append(f"{entry.name} (hidden or _ file)")
        elif not entry.is_file():
            refused.append(f"{entry.name} (not a regular file)")
        elif format_of(entry.name) is None:
            refused.append(f"{entry.name} (unknown format; use "
                           f"{', '.join(FORMATS)}, optionally .gz)")
        else:
            files.append(entry)
    if refused:
        raise LandingError(f"{folder}: refusing {', '.join(refused)}: a day folder holds only "
                           f"data files; move the others out and re-run")
    return files


def day_folders(source_root: Path) -> dict[str, Path]:
    """`dt=YYYY-MM-DD` folders of a source by day; any other entry is left out with a
    warning naming it (e.g. `dt=2025-12-31.bak`)."""
    found, ignored = {}, []
    if source_root.is_dir():
        for entry in sorted(source_root.iterdir()):
            name = entry.name
            try:
                if not (name.startswith("dt=") and entry.is_dir() and not entry.is_symlink()):
                    raise ValueError(name)
                found[parse_day(name[3:]).isoformat()] = entry
            except ValueError:
                ignored.append(name)
    if ignored:
        log.warning("%s: ignoring entries that are not day folders dt=YYYY-MM-DD: %s",
                    source_root, ", ".join(ignored))
    return found


def read_bytes(path: Path, gz: bool) -> bytes:
    """The bytes of a landing file, gunzipped; LandingError for a bad gzip file."""
    data = path.read_bytes()
    if not gz:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise LandingError(f"{path}: not a valid gzip file ({error}): replace it and "
                           f"re-run") from None


def count_lines(data: bytes) -> int:
    """Lines of a text file: newline-terminated, plus a last line without one."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _lines(data: bytes) -> list[bytes]:
    """Physical lines without their line ends (LF or CRLF)."""
    return [line[:-1] if line.endswith(b"\r") else line for line in _raw_lines(data)]


def _raw_lines(data: bytes) -> list[bytes]:
    """Physical lines without their LF (a CR before it is kept)."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


_QUOTE = ord('"')
# Quoting states of csv's reader (default dialect, strict=False): at the start of a field,
# in an unquoted field, in a quoted field, just after a quote inside a quoted field.
_FIELD_START, _UNQUOTED, _QUOTED, _QUOTE_IN_QUOTED = range(4)


def _quote_state(line: bytes, delimiter: int, state: int) -> int:
    """The csv reader's state after `line` (one physical line without its LF) from `state`."""
    for c in line:
        if state == _QUOTED:
            if c == _QUOTE:
                state = _QUOTE_IN_QUOTED
        elif state == _QUOTE_IN_QUOTED:  # "" is a quote; anything else closed the field
            state = _QUOTED if c == _QUOTE else _FIELD_START if c == delimiter else _UNQUOTED
        elif c == delimiter:
            state = _FIELD_START
        elif state == _FIELD_START:
            state = _QUOTED if c == _QUOTE else _UNQUOTED
    return state


def _simple_record(delimiter: str) -> re.Pattern[bytes]:
    d = re.escape(delimiter.encode())
    field = rb'(?:"(?:[^"]|"")*+"|[^"' + d + rb'\n]*)'
    return re.compile(field + rb"(?:" + d + field + rb")*+\r?")


# A whole line of fields each quoted whole or free of quotes: a record that ends on its
# line (the usual quoted CSV line, judged in C before the state machine runs in Python).
_SIMPLE_RECORDS = {",": _simple_record(","), "\t": _simple_record("\t")}


def _csv_split(path: Path, data: bytes, delimiter: str
               ) -> Iterator[tuple[int, int, bytes]]:
    """(first line, physical lines, raw bytes without the line end) of each record: a
    newline inside a quoted field continues the record (csv's rules). LandingError when the
    file ends inside a quoted field. A line without a quote, or a simple record starting a
    record, is one record (fast paths); other lines go through `_quote_state`."""
    d, simple = ord(delimiter), _SIMPLE_RECORDS[delimiter].fullmatch
    lines = _raw_lines(data)
    first, state = 0, _FIELD_START
    for index, line in enumerate(lines):
        if b'"' not in line:  # the state cannot change between quoted and not
            end = state
        elif state == _FIELD_START and simple(line):
            end = _FIELD_START
        else:
            end = _quote_state(line, d, state)
        if end == _QUOTED:  # the newline is inside a quoted field: the record goes on
            state = _QUOTED
            continue
        raw = line if first == index else b"\n".join(lines[first:index + 1])
        yield first + 1, index + 1 - first, raw[:-1] if raw.endswith(b"\r") else raw
        first, state = index + 1, _FIELD_START
    if state == _QUOTED:
        raise LandingError(f"{path}: line {first + 1}: a quoted field is never closed (the "
                           f"file ends inside quotes, so every line after it would be one "
                           f"field): fix the quoting of that line and re-run")


def _quoted_field(delimiter: str) -> re.Pattern[bytes]:
    d = re.escape(delimiter.encode())
    # a quote at the start of the data, a line or a field (not inside an unquoted field),
    # then quoted content taken possessively (`""` is a quote), then the closing quote
    return re.compile(rb'"(?<![^' + d + rb'\n]")(?:[^"]|"")*+"')


_QUOTED_FIELDS = {",": _quoted_field(","), "\t": _quoted_field("\t")}


def count_csv_records(data: bytes, delimiter: str = ",") -> int:
    """Records of a CSV/TSV file, header included, by a scan separate from the parser:
    physical lines less the newlines inside quoted fields (csv's quoting rules, as a regular
    expression over the raw bytes)."""
    if b'"' not in data:
        return count_lines(data)
    inside = data.count(b"\n") - _QUOTED_FIELDS[delimiter].sub(b"", data).count(b"\n")
    return count_lines(data) - inside


def _decode(raw: bytes) -> tuple[str, str | None]:
    """(text, reason): reason `bad_encoding` for invalid UTF-8 or a BOM."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", errors="backslashreplace"), "bad_encoding"
    return text, "bad_encoding" if text.startswith("\ufeff") else None


class _DuplicateKey(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _DuplicateKey()
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN, Infinity, -Infinity


_DECODER = json.JSONDecoder(parse_constant=_no_constant)
_STRICT_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_no_constant)
# A key ends with a quote, optional blanks and a colon: an object naming a key twice has
# more of these than it has keys (string values holding `":` only cause a slower re-check).
_KEY_END = re.compile(r'"\s*:')


def parse_json_line(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(object, None), or (None, reason) for a line that is not one JSON object with
    distinct keys. The C parser runs first; the duplicate-key hook only for a line with
    more key endings than keys."""
    try:
        value = _DECODER.decode(text)
        if isinstance(value, dict) and len(_KEY_END.findall(text)) > len(value):
            value = _STRICT_DECODER.decode(text)
    except _DuplicateKey:
        return None, "duplicate_key"
    except (ValueError, RecursionError):
        return None, "unparsable"
    return (value, None) if isinstance(value, dict) else (None, "unparsable")


def json_record(file_name: str, number: int, raw: bytes) -> Record:
    """The record of one JSON line (`raw`: the line without its line end)."""
    text, reason = _decode(raw)
    fields = None
    if reason is None:
        fields, reason = parse_json_line(text)
    return Record(file_name, number, text, fields, reason, len(raw))


def _typed_cell(kind: str, cell: str, time_format: str) -> Any:
    """A CSV cell as its declared type; a cell that does not parse stays a string (so the
    validator refuses it, as it refuses a JSON string id)."""
    if cell == "":
        return None
    if kind == "id" and _INT.fullmatch(cell):
        return int(cell)
    if (kind == "number" or (kind == "time" and time_format != "iso")) \
            and _NUMBER.fullmatch(cell):
        return int(cell) if _INT.fullmatch(cell) else float(cell)
    return cell


def _text_records(path: Path, data: bytes, fmt: str, source: str, time_format: str
                  ) -> Iterator[Record]:
    file_name = path.name
    if fmt == "json":
        for number, raw in enumerate(_lines(data), 1):
            yield json_record(file_name, number, raw)
        return
    # CSV/TSV: the header record comes first (reason "header"; read_file counts it, then
    # drops it), then one Record per csv record
    delimiter = "," if fmt == "csv" else "\t"
    records = _csv_split(path, data, delimiter)
    head = next(records, None)
    if head is None:  # a 0-byte file: no activity, like an empty JSON lines file
        return
    header_text, reason = _decode(head[2])
    header = [] if reason else (_csv_row(header_text, delimiter) or [])
    columns = SOURCE_COLUMNS[source]
    required = REQUIRED_SESSION_KEYS if source == "watch_sessions" else (
        next(iter(columns)),)
    missing = [c for c in required if c not in header]
    if reason or missing or len(set(header)) != len(header):
        problem = ("starts with a byte order mark or is not UTF-8; save it as UTF-8 without "
                   "a BOM" if reason else "must name the columns once each")
        raise LandingError(f"{path}: the header line {problem} (needs {', '.join(required)};"
                           f" got {header_text[:200]!r})")
    yield Record(file_name, head[0], header_text, None, "header", len(head[2]), head[1])
    for number, span, raw in records:
        text, reason = _decode(raw)
        fields = None
        if reason is None:
            cells = _csv_row(text, delimiter)
            if cells is None or len(cells) != len(header):
                reason = "unparsable"
            else:
                fields = {name: _typed_cell(columns.get(name, "text"), cell, time_format)
                          for name, cell in zip(header, cells, strict=True)}
        yield Record(file_name, number, text, fields, reason, len(raw), span)


def _csv_row(text: str, delimiter: str) -> list[str] | None:
    """The cells of one record, or None when csv refuses it or reads other than one row
    (a lone CR outside quotes, a field over csv's size limit)."""
    try:
        rows = list(csv.reader([text], delimiter=delimiter))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


def _parquet_records(path: Path, data: bytes) -> tuple[int, list[Record]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(io.BytesIO(data))
        rows = handle.metadata.num_rows
        table = handle.read()
    except (pa.ArrowException, OSError) as error:
        raise LandingError(f"{path}: not a readable Parquet file ({error}): replace it and "
                           f"re-run") from None
    records = []
    for number, row in enumerate(table.to_pylist(), 1):
        text = json.dumps(row, default=str)
        records.append(Record(path.name, number, text, row, None, len(text.encode())))
    return rows, records


def read_file(path: Path, source: str, time_format: str = "iso") -> list[Record]:
    """Every record of one landing file; its lines are counted apart from the parser and
    must match the records (LandingError otherwise): text records must cover the physical
    lines exactly once, in order, and CSV/TSV records must number as many as
    `count_csv_records` finds."""
    fmt, gz = format_of(path.name)
    data = read_bytes(path, gz)
    if fmt == "parquet":
        lines, records = _parquet_records(path, data)
        if len(records) != lines:
            raise LandingError(f"{path}: {lines} rows but {len(records)} records read")
        return records
    records = list(_text_records(path, data, fmt, source, time_format))
    lines, covered = count_lines(data), 0
    for record in records:
        if record.line != covered + 1 or record.lines < 1:
            break
        covered += record.lines
    if covered != lines:
        raise LandingError(f"{path}: {lines} lines but the records parsed cover {covered} "
                           f"of them in order")
    if fmt in ("csv", "tsv"):
        expected = count_csv_records(data, "," if fmt == "csv" else "\t")
        if len(records) != expected:
            raise LandingError(f"{path}: {expected} {fmt.upper()} records (header included) "
                               f"but {len(records)} parsed")
        records = records[1:]  # the header
    return records


def capped_payload(text: str, size: int = 0) -> tuple[str, int, str]:
    """(payload of at most MAX_PAYLOAD_BYTES, original length in bytes (`size` when the
    record knows it), sha256 hex) of a rejected record's text."""
    encoded = text.encode("utf-8", errors="backslashreplace")
    payload = encoded[:MAX_PAYLOAD_BYTES].decode("utf-8", errors="ignore")
    return payload, size or len(encoded), hashlib.sha256(encoded).hexdigest()
