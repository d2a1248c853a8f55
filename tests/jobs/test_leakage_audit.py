"""Leakage audit of profile days as units: an empty day that jobs.profiles completed passes,
a day never built, interrupted or emptied behind the job's back fails with one line."""

from __future__ import annotations

import json

import pytest

from features import day_status
from features.catalog import ANCHOR_PROFILES, USER_PROFILES
from features.days import add_days, days_between
from jobs import leakage_audit
from jobs.run_days import run_days
from tests.jobs.test_day_status import write_day

DAYS = days_between("2026-08-01", "2026-08-03")
FIRST, EMPTY, ACTIVE = DAYS
NEVER = add_days(ACTIVE, 1)


@pytest.fixture()
def built(lake, tmp_path):
    """Ingest, daily stats and profiles (window 1) of three days: the first two without any
    activity, users or anchors (empty profile partitions), the third with some."""
    landing = tmp_path / "landing"
    write_day(landing, FIRST, [])
    write_day(landing, EMPTY, [])
    write_day(landing, ACTIVE, [json.dumps({"user_id": u, "anchor_id": 0,
                                            "start_time": f"{ACTIVE}T10:00:00Z",
                                            "watch_seconds": 40.0}) for u in (0, 1)],
              users=(0, 1), anchors=(0,), live=(0,))
    run_days(lake, DAYS, ["ingest", "daily_stats", "profiles"], window=1, allow_partial=True,
             landing=str(landing))
    return lake


def _main(lake, day: str, capsys) -> tuple[int, str, str]:
    code = leakage_audit.main(["--date", day, "--lake", str(lake.root), "--engine", "sail"])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


@pytest.mark.engine
def test_an_empty_profile_day_that_was_built_passes(built, capsys):
    report = leakage_audit.audit_day(built, EMPTY)
    assert report["ok"] and report["complete"] and report["problem"] is None
    assert {name: (t["rows"], t["recorded_rows"]) for name, t in report["tables"].items()} == {
        USER_PROFILES.name: (0, 0), ANCHOR_PROFILES.name: (0, 0)}
    active = leakage_audit.audit_day(built, ACTIVE)
    assert active["ok"] and active["tables"][USER_PROFILES.name]["rows"] == 2
    code, out, err = _main(built, EMPTY, capsys)
    assert (code, err) == (0, "") and out.startswith(f"leakage_audit {EMPTY}: ok ")


@pytest.mark.engine
def test_a_profile_day_never_built_or_incomplete_fails_with_one_line(built, capsys):
    report = leakage_audit.audit_day(built, NEVER)
    expected = (f"missing user_profiles, anchor_profiles for {NEVER}: run jobs.profiles --date "
                f"{NEVER}, then audit again")
    assert not report["ok"] and not report["complete"] and report["problem"] == expected
    assert {t["problem"] for t in report["tables"].values()} == {expected}
    code, out, err = _main(built, NEVER, capsys)
    assert (code, out, err) == (2, "", f"leakage_audit: {expected}")

    day_status.begin(built.root, "profiles", ACTIVE)  # as a kill mid-run leaves it
    report = leakage_audit.audit_day(built, ACTIVE)
    assert not report["ok"] and report["problem"] == (
        f"incomplete (interrupted profiles, no day record) user_profiles, anchor_profiles for "
        f"{ACTIVE}: run jobs.profiles --date {ACTIVE}, then audit again")
    day_status.begin(built.root, "profiles", EMPTY)  # an empty day without its record
    report = leakage_audit.audit_day(built, EMPTY)
    assert not report["ok"] and report["problem"].startswith(
        f"missing user_profiles, anchor_profiles for {EMPTY}: ")
    code, _, err = _main(built, EMPTY, capsys)
    assert code == 2 and len(err.splitlines()) == 1


@pytest.mark.engine
def test_a_profile_day_emptied_behind_the_job_fails(built, capsys):
    """Zero rows pass only where the day record counted zero: a partition replaced by an
    empty one after the job (its record counts 2 users) is no empty day."""
    empty = built.read_days(USER_PROFILES, ACTIVE, ACTIVE).limit(0)
    built.write_partition(empty, USER_PROFILES, ACTIVE)
    report = leakage_audit.audit_day(built, ACTIVE)
    assert report["complete"] and not report["ok"]
    assert report["problem"] == ("user_profiles: 0 rows but the profiles day record counted 2: "
                                 "the partition was rewritten outside jobs.profiles")
    assert report["tables"][ANCHOR_PROFILES.name]["ok"]
    code, out, err = _main(built, ACTIVE, capsys)
    assert code == 1 and err == "" and out.endswith(report["problem"])
    assert "\n" not in out
