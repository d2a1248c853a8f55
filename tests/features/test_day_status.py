"""Day records: written last and atomically, valid only while their inputs are unchanged."""

from __future__ import annotations

import pytest

from features import day_status
from features.day_status import MISSING, STALE, Ledger

pytestmark = pytest.mark.unit
D1, D2 = "2026-01-01", "2026-01-02"


def test_a_record_is_complete_until_its_job_begins_again(tmp_path):
    assert Ledger(tmp_path).state("ingest", D1) == (MISSING, "")
    record = day_status.finish(tmp_path, "ingest", D1, {"lines": 0}, {"users": 3}, {})
    assert Ledger(tmp_path).token("ingest", D1) == record.token
    assert day_status.load(tmp_path, "ingest", D1) == record
    assert [p.name for p in day_status.status_path(tmp_path, "ingest", D1).parent.iterdir()] \
        == [f"{D1}.json"]  # no temp file left
    day_status.begin(tmp_path, "ingest", D1)
    assert Ledger(tmp_path).state("ingest", D1)[0] == MISSING


def test_a_rerun_input_makes_everything_built_from_it_stale(tmp_path):
    ingest = day_status.finish(tmp_path, "ingest", D1, {}, {}, {})
    stats = day_status.finish(tmp_path, "daily_stats", D1, {}, {},
                              {day_status.key("ingest", D1): ingest.token})
    day_status.finish(tmp_path, "profiles", D2, {}, {},
                      {day_status.key("daily_stats", D1): stats.token})
    assert Ledger(tmp_path).complete_days("profiles") == {D2}
    day_status.finish(tmp_path, "ingest", D1, {}, {}, {})  # re-ingested: a new token
    ledger = Ledger(tmp_path)
    assert ledger.state("daily_stats", D1) == (STALE, f"ingest {D1} was re-run or is "
                                                      f"incomplete since")
    assert ledger.state("profiles", D2)[0] == STALE  # transitively
    assert ledger.problems("profiles", [D2]).keys() == {D2}


def test_unreadable_records_and_bad_names_are_refused(tmp_path):
    path = day_status.status_path(tmp_path, "labels", D1)
    path.parent.mkdir(parents=True)
    path.write_text("{half a record")
    assert day_status.load(tmp_path, "labels", D1) is None
    with pytest.raises(ValueError, match="unknown job"):
        day_status.status_path(tmp_path, "../x", D1)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        day_status.status_path(tmp_path, "labels", "../../etc")
