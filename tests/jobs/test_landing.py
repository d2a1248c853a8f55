"""Landing sources behind one interface: formats, explicit file listing, line-level rejects,
capped quarantine payloads, and bad files refused before anything of the day is written."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features import day_status
from features.catalog import QUARANTINE, RAW_WATCH_SESSIONS, USERS
from features.validation import MAX_PAYLOAD_BYTES
from jobs import ingest, landing
from jobs.landing import LandingError

DAY = "2026-07-02"
T0 = "2026-07-02T10:00:00Z"
EPOCH_T0 = 1782986400  # 2026-07-02T10:00:00Z


def _dims(root: Path, day: str = DAY, users=(1, 2, 3), anchors=(10, 11)) -> None:
    for source, lines in (
            ("users", [json.dumps({"user_id": u, "signup_date": day}) for u in users]),
            ("anchors", [json.dumps({"anchor_id": a, "category": "music"}) for a in anchors]),
            ("live_schedule", [json.dumps({"anchor_id": a}) for a in anchors])):
        folder = root / source / f"dt={day}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "part-0.jsonl").write_text("\n".join(lines) + "\n")


def _sessions(root: Path, day: str = DAY) -> Path:
    folder = root / "watch_sessions" / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _session(user: int, seconds: float = 40.0, start: str = T0) -> dict:
    return {"user_id": user, "anchor_id": 10, "start_time": start, "watch_seconds": seconds}


@pytest.mark.engine
def test_every_format_gives_the_same_rows(lake, tmp_path):
    """JSON lines, gzipped JSON lines, CSV, TSV and Parquet (gzipped too), mixed in one day
    folder: one session each, all accepted; a CSV cell " 11 " is no integer."""
    root = tmp_path / "landing"
    _dims(root)
    folder = _sessions(root)
    (folder / "a.jsonl").write_text(json.dumps(_session(1)) + "\n")
    (folder / "b.json.gz").write_bytes(gzip.compress(json.dumps(_session(2)).encode()))
    (folder / "c.csv").write_text("user_id,anchor_id,start_time,watch_seconds,gift_value\n"
                                  f"3,10,{T0},41.5,\n 11 ,10,{T0},5,\n")
    (folder / "d.tsv.gz").write_bytes(gzip.compress(
        f"anchor_id\tuser_id\tstart_time\twatch_seconds\n10\t1\t{T0}\t42\n".encode()))
    table = pa.table({"user_id": pa.array([2], pa.int64()), "anchor_id": pa.array([11]),
                      "start_time": pa.array([T0]), "watch_seconds": pa.array([43.0])})
    pq.write_table(table, folder / "e.parquet")
    buffer = pa.BufferOutputStream()
    pq.write_table(table.set_column(3, "watch_seconds", pa.array([44.0])), buffer)
    (folder / "f.parquet.gz").write_bytes(gzip.compress(buffer.getvalue().to_pybytes()))
    for empty in ("g.csv", "h.tsv", "i.jsonl"):  # 0 bytes: a source with no activity
        (folder / empty).write_bytes(b"")
    (folder / "j.csv.gz").write_bytes(gzip.compress(b""))

    summary = ingest.ingest_day(lake, root, DAY)
    assert summary["sources"]["watch_sessions"] == {
        "lines": 7, "accepted": 6, "quarantined": {"malformed_id": 1}}
    rows = sorted((r.user_id, r.anchor_id, r.watch_seconds) for r in
                  lake.read_days(RAW_WATCH_SESSIONS, DAY, DAY).collect())
    assert rows == [(1, 10, 40.0), (1, 10, 42.0), (2, 10, 40.0), (2, 11, 43.0),
                    (2, 11, 44.0), (3, 10, 41.5)]
    bad = lake.read_days(QUARANTINE, DAY, DAY).collect()
    assert [(r.file, r.line, r.payload) for r in bad] == [("c.csv", 3, f" 11 ,10,{T0},5,")]


@pytest.mark.engine
def test_epoch_timestamps_are_declared_not_guessed(lake, tmp_path):
    root = tmp_path / "landing"
    _dims(root)
    (_sessions(root) / "a.jsonl").write_text(
        json.dumps(_session(1, start=EPOCH_T0)) + "\n"
        + json.dumps(_session(2, start=EPOCH_T0 * 1000)) + "\n")
    summary = ingest.ingest_day(lake, root, DAY, time_format="epoch_s")
    # epoch_s: the second line (milliseconds) would be in year 58470: no timestamp
    assert summary["sources"]["watch_sessions"]["quarantined"] == {"bad_timestamp": 1}
    assert str(lake.read_days(RAW_WATCH_SESSIONS, DAY, DAY).first().start_time) == \
        "2026-07-02 10:00:00"
    summary = ingest.ingest_day(lake, root, DAY, time_format="epoch_ms")
    # epoch_ms: the first line (seconds) is on 1970-01-21
    assert summary["sources"]["watch_sessions"]["quarantined"] == {"out_of_day": 1}
    assert lake.read_days(RAW_WATCH_SESSIONS, DAY, DAY).first().user_id == 2
    # as ISO (the default) neither number is a timestamp
    summary = ingest.ingest_day(lake, root, DAY)
    assert summary["sources"]["watch_sessions"]["quarantined"] == {"bad_timestamp": 2}


@pytest.mark.unit
def test_a_day_folder_holds_data_files_only(tmp_path):
    root = tmp_path / "landing"
    folder = _sessions(root)
    outside = tmp_path / "secret.jsonl"
    outside.write_text("{}\n")
    (folder / "ok.jsonl").write_text("{}\n")
    (folder / "link.jsonl").symlink_to(outside)
    (folder / "hour=01").mkdir()
    (folder / "_SUCCESS").write_text("")
    (folder / ".part.crc").write_text("")
    (folder / "notes.txt").write_text("")
    with pytest.raises(LandingError) as refused:
        landing.list_day_files(folder)
    message = str(refused.value)
    for name in ("link.jsonl (symlink)", "hour=01/ (subfolder)", "_SUCCESS (hidden or _ file)",
                 ".part.crc (hidden or _ file)", "notes.txt (unknown format"):
        assert name in message
    assert "\n" not in message and "ok.jsonl" not in message


@pytest.mark.engine
@pytest.mark.parametrize("name, content, fragment", [
    ("bad.jsonl.gz", b"not gzip at all", "not a valid gzip file"),
    ("bad.parquet", b"PAR1 nope", "not a readable Parquet file"),
    ("bad.csv", b"user,anchor\n1,2\n", "the header line must name the columns"),
    ("_hidden.jsonl", b"{}\n", "_hidden.jsonl (hidden or _ file)"),
    ("bom.csv", b"\xef\xbb\xbfuser_id,anchor_id,start_time,watch_seconds\n",
     "the header line starts with a byte order mark"),
    # the quote opened on line 3 is never closed: lines 3.. would be one field
    ("open.csv", f"user_id,anchor_id,start_time,watch_seconds\n1,10,{T0},1\n"
                 f'2,"10,{T0},1\n3,10,{T0},1\n'.encode(), "line 3: a quoted field is never closed"),
    ("open.tsv.gz", gzip.compress(f'user_id\tanchor_id\tstart_time\twatch_seconds\n'
                                  f'1\t10\t{T0}\t"1'.encode(), mtime=0),
     "line 2: a quoted field is never closed"),
])
def test_a_bad_file_fails_the_day_before_anything_is_written(lake, tmp_path, capsys, name,
                                                            content, fragment):
    root = tmp_path / "landing"
    _dims(root)
    folder = _sessions(root)
    (folder / "good.jsonl").write_text(json.dumps(_session(1)) + "\n")
    (folder / name).write_bytes(content)
    code = ingest.main(["--date", DAY, "--landing", str(root), "--lake", str(lake.root),
                        "--engine", "sail"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("ingest: ") and name in err and fragment in err
    assert not lake.exists(USERS)  # the dimension tables were not committed either
    assert day_status.load(lake.root, "ingest", DAY) is None


@pytest.mark.engine
def test_bad_lines_are_quarantined_with_a_capped_payload(lake, tmp_path):
    root = tmp_path / "landing"
    _dims(root)
    huge = "x" * (3 * MAX_PAYLOAD_BYTES)
    lines = [json.dumps(_session(1)).encode(), huge.encode(),
             b'{"user_id": 1, "user_id": 2}', b"\xef\xbb\xbf" + json.dumps(_session(2)).encode(),
             b'{"user_id": "\xff"}']
    (_sessions(root) / "a.jsonl").write_bytes(b"\r\n".join(lines))  # CRLF, no final newline
    summary = ingest.ingest_day(lake, root, DAY)
    assert summary["sources"]["watch_sessions"] == {
        "lines": 5, "accepted": 1,
        "quarantined": {"bad_encoding": 2, "duplicate_key": 1, "unparsable": 1}}
    row = lake.read_days(QUARANTINE, DAY, DAY).where("reason = 'unparsable'").first()
    assert len(row.payload.encode()) == MAX_PAYLOAD_BYTES and row.payload_bytes == len(huge)
    assert row.payload_sha256 == hashlib.sha256(huge.encode()).hexdigest()
    assert (row.file, row.line) == ("a.jsonl", 2)


@pytest.mark.engine
def test_known_ids_come_from_day_folders_only(lake, tmp_path, caplog):
    """A `dt=2026-07-01.bak` folder sorts before the day as a string: it is no day."""
    root = tmp_path / "landing"
    _dims(root)
    _dims(root, "2026-07-01.bak", users=(7,))
    (_sessions(root) / "a.jsonl").write_text(json.dumps(_session(7)) + "\n")
    with caplog.at_level(logging.WARNING, logger="jobs.landing"):
        summary = ingest.ingest_day(lake, root, DAY)
    assert summary["sources"]["watch_sessions"]["quarantined"] == {"unknown_user": 1}
    assert "dt=2026-07-01.bak" in caplog.text


@pytest.mark.engine
def test_dimension_attributes_are_typed(lake, tmp_path):
    root = tmp_path / "landing"
    _dims(root)
    (root / "users" / f"dt={DAY}" / "part-1.jsonl").write_text("\n".join(json.dumps(u) for u in (
        {"user_id": 4, "signup_date": "x"}, {"user_id": 5, "city": 3},
        {"user_id": 6, "gender": "y" * 65}, {"user_id": "8"}, {"user_id": 9, "device": "ios"},
    )) + "\n")
    _sessions(root)
    summary = ingest.ingest_day(lake, root, DAY)
    assert summary["sources"]["users"] == {
        "lines": 8, "accepted": 4, "quarantined": {"bad_attribute": 3, "malformed_id": 1}}


CSV_HEADER = "user_id,anchor_id,start_time,watch_seconds,note"


@pytest.mark.unit
def test_csv_records_may_span_physical_lines(tmp_path):
    """A quoted field holds delimiters, newlines (LF or CRLF) and doubled quotes; a quote
    inside an unquoted field is an ordinary character; `line` is a record's first line."""
    path = tmp_path / "a.csv"
    path.write_bytes("\n".join([
        CSV_HEADER,
        f'1,10,{T0},40,"two\nlines"',
        f'2,10,{T0},41,"say ""hi"", then\r\nbye"',
        f'3,10,{T0},42,5" screen',
        "1,10",
    ]).encode() + b"\n")
    records = landing.read_file(path, "watch_sessions")
    assert [(r.line, r.lines, r.reason) for r in records] == [
        (2, 2, None), (4, 2, None), (6, 1, None), (7, 1, "unparsable")]
    assert [r.fields["note"] for r in records[:3]] == [
        "two\nlines", 'say "hi", then\r\nbye', '5" screen']
    assert records[0].fields["user_id"] == 1 and records[0].text.endswith('"two\nlines"')


