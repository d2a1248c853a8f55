"""Ingestion on a tiny hand-made landing day holding every kind of bad record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from features.catalog import ANCHORS, LIVE_SCHEDULE, QUARANTINE, RAW_WATCH_SESSIONS, USERS
from features.validation import SESSION_REASONS
from jobs import ingest
from tests.conftest import run_on_jvm

DAY = "2026-03-02"
GOOD = ('{"user_id": 1, "anchor_id": 10, "start_time": "2026-03-02T08:00:00Z", '
        '"watch_seconds": 45.0}')
# Each bad line breaks exactly one rule; the expected reason is the key.
BAD = {
    "unparsable": ['{"user_id": 1, "anchor', "not json at all", "[1, 2]",
                   # NaN and Infinity are not JSON
                   '{"user_id": 1, "anchor_id": 10, "start_time": "2026-03-02T09:00:00Z", '
                   '"watch_seconds": NaN}',
                   '{"user_id": 1, "anchor_id": 10, "start_time": "2026-03-02T09:00:00Z", '
                   '"watch_seconds": 5, "gift_value": Infinity}'],
    "missing_column": ['{"user_id": 1, "anchor_id": 10, "start_time": "2026-03-02T09:00:00Z"}'],
    "null_id": ['{"user_id": null, "anchor_id": 10, "start_time": "2026-03-02T09:00:00Z", '
                '"watch_seconds": 5}'],
    "duplicate_key": ['{"user_id": 1, "anchor_id": 10, "anchor_id": 11, '
                      '"start_time": "2026-03-02T09:00:00Z", "watch_seconds": 5}'],
    # ids are JSON integers in [0, 2^53 - 1]: strings (even of digits), floats and bools
    # are refused
    "malformed_id": ['{"user_id": "u1x", "anchor_id": 10, "start_time": "2026-03-02T09:00:00Z", '
                     '"watch_seconds": 5}',
                     '{"user_id": 1, "anchor_id": -4, "start_time": "2026-03-02T09:00:00Z", '
                     '"watch_seconds": 5}',
                     *[f'{{"user_id": {v}, "anchor_id": 10, "start_time": '
                       f'"2026-03-02T09:00:00Z", "watch_seconds": 5}}'
                       for v in ('" 11 "', '"+18"', '"1"', "1.0", "true", str(2**53))]],
    "bad_timestamp": ['{"user_id": 1, "anchor_id": 10, "start_time": "yesterday", '
                      '"watch_seconds": 5}',
                      '{"user_id": 1, "anchor_id": 10, "start_time": "2026", '
                      '"watch_seconds": 5}',
                      '{"user_id": 1, "anchor_id": 10, "start_time": "2026-03-02T09:00:00", '
                      '"watch_seconds": 5}'],  # no zone: incomplete
    "out_of_day": ['{"user_id": 1, "anchor_id": 10, "start_time": "2026-03-01T23:59:59Z", '
                   '"watch_seconds": 5}'],
    "bad_duration": ['{"user_id": 1, "anchor_id": 10, "start_time": "2026-03-02T09:00:00Z", '
                     '"watch_seconds": -3}',
                     '{"user_id": 1, "anchor_id": 10, "start_time": "2026-03-02T09:00:01Z", '
                     '"watch_seconds": 1e7}',
                     '{"user_id": 1, "anchor_id": 10, "start_time": "2026-03-02T09:00:02Z", '
                     '"watch_seconds": "5"}'],
    "bad_gift": ['{"user_id": 1, "anchor_id": 10, "start_time": "2026-03-02T09:00:00Z", '
                 '"watch_seconds": 5, "gift_value": -1}',
                 '{"user_id": 1, "anchor_id": 10, "start_time": "2026-03-02T09:00:00Z", '
                 '"watch_seconds": 5, "gift_value": 1e308}'],
    "unknown_user": ['{"user_id": 999, "anchor_id": 10, "start_time": "2026-03-02T09:00:00Z", '
                     '"watch_seconds": 5}'],
    "unknown_anchor": ['{"user_id": 1, "anchor_id": 77, "start_time": "2026-03-02T09:00:00Z", '
                       '"watch_seconds": 5}'],
    "duplicate": [GOOD, GOOD],  # two extra copies of the first GOOD line
}
# Lines that cannot be decoded: written as bytes into a second file of the day.
BAD_BYTES = {"bad_encoding": [b'{"user_id": 1, "anchor_id": 10, "note": "\xff"}',
                              '\ufeff{"user_id": 1}'.encode()]}
ACCEPTED = [
    GOOD,
    # user 2 signed up the day before: known from the earlier landing day
    '{"user_id": 2, "anchor_id": 11, "start_time": "2026-03-02T23:59:59Z", "watch_seconds": 1.5, '
    '"gift_value": 3.0}',
    '{"user_id": 3, "anchor_id": 11, "start_time": "2026-03-02T00:00:00Z", "watch_seconds": 0}',
]


def _write(folder: Path, lines: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-00000.jsonl").write_text("\n".join(lines) + "\n")


def make_landing(root: Path) -> Path:
    prev = "2026-03-01"
    _write(root / "users" / f"dt={prev}",
           [json.dumps({"user_id": 2, "signup_date": prev, "gender": "F", "age_bucket": "18-24",
                        "city": "c01", "device": "ios"})])
    _write(root / "anchors" / f"dt={prev}",
           [json.dumps({"anchor_id": 11, "debut_date": prev, "category": "cat01", "gender": "M",
                        "city": "c02"})])
    users = [json.dumps({"user_id": u, "signup_date": DAY, "gender": "M", "age_bucket": "25-34",
                         "city": "c00", "device": "android"}) for u in (1, 3)]
    _write(root / "users" / f"dt={DAY}", users + ['{"user_id": "x"}', users[0]])
    _write(root / "anchors" / f"dt={DAY}",
           [json.dumps({"anchor_id": 10, "debut_date": DAY, "category": "cat00", "gender": "F",
                        "city": "c00"})])
    _write(root / "live_schedule" / f"dt={DAY}", ['{"anchor_id": 10}', '{"anchor_id": 11}'])
    sessions = ACCEPTED + [line for lines in BAD.values() for line in lines]
    _write(root / "watch_sessions" / f"dt={DAY}", sessions[::-1])
    (root / "watch_sessions" / f"dt={DAY}" / "part-00001.jsonl").write_bytes(
        b"\n".join(line for lines in BAD_BYTES.values() for line in lines) + b"\n")
    return root


def _expected_rejects() -> dict[str, int]:
    return {reason: len(lines) for reason, lines in {**BAD, **BAD_BYTES}.items()}


def _table(lake, spec) -> list[tuple]:
    return sorted(tuple(r) for r in lake.read_days(spec, DAY, DAY).collect())


@pytest.mark.engine
def test_every_line_is_accepted_or_quarantined_with_its_reason(lake, tmp_path):
    landing = make_landing(tmp_path / "landing")
    summary = ingest.ingest_day(lake, landing, DAY)

    sessions = summary["sources"]["watch_sessions"]
    assert sessions["quarantined"] == _expected_rejects()
    assert set(sessions["quarantined"]) == set(SESSION_REASONS)
    assert sessions["accepted"] == len(ACCEPTED)
    assert sessions["lines"] == len(ACCEPTED) + sum(_expected_rejects().values())
    # users: one malformed line, one exact repeat of user 1
    assert summary["sources"]["users"] == {"lines": 4, "accepted": 2,
                                           "quarantined": {"duplicate": 1, "malformed_id": 1}}
    rows = lake.read_days(RAW_WATCH_SESSIONS, DAY, DAY).orderBy("start_time").collect()
    assert [(r.user_id, r.anchor_id, r.watch_seconds, r.gift_value) for r in rows] == [
        (3, 11, 0.0, 0.0), (1, 10, 45.0, 0.0), (2, 11, 1.5, 3.0)]
    assert str(rows[-1].start_time) == "2026-03-02 23:59:59"
    payloads = {r.payload for r in lake.read_days(QUARANTINE, DAY, DAY).collect()}
    assert BAD["unparsable"][0] in payloads
    assert lake.read_days(LIVE_SCHEDULE, DAY, DAY).count() == 2
    assert lake.read_days(ANCHORS, DAY, DAY).count() == 1


@pytest.mark.engine
def test_rerun_gives_the_same_tables(lake, tmp_path):
    landing = make_landing(tmp_path / "landing")
    first = ingest.ingest_day(lake, landing, DAY)
    tables = {spec.name: _table(lake, spec)
              for spec in (RAW_WATCH_SESSIONS, QUARANTINE, USERS, ANCHORS, LIVE_SCHEDULE)}
    assert ingest.ingest_day(lake, landing, DAY) == first
    for spec in (RAW_WATCH_SESSIONS, QUARANTINE, USERS, ANCHORS, LIVE_SCHEDULE):
        assert _table(lake, spec) == tables[spec.name], spec.name


@pytest.mark.engine
def test_missing_day_names_the_path(lake, tmp_path, capsys):
    landing = make_landing(tmp_path / "landing")
    with pytest.raises(FileNotFoundError, match=r"watch_sessions/dt=2026-03-09"):
        ingest.ingest_day(lake, landing, "2026-03-09")
    code = ingest.main(["--date", "2026-03-09", "--landing", str(landing),
                        "--lake", str(lake.root), "--engine", "sail"])
    assert code == 2
    assert "dt=2026-03-09" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match=r"landing root .*lnading does not exist: "
                                                r"check --landing or \$LANDING_ROOT"):
        ingest.require_landing(tmp_path / "lnading", DAY)


@pytest.mark.engine
def test_the_job_prints_what_it_wrote(lake, tmp_path, capsys):
    landing = make_landing(tmp_path / "landing")
    assert ingest.main(["--date", DAY, "--landing", str(landing), "--lake", str(lake.root),
                        "--engine", "sail"]) == 0
    sessions_bad = sum(_expected_rejects().values())
    # users: "x" is malformed and user 1 is repeated; every other source is clean
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"ingest {DAY}: raw_watch_sessions 3 rows ({sessions_bad} quarantined), users 2 rows "
        f"(2 quarantined), anchors 1 row, live_schedule 2 rows, "
        f"quarantine {sessions_bad + 2} rows")


@pytest.mark.unit
@pytest.mark.parametrize("argv", [["--date", "2026-13-01"], ["--date", "20260301"], [],
                                  ["--date", "2026-03-01", "--log-level", "LOUD"]])
def test_cli_rejects_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ingest.main(argv)
    assert exit_info.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.e2e
def test_same_result_on_jvm_spark(lake, jvm_lake, tmp_path):
    """Parity: the ingestion transform gives identical tables on Sail and JVM Spark."""
    landing = make_landing(tmp_path / "landing")
    sail_summary = ingest.ingest_day(lake, landing, DAY)
    done = run_on_jvm("jobs.ingest", "--date", DAY, "--landing", str(landing),
                      "--lake", str(jvm_lake.root))
    assert done.stdout.splitlines()[-1] == ingest.summary_line(sail_summary)
    for spec in (RAW_WATCH_SESSIONS, QUARANTINE, USERS, ANCHORS, LIVE_SCHEDULE):
        assert _table(jvm_lake, spec) == _table(lake, spec), spec.name
