"""Tests of the landing-zone simulator, at tiny scale."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from features.validation import SESSION_REASONS
from jobs.simulate import (
    BAD_KINDS,
    SimParams,
    main,
    render,
    session_fields,
    session_lines,
    simulate,
)

START = date(2026, 1, 1)
DAYS = 3
DAY_ISO = [(START + timedelta(days=i)).isoformat() for i in range(DAYS)]
REQUIRED = ("user_id", "anchor_id", "start_time", "watch_seconds")
TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


def run(root: Path, **kw) -> dict:
    params = {"start": START, "days": DAYS, "scale": "tiny", "seed": 7, "bad_rate": 0.1, **kw}
    return simulate(SimParams(**params), root, progress=None)


@pytest.fixture(scope="module")
def sim(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("landing")
    return root, run(root)


def lines(root: Path, table: str, day: str) -> list[str]:
    return (root / table / f"dt={day}" / "part-00000.jsonl").read_text().splitlines()


def records(root: Path, table: str, day: str) -> list[dict]:
    return [json.loads(x) for x in lines(root, table, day)]


def all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def is_num(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def failures(line: str, day: str, users: set[int], anchors: set[int]) -> list[str]:
    """Every content rule a line breaks (an independent reading of the validation contract)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        return ["unparsable"]
    if not isinstance(obj, dict):
        return ["unparsable"]
    out = []
    if any(k not in obj for k in REQUIRED):
        out.append("missing_column")
    ids = [obj[k] for k in ("user_id", "anchor_id") if k in obj]
    if any(v is None for v in ids):
        out.append("null_id")
    if any(v is not None and not (isinstance(v, int) and not isinstance(v, bool) and v > 0)
           for v in ids):
        out.append("malformed_id")
    if "start_time" in obj:
        ts = obj["start_time"]
        if not (isinstance(ts, str) and TS.fullmatch(ts)):
            out.append("bad_timestamp")
        elif ts[:10] != day:
            out.append("out_of_day")
    if "watch_seconds" in obj:
        w = obj["watch_seconds"]
        if not (is_num(w) and 0 <= w <= 43200):
            out.append("bad_duration")
    if "gift_value" in obj and not (is_num(obj["gift_value"]) and obj["gift_value"] >= 0):
        out.append("bad_gift")
    u, a = obj.get("user_id"), obj.get("anchor_id")
    if isinstance(u, int) and u > 0 and u not in users:
        out.append("unknown_user")
    if isinstance(a, int) and a > 0 and a not in anchors:
        out.append("unknown_anchor")
    return out


def classify_days(root: Path) -> dict[str, tuple[Counter, list[dict]]]:
    """Per day: reason counts (first failure, 'ok' for good) and the good sessions."""
    users: set[int] = set()
    anchors: set[int] = set()
    out = {}
    for day in DAY_ISO:
        users |= {r["user_id"] for r in records(root, "users", day)}
        anchors |= {r["anchor_id"] for r in records(root, "anchors", day)}
        counts: Counter = Counter()
        good, seen = [], set()
        for line in lines(root, "watch_sessions", day):
            fails = failures(line, day, users, anchors)
            assert len(fails) <= 1, (line, fails)  # a bad line breaks exactly one rule
            if fails:
                counts[fails[0]] += 1
            elif line in seen:
                counts["duplicate"] += 1
            else:
                counts["ok"] += 1
                good.append(json.loads(line))
            seen.add(line)
        out[day] = (counts, good)
    return out


@pytest.fixture(scope="module")
def classified(sim) -> dict[str, tuple[Counter, list[dict]]]:
    return classify_days(sim[0])


def affinity(root: Path, sessions: list[dict]) -> np.ndarray:
    z = np.load(root / "_ground_truth" / "latents.npz")
    u_row = {int(i): k for k, i in enumerate(z["user_ids"])}
    a_row = {int(i): k for k, i in enumerate(z["anchor_ids"])}
    u = z["user_vecs"][[u_row[s["user_id"]] for s in sessions]]
    a = z["anchor_vecs"][[a_row[s["anchor_id"]] for s in sessions]]
    return np.einsum("ij,ij->i", u, a)