@pytest.mark.unit
def test_csv_record_boundaries_and_cells_are_the_csv_modules(tmp_path):
    """Seeded random files of quotes, delimiters, LF and CRLF: whenever the file does not end
    inside quotes, the parser's records and the separate count agree with csv.reader over
    the whole text (the records' cells included)."""
    import csv
    import io
    import random

    rng = random.Random(14)
    compared = 0
    for delimiter in (",", "\t"):
        alphabet = ["a", "é", delimiter, '"', "\n", "\r\n"]
        for _ in range(3000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 24)))
            data = text.encode()
            try:
                records = list(landing._csv_split(Path("x"), data, delimiter))
            except LandingError as error:
                assert "a quoted field is never closed" in str(error)
                continue
            assert landing.count_csv_records(data, delimiter) == len(records), text
            assert sum(span for _, span, _ in records) == landing.count_lines(data)
            expected = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
            cells = [landing._csv_row(raw.decode(), delimiter) for _, _, raw in records]
            assert cells == expected, text
            compared += 1
    assert compared > 3000


@pytest.mark.unit
def test_csv_lines_in_are_counted_apart_from_the_parser(tmp_path, monkeypatch):
    """A parser that split records at every newline (as before quoted newlines were read)
    or that lost a record is caught by the separate counts, naming the file."""
    path = tmp_path / "a.csv"
    path.write_text(f'{CSV_HEADER}\n1,10,{T0},40,"two\nlines"\n2,10,{T0},41,x\n')
    assert len(landing.read_file(path, "watch_sessions")) == 2
    split = landing._csv_split

    def by_line(_path, data, _delimiter):
        for number, raw in enumerate(landing._lines(data), 1):
            yield number, 1, raw

    def losing(*args):
        yield from (record for record in split(*args) if record[0] != 2)

    monkeypatch.setattr(landing, "_csv_split", by_line)
    with pytest.raises(LandingError, match=r"a\.csv: 3 CSV records \(header included\) but "
                                           r"4 parsed"):
        landing.read_file(path, "watch_sessions")
    monkeypatch.setattr(landing, "_csv_split", losing)
    with pytest.raises(LandingError, match=r"a\.csv: 4 lines but the records parsed cover 1 "):
        landing.read_file(path, "watch_sessions")


