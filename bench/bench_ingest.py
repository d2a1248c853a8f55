"""Ingestion throughput (rows/s) of one simulated day in each landing format, on embedded Sail.

The simulator writes the day as JSON lines; the same day is converted into every format
`jobs.landing` reads (JSON lines, CSV, TSV and Parquet, each also gzipped), all four
sources alike, and each copy is ingested into a fresh lake. One line per format: seconds,
session lines in per second, throughput relative to JSON lines, and the seconds of that
spent reading the session files (`jobs.landing_columns.read_lines`: parsing, and for JSON
lines the row-local checks of the columnar path; timed apart, part of the ingest).

Rows that a format cannot hold keep their kind of fault where they can: a line that is not
a JSON object becomes a CSV/TSV row of one cell (unparsable there too), a string id stays a
string cell. Parquet columns are typed (ids int64, numbers float64, times and attributes
strings), so the rows whose values do not fit their column's type (about 0.4% of a
simulated day: unparsable lines, string ids) are left out of the Parquet files, and its
line counts are lower. `--jvm` adds the comparison of embedded Sail with JVM Spark local
(both writing Delta) on the JSON lines copy (slow: it starts a JVM). Both engines run the
same Python reader and judge; the engine only writes.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import shutil
import tempfile
import time
from pathlib import Path

from bench.common import jvm_step_seconds, report, timed
from jobs.simulator import SCALES, make_landing, read_summary

DAY = "2026-06-01"
SOURCES = ("watch_sessions", "users", "anchors", "live_schedule")
FORMATS = ("jsonl", "jsonl.gz", "csv", "csv.gz", "tsv", "tsv.gz", "parquet", "parquet.gz")


def _parse(lines: list[str]) -> list[dict | str]:
    """Each JSON line as its object, or the line itself when it is not one."""
    out: list[dict | str] = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            value = line
        out.append(value if isinstance(value, dict) else line)
    return out


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _delimited(rows: list[dict | str], columns: list[str], delimiter: str) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row] if isinstance(row, str) else [_cell(row.get(c)) for c in columns])
    return buffer.getvalue().encode()


_ARROW = {"id": ("int64", (int,)), "number": ("float64", (int, float))}


def _parquet(rows: list[dict | str], columns: dict[str, str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {c: _ARROW.get(kind, ("string", (str,))) for c, kind in columns.items()}
    schema = pa.schema([(c, arrow) for c, (arrow, _) in types.items()])

    def fits(row: dict | str) -> bool:
        return isinstance(row, dict) and all(
            row.get(c) is None or (isinstance(row[c], python) and not isinstance(row[c], bool))
            for c, (_, python) in types.items())

    kept = [row for row in rows if fits(row)]
    table = pa.Table.from_pylist([{c: row.get(c) for c in columns} for row in kept], schema)
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    return buffer.getvalue().to_pybytes()


def convert(json_landing: Path, out: Path, fmt: str) -> int:
    """A copy of the day of `json_landing` in format `fmt` under `out`; its size in bytes."""
    from features.validation import SOURCE_COLUMNS

    base, gz = fmt.removesuffix(".gz"), fmt.endswith(".gz")
    size = 0
    for source in SOURCES:
        folder = out / source / f"dt={DAY}"
        folder.mkdir(parents=True)
        for part in sorted((json_landing / source / f"dt={DAY}").iterdir()):
            data = part.read_bytes()
            if base != "jsonl":
                rows = _parse(data.decode().splitlines())
                columns = SOURCE_COLUMNS[source]
                data = (_parquet(rows, columns) if base == "parquet"
                        else _delimited(rows, list(columns), "," if base == "csv" else "\t"))
            if gz:
                data = gzip.compress(data, compresslevel=6)
            (folder / f"{part.name.split('.')[0]}.{fmt}").write_bytes(data)
            size += len(data)
    return size


def _ingest(lake, landing: Path) -> tuple[float, dict]:
    from jobs.ingest import ingest_day

    started = time.perf_counter()
    summary = ingest_day(lake, landing, DAY)
    return time.perf_counter() - started, summary


def _row(fmt: str, result: dict, base: dict | None) -> tuple[str, str]:
    rate = result["lines"] / result["seconds"]
    ratio = f"{rate / (base['lines'] / base['seconds']):5.2f}x" if base else "     -"
    return (fmt, f"{result['seconds']:7.2f}  {rate:>9,.0f}  {ratio}  "
                 f"{result['parse']:6.2f}  {result['lines']:>10,}  {result['accepted']:>10,}  "
                 f"{result['size'] / 1e6:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", default="bench", choices=sorted(SCALES),
                        help="simulator scale: tiny (~2k sessions), demo (~250k), "
                             "bench (~1M, the default)")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated subset of {','.join(FORMATS)}")
    parser.add_argument("--jvm", action="store_true",
                        help="also time JVM Spark local on the JSON lines copy (slow)")
    args = parser.parse_args()
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        parser.error(f"unknown formats {unknown}; choose from {', '.join(FORMATS)}")
    if "jsonl" in formats:  # the baseline first
        formats = ["jsonl", *(f for f in formats if f != "jsonl")]

    from jobs.engine import spark_session
    from jobs.lake import Lake
    from jobs.landing_columns import read_lines

    spark = spark_session("sail")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        simulated = make_landing(root / "simulated", DAY, 1, args.scale, seed=11)
        # warm-up: the engine's first ingest of the process on a tiny day, not timed
        warm = make_landing(root / "warm", DAY, 1, "tiny", seed=11)
        _ingest(Lake(root / "warm-lake", spark), warm)
        for fmt in formats:
            landing = root / f"landing-{fmt}"
            size = convert(simulated, landing, fmt)
            parse = timed(lambda landing=landing: read_lines(
                landing / "watch_sessions" / f"dt={DAY}", "watch_sessions", DAY))
            lake = Lake(root / f"lake-{fmt}", spark)
            seconds, summary = _ingest(lake, landing)
            sessions = summary["sources"]["watch_sessions"]
            results[fmt] = {"seconds": seconds, "parse": parse, "size": size,
                            "lines": sessions["lines"], "accepted": sessions["accepted"]}
            shutil.rmtree(landing)
            shutil.rmtree(lake.root)
        if args.jvm:
            lines = read_summary(simulated)["days"][DAY]["lines"]
            jvm = jvm_step_seconds("ingest", "--start", DAY, "--end", DAY, "--landing",
                                   str(simulated), "--lake", str(root / "jvm"))
            sail, _ = _ingest(Lake(root / "sail", spark), simulated)

    base = results.get("jsonl")
    rows = [("format", "seconds     rows/s  vs JSON  parse s    lines in    accepted       MB")]
    rows += [_row(fmt, result, base) for fmt, result in results.items()]
    report(f"ingestion of one day per landing format ({args.scale} scale, embedded Sail, Delta)",
           rows)
    print("rows/s: session lines in per second of the whole ingest (four sources); vs JSON: "
          "that throughput over JSON lines';\nparse s: reading the session files alone "
          "(jobs.landing_columns.read_lines), part of seconds; MB: the day's files in that "
          "format")
    if args.jvm:
        report(f"ingestion of one day ({lines:,} lines, {args.scale} scale), JSON lines", [
            ("Sail (Delta)", f"{sail:6.2f} s  {lines / sail:>12,.0f} rows/s"),
            ("JVM Spark local[2] (Delta)", f"{jvm:6.2f} s  {lines / jvm:>12,.0f} rows/s"),
            ("ratio Sail / JVM throughput", f"{jvm / sail:6.2f}x"),
        ])


if __name__ == "__main__":
    main()