def test_layout_and_summary(sim):
    root, summary = sim
    for table in ("watch_sessions", "users", "anchors", "live_schedule"):
        for day in DAY_ISO:
            assert [p.name for p in (root / table / f"dt={day}").iterdir()] == ["part-00000.jsonl"]
    assert json.loads((root / "_SIMULATION.json").read_text()) == summary
    assert summary["params"]["seed"] == 7 and summary["params"]["scale"] == "tiny"
    assert list(summary["days"]) == DAY_ISO
    for day in DAY_ISO:
        stats = summary["days"][day]
        assert 1_000 <= stats["sessions"] <= 4_000  # tiny is ~2k sessions/day
        assert stats["live_anchors"] == len(lines(root, "live_schedule", day))
    z = np.load(root / "_ground_truth" / "latents.npz")
    n_users = sum(len(lines(root, "users", d)) for d in DAY_ISO)
    assert z["user_vecs"].shape == (n_users, 16) and len(z["user_ids"]) == n_users
    assert z["anchor_vecs"].shape[0] == len(z["anchor_ids"]) == len(z["anchor_popularity"])


def test_same_seed_gives_identical_bytes(sim, tmp_path):
    root, _ = sim
    run(tmp_path)
    assert all_files(tmp_path) == all_files(root)


def test_different_seed_changes_sessions(sim, tmp_path):
    root, _ = sim
    run(tmp_path, seed=8)
    for day in DAY_ISO:
        assert lines(tmp_path, "watch_sessions", day) != lines(root, "watch_sessions", day)


def test_shorter_run_is_a_prefix(sim, tmp_path):
    root, _ = sim
    run(tmp_path, days=2)
    for table in ("watch_sessions", "users", "anchors", "live_schedule"):
        for day in DAY_ISO[:2]:
            assert lines(tmp_path, table, day) == lines(root, table, day)


def test_rerun_overwrites_and_removes_stale_parts(sim, tmp_path):
    root, _ = sim
    run(tmp_path)
    folder = tmp_path / "watch_sessions" / f"dt={DAY_ISO[1]}"
    (folder / "part-00001.jsonl").write_text('{"user_id": 1}\n')
    (folder / ".part-00000.jsonl.abc.tmp").write_text("half a file")
    (folder / "part-00000.jsonl").write_text("garbage\n")
    run(tmp_path)
    assert all_files(tmp_path) == all_files(root)


def test_new_users_and_anchors_every_day(sim, classified):
    root, summary = sim
    first_users = records(root, "users", DAY_ISO[0])
    assert len(first_users) == 300
    assert all(date.fromisoformat(r["signup_date"]) < START for r in first_users)
    assert min(date.fromisoformat(r["signup_date"]) for r in first_users) >= START - timedelta(365)
    seen_u = {r["user_id"] for r in first_users}
    seen_a = {r["anchor_id"] for r in records(root, "anchors", DAY_ISO[0])}
    for day in DAY_ISO[1:]:
        users, anchors = records(root, "users", day), records(root, "anchors", day)
        assert users and anchors
        new_u, new_a = {r["user_id"] for r in users}, {r["anchor_id"] for r in anchors}
        assert not new_u & seen_u and not new_a & seen_a
        assert min(new_u) > max(seen_u) and min(new_a) > max(seen_a)  # ids keep increasing
        assert {r["signup_date"] for r in users} == {r["debut_date"] for r in anchors} == {day}
        live = {r["anchor_id"] for r in records(root, "live_schedule", day)}
        assert new_a <= live  # a debut day is a live day
        assert summary["days"][day]["new_users"] == len(new_u)
        assert summary["days"][day]["new_anchors"] == len(new_a)
        seen_u |= new_u
        seen_a |= new_a
    watched = {s["user_id"] for d in DAY_ISO[1:] for s in classified[d][1]}
    assert watched - {r["user_id"] for r in first_users}  # cold-start users do watch


def test_anchors_have_live_and_offline_days(sim, classified):
    root, _ = sim
    live = {d: {r["anchor_id"] for r in records(root, "live_schedule", d)} for d in DAY_ISO}
    assert live[DAY_ISO[0]] - live[DAY_ISO[1]] and live[DAY_ISO[1]] - live[DAY_ISO[0]]
    for day in DAY_ISO:
        watched = {s["anchor_id"] for s in classified[day][1]}
        assert watched <= live[day]


def test_good_sessions_are_valid_and_unique(sim, classified):
    root, summary = sim
    for day in DAY_ISO:
        counts, good = classified[day]
        assert counts["ok"] == summary["days"][day]["sessions"] == len(good)
        keys = {(s["user_id"], s["anchor_id"], s["start_time"]) for s in good}
        assert len(keys) == len(good)
        assert all(s.get("gift_value", 1.0) > 0 for s in good)
        for line in lines(root, "watch_sessions", day):
            # numbers carry at most one decimal
            assert not re.search(r"\d\.\d\d", line)