@pytest.mark.engine
def test_quoted_newlines_in_csv_and_tsv_are_counted_per_record(lake, tmp_path):
    """CSV, gzipped TSV with CRLF and gzipped CSV without a final newline: records spanning
    lines are accepted or quarantined whole, by reason; lines in count records. A cell
    ending with a quoted newline is no number and no id."""
    root = tmp_path / "landing"
    _dims(root)
    folder = _sessions(root)
    (folder / "a.csv").write_bytes(b"\n".join([
        CSV_HEADER.encode(),
        f'1,10,{T0},40,"two\nlines"'.encode(),                     # lines 2-3: accepted
        f'2,10,{T0},41,"a ""quoted"", comma"'.encode(),              # line 4: accepted
        b"\xef\xbb\xbf" + f'3,10,{T0},42,"bom\nrecord"'.encode(),   # 5-6: bad_encoding
        f'1,11,{T0},43,"bad '.encode() + b'\xff\nutf\n8"',          # 7-9: bad_encoding
        b'2,11,"x\ny"',                                              # 10-11: unparsable
        f'3,11,{T0},45,5" screen'.encode(),                          # line 12: accepted
    ]) + b"\n")
    (folder / "b.tsv.gz").write_bytes(gzip.compress("\r\n".join([
        "anchor_id\tuser_id\tstart_time\twatch_seconds\tnote",
        f'10\t3\t{T0}\t46\t"tab\tand\r\nnewline"',                  # lines 2-3: accepted
        f'11\t1\t{T0}\t47\t"x"',                                      # line 4: accepted
    ]).encode() + b"\r\n"))
    (folder / "c.csv.gz").write_bytes(gzip.compress(
        f'user_id,anchor_id,start_time,watch_seconds\n"1",10,{T0},48\n'
        f'2,10,{T0},"49\n"\n'                                        # 3-4: bad_duration
        f'"3\n",10,{T0},50'.encode()))                               # 5-6: malformed_id

    summary = ingest.ingest_day(lake, root, DAY)
    assert summary["sources"]["watch_sessions"] == {
        "lines": 11, "accepted": 6,
        "quarantined": {"bad_duration": 1, "bad_encoding": 2, "malformed_id": 1,
                        "unparsable": 1}}
    seconds = sorted(r.watch_seconds for r in
                     lake.read_days(RAW_WATCH_SESSIONS, DAY, DAY).collect())
    assert seconds == [40.0, 41.0, 45.0, 46.0, 47.0, 48.0]
    bad = sorted((r.file, r.line, r.reason, r.payload) for r in
                 lake.read_days(QUARANTINE, DAY, DAY).collect())
    assert bad == [("a.csv", 5, "bad_encoding", f'\ufeff3,10,{T0},42,"bom\nrecord"'),
                   ("a.csv", 7, "bad_encoding", f'1,11,{T0},43,"bad \\xff\nutf\n8"'),
                   ("a.csv", 10, "unparsable", '2,11,"x\ny"'),
                   ("c.csv.gz", 3, "bad_duration", f'2,10,{T0},"49\n"'),
                   ("c.csv.gz", 5, "malformed_id", f'"3\n",10,{T0},50')]


