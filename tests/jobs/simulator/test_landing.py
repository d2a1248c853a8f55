"""The landing zone of a run: layout, summary, reproducibility, reruns, make_landing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.simulator import SimParams, make_landing, read_summary, simulate
from tests.jobs.simulator.conftest import DAY_ISO, START, TABLES, all_files, lines, run

pytestmark = pytest.mark.unit


def test_layout_and_summary(sim):
    root, summary = sim
    for table in TABLES:
        for day in DAY_ISO:
            assert [p.name for p in (root / table / f"dt={day}").iterdir()] == ["part-00000.jsonl"]
    assert json.loads((root / "_SIMULATION.json").read_text()) == summary
    assert read_summary(root) == summary
    assert summary["params"]["seed"] == 7 and summary["params"]["scale"] == "tiny"
    assert list(summary["days"]) == DAY_ISO
    for day in DAY_ISO:
        stats = summary["days"][day]
        assert 1_000 <= stats["sessions"] <= 4_000  # tiny is ~2k sessions/day
        assert stats["live_anchors"] == len(lines(root, "live_schedule", day))


def test_totals_add_up(sim):
    root, summary = sim
    # a day's totals are the previous totals plus its arrivals (day 0: all of them)
    users = anchors = 0
    for day in DAY_ISO:
        stats = summary["days"][day]
        users, anchors = users + stats["new_users"], anchors + stats["new_anchors"]
        assert (stats["users_total"], stats["anchors_total"]) == (users, anchors)
        assert len(lines(root, "users", day)) == stats["new_users"]


def test_same_seed_gives_identical_bytes(sim, tmp_path):
    root, _ = sim
    run(tmp_path)
    files = all_files(tmp_path)
    assert files == all_files(root)
    # the ground truth too: latents, habits (compressed) and the choice model
    assert {"_ground_truth/latents.npz", "_ground_truth/habits.npz",
            "_ground_truth/model.json"} <= set(files)


def test_different_seed_changes_sessions(sim, tmp_path):
    root, _ = sim
    run(tmp_path, seed=8)
    for day in DAY_ISO:
        assert lines(tmp_path, "watch_sessions", day) != lines(root, "watch_sessions", day)


def test_shorter_run_is_a_prefix(sim, tmp_path):
    root, _ = sim
    run(tmp_path, days=2)
    for table in TABLES:
        for day in DAY_ISO[:2]:
            assert lines(tmp_path, table, day) == lines(root, table, day)
    short, long_ = (np.load(r / "_ground_truth" / "habits.npz") for r in (tmp_path, root))
    for name in short.files:  # the same habits to start with, the same days' long watches
        n = len(short[name]) if name.startswith("start") else int((short["long_watch_day"]
                                                                   < 2).sum())
        np.testing.assert_array_equal(short[name], long_[name][:n])


def test_rerun_overwrites_and_removes_stale_parts(sim, tmp_path):
    root, _ = sim
    run(tmp_path)
    folder = tmp_path / "watch_sessions" / f"dt={DAY_ISO[1]}"
    (folder / "part-00001.jsonl").write_text('{"user_id": 1}\n')
    (folder / ".part-00000.jsonl.abc.tmp").write_text("half a file")
    (folder / "part-00000.jsonl").write_text("garbage\n")
    run(tmp_path)
    assert all_files(tmp_path) == all_files(root)


def test_progress_reports_each_day(tmp_path):
    seen: list[str] = []
    summary = simulate(SimParams(start=START, days=2, scale="tiny"), tmp_path, progress=seen.append)
    assert [s.split(":")[0] for s in seen] == DAY_ISO[:2]
    assert f"sessions={summary['days'][DAY_ISO[0]]['sessions']:,}" in seen[0]


def test_make_landing_is_simulate_into_root_landing(tmp_path):
    landing = make_landing(tmp_path / "a", DAY_ISO[0], 2, seed=9)
    assert landing == tmp_path / "a" / "landing"
    # the defaults of make_landing: tiny scale, default bad rate
    simulate(SimParams(start=START, days=2, scale="tiny", seed=9), tmp_path / "b", progress=None)
    assert all_files(landing) == all_files(tmp_path / "b")
    assert read_summary(landing)["params"]["seed"] == 9


def test_make_landing_rejects_a_bad_start_before_writing(tmp_path):
    with pytest.raises(ValueError, match="start"):
        make_landing(tmp_path, "2026-02-30", 2)
    assert not any(tmp_path.iterdir())