def test_watch_time_follows_affinity(sim, classified):
    root, _ = sim
    good = [s for day in DAY_ISO for s in classified[day][1]]
    watch = np.array([s["watch_seconds"] for s in good])
    aff = affinity(root, good)
    long_, bounce = watch >= 30, watch <= 2
    mid = ~long_ & ~bounce
    assert long_.mean() > 0.2 and bounce.mean() > 0.1 and mid.mean() > 0.1
    assert np.all(watch[bounce] >= 0.5) and np.all((watch[mid] >= 3) & (watch[mid] < 30))
    assert watch.max() <= 4 * 3600
    assert aff[long_].mean() > aff[bounce].mean() + 0.5
    gifted = np.array(["gift_value" in s for s in good])
    assert 0 < gifted.mean() < 0.2 and aff[gifted].mean() > aff.mean()


def test_bad_record_accounting(sim, classified):
    root, summary = sim
    total = Counter()
    for day in DAY_ISO:
        stats = summary["days"][day]
        raw = lines(root, "watch_sessions", day)
        assert set(stats["bad"]) == set(BAD_KINDS)
        assert len(raw) == stats["lines"] == stats["sessions"] + sum(stats["bad"].values())
        counts, _ = classified[day]
        assert {k: v for k, v in counts.items() if k != "ok"} == {
            k: v for k, v in stats["bad"].items() if v}
        unparsable = 0
        for line in raw:
            try:
                json.loads(line)
            except json.JSONDecodeError:
                unparsable += 1
        assert unparsable == stats["bad"]["unparsable"]
        assert len(raw) - len(set(raw)) == stats["bad"]["duplicate"]
        # bad lines are mixed in, not appended after the good ones
        broken = [i for i, x in enumerate(raw) if failures(x, day, set(), set()) == ["unparsable"]]
        assert min(broken) < stats["sessions"]
        total.update(stats["bad"])
    assert all(total[k] > 0 for k in BAD_KINDS)


def test_bad_kinds_are_validation_reasons():
    assert set(BAD_KINDS) <= set(SESSION_REASONS)


def test_bulk_and_single_line_formats_agree():
    # bad lines are rendered one by one, good ones in bulk: both must look the same
    args = [np.array(x) for x in ([12, 3], [7, 9], [0, 86399], [42.5, 0.5], [1.5, 0.0])]
    bulk = session_lines(START, *args)
    one = [render(session_fields(12, 7, "2026-01-01T00:00:00Z", 42.5, 1.5)),
           render(session_fields(3, 9, "2026-01-01T23:59:59Z", 0.5, 0.0))]
    assert bulk == one
    assert json.loads(bulk[0]) == {"user_id": 12, "anchor_id": 7, "watch_seconds": 42.5,
                                   "start_time": "2026-01-01T00:00:00Z", "gift_value": 1.5}


def test_no_bad_lines_at_zero_rate(tmp_path):
    summary = run(tmp_path, days=1, bad_rate=0.0)
    stats = summary["days"][DAY_ISO[0]]
    assert sum(stats["bad"].values()) == 0 and stats["lines"] == stats["sessions"]


@pytest.mark.parametrize("bad", [
    ["--start", "2026/01/01"], ["--start", "2026-1-1"], ["--start", "2026-02-30"],
    ["--start", "2026-01-01", "--days", "0"], ["--start", "2026-01-01", "--days", "367"],
    ["--start", "2026-01-01", "--days", "two"], ["--start", "2026-01-01", "--bad-rate", "0.6"],
    ["--start", "2026-01-01", "--bad-rate", "-0.1"], ["--start", "2026-01-01", "--scale", "huge"],
    ["--days", "3"],
])
def test_cli_rejects_bad_args(bad, tmp_path, capsys):
    argv = [*bad, "--landing", str(tmp_path)]
    if "--days" not in bad:
        argv += ["--days", "3"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_cli_runs_and_reports_each_day(tmp_path, capsys):
    assert main(["--start", "2026-01-01", "--days", "2", "--scale", "tiny",
                 "--landing", str(tmp_path), "--seed", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("2026-01-01") and "sessions=" in out[0]
    assert json.loads((tmp_path / "_SIMULATION.json").read_text())["params"]["seed"] == 3


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0 and "--bad-rate" in capsys.readouterr().out


def test_params_are_validated():
    with pytest.raises(ValueError):
        SimParams(start=START, days=0)
    with pytest.raises(ValueError):
        SimParams(start=START, days=3, bad_rate=0.7)
    with pytest.raises(ValueError):
        SimParams(start=START, days=3, scale="huge")