# Lines at the edges of the columnar path's plain shape (jobs.landing_columns): each must be
# judged as the per-record path judges it, whichever path takes it.
_EDGE_SESSIONS = [line.replace("@T0", T0) for line in [
    '{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 40}',
    '{"anchor_id": 10, "watch_seconds": 4e1, "user_id": 2, "start_time": "@T0"}',
    '  {"user_id":3,"anchor_id":11,"start_time":"2026-07-02T23:59:59.5Z","watch_seconds":0}\t',
    '{"user_id": 1, "anchor_id": 10, "start_time": "2026-07-02T00:00:00.123456+00:00", '
    '"watch_seconds": 43200, "gift_value": null}',
    '{"user_id": 1, "anchor_id": 10, "start_time": "2026-07-02T10:00:00+02:00", '
    '"watch_seconds": 1}',  # another offset: still the day in UTC
    '{"user_id": 1, "anchor_id": 10, "start_time": "2026-07-03T01:00:00+02:00", '
    '"watch_seconds": 1}',  # another day's date, this day in UTC
    '{"user_id": 1, "anchor_id": 10, "start_time": "2026-07-02T24:00:00Z", "watch_seconds": 1}',
    '{"user_id": 1, "anchor_id": 10, "start_time": "2026-07-02T10:00:60Z", "watch_seconds": 1}',
    '{"user_id": 1, "anchor_id": 10, "start_time": "2026-07-01T23:59:59Z", "watch_seconds": 1}',
    '{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 43200.5}',
    '{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 1e400}',
    '{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": -0}',
    '{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 5, '
    '"gift_value": 1000000}',
    '{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 5, '
    '"gift_value": 1000000.01}',
    '{"user_id": 9007199254740991, "anchor_id": 10, "start_time": "@T0", '
    '"watch_seconds": 5}',  # MAX_ID: valid shape, unknown user
    '{"user_id": 9007199254740992, "anchor_id": 10, "start_time": "@T0", '
    '"watch_seconds": 5}',
    '{"user_id": 12345678901234567890, "anchor_id": 10, "start_time": "@T0", '
    '"watch_seconds": 5}',
    '{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 5, '
    '"extra": "x"}',
    '{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 5, '
    '"note": "a\\"b"}',
    '{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 5}\r',
    '{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 5}\r\r',
    '{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 5}',  # copy
    '{"user_id": 2, "anchor_id": 99, "start_time": "@T0", "watch_seconds": 5}',
    '{"user_id": 1, "anchor_id": 10, "start_time": null, "watch_seconds": 5}',
    '{"user_id": 1, "anchor_id": 10, "watch_seconds": 5}', "", "{}", "[]", "null",
    '{"user_id": true, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 5}',
    '\ufeff{"user_id": 1, "anchor_id": 10, "start_time": "@T0", "watch_seconds": 5}',
]]
_KEY_TWICE = ('{"user_id": 1, "anchor_id": 10, "anchor_id": 10, "start_time": "@T0", '
              '"watch_seconds": 5}').replace("@T0", T0)
