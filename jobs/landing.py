"""Landing files behind one interface: list a day folder explicitly, parse each file by its
format into records, count its lines apart from the parser. Engine-free (no Spark).

Formats, by file name: `.jsonl` / `.json` (JSON lines), `.csv` / `.tsv` (a header line,
then one record per line; empty cell = null), `.parquet`; any of them with `.gz`. A line
that cannot be read (bad UTF-8, a byte order mark, bad JSON, a key twice, a wrong cell
count) becomes a record with its reason; a file that cannot be read (bad gzip or Parquet,
a CSV header without the required columns) fails the day with a `LandingError` naming it.
A day folder holds regular files only: symlinks, subfolders, hidden or `_` files and
unknown suffixes are refused, all named in one error, never skipped.
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
_INT = r"^(0|-?[1-9][0-9]*)$"
_NUMBER = r"^-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"


class LandingError(ValueError):
    """A landing file or folder that cannot be read: the day fails, nothing is written."""


@dataclass(frozen=True)
class Record:
    """One line (or Parquet row) of a landing file.

    `text`: the line as read (for hashing and duplicate checks); `fields`: its values, or
    None with `reason` set when the line itself is bad; `size`: its length in bytes."""

    file: str
    line: int
    text: str
    fields: dict[str, Any] | None
    reason: str | None = None
    size: int = 0


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


def _read_bytes(path: Path, gz: bool) -> bytes:
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
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


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


def _typed_cell(kind: str, cell: str, time_format: str) -> Any:
    """A CSV cell as its declared type; a cell that does not parse stays a string (so the
    validator refuses it, as it refuses a JSON string id)."""
    if cell == "":
        return None
    if kind == "id" and re.match(_INT, cell):
        return int(cell)
    if (kind == "number" or (kind == "time" and time_format != "iso")) \
            and re.match(_NUMBER, cell):
        return int(cell) if re.match(_INT, cell) else float(cell)
    return cell


def _text_records(path: Path, data: bytes, fmt: str, source: str, time_format: str
                  ) -> Iterator[Record]:
    lines = _lines(data)
    if fmt == "json":
        for number, raw in enumerate(lines, 1):
            text, reason = _decode(raw)
            fields = None
            if reason is None:
                fields, reason = parse_json_line(text)
            yield Record(path.name, number, text, fields, reason, len(raw))
        return
    delimiter = "," if fmt == "csv" else "\t"
    if not lines:
        raise LandingError(f"{path}: empty {fmt.upper()} file without a header line")
    header_text, reason = _decode(lines[0])
    header = next(csv.reader([header_text], delimiter=delimiter), []) if not reason else []
    columns = SOURCE_COLUMNS[source]
    required = REQUIRED_SESSION_KEYS if source == "watch_sessions" else (
        next(iter(columns)),)
    missing = [c for c in required if c not in header]
    if reason or missing or len(set(header)) != len(header):
        raise LandingError(f"{path}: the header line must name the columns once each "
                           f"(needs {', '.join(required)}; got {header_text[:200]!r})")
    for number, raw in enumerate(lines[1:], 2):
        text, reason = _decode(raw)
        fields = None
        if reason is None:
            cells = next(csv.reader([text], delimiter=delimiter), [])
            if len(cells) != len(header):
                reason = "unparsable"
            else:
                fields = {name: _typed_cell(columns.get(name, "text"), cell, time_format)
                          for name, cell in zip(header, cells, strict=True)}
        yield Record(path.name, number, text, fields, reason, len(raw))


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
    must match the records (LandingError otherwise)."""
    fmt, gz = format_of(path.name)
    data = _read_bytes(path, gz)
    if fmt == "parquet":
        lines, records = _parquet_records(path, data)
    else:
        lines = count_lines(data) - (1 if fmt in ("csv", "tsv") and data else 0)
        records = list(_text_records(path, data, fmt, source, time_format))
    if len(records) != lines:
        raise LandingError(f"{path}: {lines} lines but {len(records)} records parsed")
    return records


def read_day(folder: Path, source: str, time_format: str = "iso") -> list[Record]:
    """Every record of a day folder, file by file in name order."""
    return [r for path in list_day_files(folder) for r in read_file(path, source, time_format)]


def capped_payload(record: Record) -> tuple[str, int, str]:
    """(payload of at most MAX_PAYLOAD_BYTES, original length in bytes, sha256 hex)."""
    encoded = record.text.encode("utf-8", errors="backslashreplace")
    payload = encoded[:MAX_PAYLOAD_BYTES].decode("utf-8", errors="ignore")
    return payload, record.size or len(encoded), hashlib.sha256(encoded).hexdigest()
