"""The daily feature DAG through dag.test on tiny simulated landing files: one run builds
every table of its day; runs day by day equal one multi-day run of the same jobs
(jobs.run_days); a day without landing files fails before touching the lake."""

from __future__ import annotations

import math

import pytest

from features.catalog import ALL_TABLES
from features.days import add_days, days_between
from tests.dags.conftest import run_dag, simulate_landing

# whole DAG runs through Airflow (dag.test); one worker, so the module's DAG runs (~40 s)
# are made once (make test: --dist loadgroup)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("features_daily")]

SPECS = {spec.name: spec for spec in ALL_TABLES}

START, DAYS, WINDOW = "2026-03-01", 3, 2
RUN_DAYS = days_between(START, add_days(START, DAYS - 1))
PER_DAY = ("raw_watch_sessions", "quarantine", "users", "anchors", "live_schedule",
           "daily_user_stats", "daily_anchor_stats", "daily_user_anchor", "labels")


def _conf(lake, landing) -> dict:
    return {"lake_root": str(lake), "landing_root": str(landing), "window_days": WINDOW}


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    return simulate_landing(tmp_path_factory.mktemp("features"), START, DAYS)


@pytest.fixture(scope="module")
def dag_runs(dagbag, landing, tmp_path_factory, spark):
    """features_daily run for each day in turn, as the scheduler would (oldest first)."""
    lake = tmp_path_factory.mktemp("dag_lake") / "lake"
    dag, results = dagbag.dags["features_daily"], {}
    for day in RUN_DAYS:
        run, states = run_dag(dag, day, _conf(lake, landing))
        results[day] = {"state": run.state, "tasks": states}
    return lake, results


def test_a_run_builds_every_table_of_its_day(dag_runs, spark):
    from jobs.lake import Lake

    lake_root, results = dag_runs
    assert {d: r["state"] for d, r in results.items()} == {d: "success" for d in RUN_DAYS}
    assert set(results[START]["tasks"].values()) == {"success"}
    lake = Lake(lake_root, spark)
    for table in PER_DAY:
        assert START in lake.days(SPECS[table]), table
    for table in ("user_profiles", "anchor_profiles"):  # run D: profiles of D and of D+1
        assert {START, add_days(START, 1)} <= lake.days(SPECS[table]), table
    second = lake.read_days(SPECS["user_profiles"], add_days(START, 1), add_days(START, 1))
    # the second profile day had one day of history out of its window of two (recorded)
    assert {r[0] for r in second.select("window_days_present").distinct().collect()} == {1}


def _canonical(value):
    """Hashable, ordered form of a cell: maps as sorted pairs, lists as tuples."""
    if isinstance(value, dict):
        return tuple(sorted((k, _canonical(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_canonical(v) for v in value)
    return value


def _without_floats(value):
    if isinstance(value, float):
        return None
    if isinstance(value, tuple):
        return tuple(_without_floats(v) for v in value)
    return value


def _same(a, b) -> bool:
    """Equal, floats up to summation order (the engine may add partials in any order)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (a != a and b != b)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _rows(lake, spec, days: list[str]) -> list[tuple]:
    rows = [_canonical(tuple(r)) for r in lake.read_days(spec, days[0], days[-1]).collect()]
    return sorted(rows, key=lambda r: repr(_without_floats(r)))


def test_day_by_day_runs_equal_one_multi_day_run(dag_runs, landing, spark, tmp_path):
    """Backfill equivalence, through dag.test per day against the run_days driver."""
    from jobs.lake import Lake
    from jobs.run_days import STEPS, run_days

    dag_lake = Lake(dag_runs[0], spark)
    driver_lake = Lake(tmp_path / "lake", spark)
    run_days(driver_lake, RUN_DAYS, STEPS, WINDOW, allow_partial=True, landing=str(landing))
    # the DAG's last run also built the profiles and neighbours of the next label day
    next_day = add_days(RUN_DAYS[-1], 1)
    run_days(driver_lake, [next_day], ["profiles", "anchor_neighbours"], WINDOW,
             allow_partial=True)
    for spec in ALL_TABLES:
        days = RUN_DAYS + [next_day] if "profiles" in spec.name else RUN_DAYS
        if spec.name == "anchor_neighbours":  # the first day's window is empty: no rows
            days = RUN_DAYS[1:] + [next_day]
        assert dag_lake.days(spec) == set(days), spec.name
        ours, theirs = _rows(dag_lake, spec, days), _rows(driver_lake, spec, days)
        assert ours and len(ours) == len(theirs), spec.name
        assert all(map(_same, ours, theirs)), spec.name


def test_a_day_without_landing_files_fails_naming_them(dagbag, landing, tmp_path, capfd,
                                                        spark):
    from jobs.lake import Lake

    missing_day = add_days(RUN_DAYS[-1], 1)
    run, states = run_dag(dagbag.dags["features_daily"], missing_day,
                          _conf(tmp_path / "lake", landing))
    assert run.state == "failed"
    assert states["check_landing"] == "failed"
    assert {states[t] for t in states if t != "check_landing"} == {"upstream_failed"}
    out = capfd.readouterr()
    assert f"landing data for {missing_day} is missing" in out.out + out.err
    assert str(landing / "watch_sessions" / f"dt={missing_day}") in out.out + out.err
    assert not Lake(tmp_path / "lake", spark).days(SPECS["raw_watch_sessions"])