_EDGE_USERS = [
    '{"user_id": 1, "signup_date": "2026-07-02", "city": "São Paulo"}',
    '{"user_id": 2, "signup_date": "2026-02-30"}', '{"user_id": 3, "signup_date": "0000-01-01"}',
    '{"user_id": 4, "gender": ""}', '{"user_id": 5, "city": "%s"}' % ("é" * 64),
    '{"user_id": 6, "city": "%s"}' % ("é" * 65), '{"user_id": 7, "device": null}',
    '{"user_id": 2, "city": "b"}', '{"user_id": 2, "city": "a"}',  # kept: first in text order
    '{"user_id": 8, "city": "x", "city": "y"}', '{"user_id": 9, "x": 1}', '{"city": "c"}',
]


def _judge_both(root: Path, time_format: str = "iso") -> list[dict]:
    from features.days import add_days
    from jobs.landing_columns import read_lines

    outcomes = []
    for columnar in (True, False):
        def read(source: str, columnar: bool = columnar):
            return read_lines(root / source / f"dt={DAY}", source, DAY, time_format, columnar)
        judged = {s: ingest.judge_dimension(read(s), s) for s in ingest.DIMENSIONS}
        known = {s: ingest.known_ids(root, s, add_days(DAY, 0), time_format)
                 for s in ("users", "anchors")}
        sessions = read("watch_sessions")
        judged["watch_sessions"] = ingest.judge_sessions(sessions, DAY, known["users"],
                                                         known["anchors"], time_format)
        outcomes.append({s: (j.lines, sorted(map(repr, j.accepted.to_pylist())),
                             sorted(j.rejects)) for s, j in judged.items()})
        outcomes[-1]["columnar rows"] = sessions.valid.num_rows
    return outcomes


@pytest.mark.unit
@pytest.mark.parametrize("time_format", ["iso", "epoch_s", "epoch_ms"])
def test_the_columnar_path_judges_as_the_per_record_path(tmp_path, time_format):
    root = tmp_path / "landing"
    _dims(root)
    (root / "users" / f"dt={DAY}" / "part-1.jsonl").write_text("\n".join(_EDGE_USERS))
    lines = _EDGE_SESSIONS
    if time_format != "iso":
        scale = 1000 if time_format == "epoch_ms" else 1
        lines = [line.replace(f'"{T0}"', str(EPOCH_T0 * scale)) for line in lines] + [
            json.dumps(_session(1, start=v)) for v in (
                EPOCH_T0 * scale, EPOCH_T0 * scale + 0.5, -1, 10 ** 15, EPOCH_T0 * scale * 1000)]
    # many plain lines around the edges; a key twice far from them fails one small chunk
    plain = [json.dumps(_session(u % 3 + 1, u)) for u in range(9000)]
    plain.insert(2000, _KEY_TWICE)
    if time_format != "iso":
        plain = [line.replace(f'"{T0}"', str(EPOCH_T0 * scale)) for line in plain]
    folder = _sessions(root)
    # no newline after the last line
    (folder / "a.jsonl").write_text("\n".join(plain[:5000] + lines + plain[5000:]))
    (folder / "b.jsonl").write_bytes(b'{"user_id": 1, "note": "\xff"}\n'
                                     + "\n".join(lines[:3]).encode() + b"\n")
    (folder / "c.jsonl.gz").write_bytes(gzip.compress("\n".join(lines).encode() + b"\n"))
    columnar, per_record = _judge_both(root, time_format)
    # the plain lines and plain edges took the columnar path (all but a chunk around the
    # key named twice)
    assert columnar.pop("columnar rows") > 8940
    assert per_record.pop("columnar rows") == 0
    assert columnar == per_record
