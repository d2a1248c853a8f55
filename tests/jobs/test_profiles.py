"""Profiles: leakage-free by construction, exact against a direct recomputation, cold rows."""

from __future__ import annotations

import pandas as pd
import pytest

from features.catalog import ANCHOR_PROFILES, ANCHORS, RAW_WATCH_SESSIONS, USER_PROFILES, USERS
from jobs import daily_stats, leakage_audit, profiles
from jobs.schemas import spark_schema
from tests.jobs import tiny_lake
from tests.jobs.tiny_lake import DAYS, NEW_ANCHOR, NEW_USER

pytestmark = pytest.mark.engine

D = DAYS[6]  # profile / label day; window N = 3 reads DAYS[3..5]
N = 3
H = 4  # the long history reads DAYS[2..5]
# a user seen only in the long history is not cold: has_history follows it too
HISTORY_COLUMNS = ("history_anchors", "history_weights", "history_max_dt", "has_history")


def _build(lake, days=DAYS, day=D, window=N, **kwargs):
    for d in days:
        daily_stats.run(lake, d)
    kwargs.setdefault("history_days", H)
    profiles.run(lake, day, window, last_k=3, **kwargs)


def _snapshot(lake, day=D) -> dict:
    def rows(spec, key):
        frame = lake.read_days(spec, day, day).toPandas()
        frame["category_shares"] = frame.get("category_shares", pd.Series(dtype=object)).map(
            lambda m: sorted(dict(m).items()) if m is not None else None)
        for column in ("last_anchors", "history_anchors", "history_weights"):
            frame[column] = frame.get(column, pd.Series(dtype=object)).map(
                lambda a: list(a) if a is not None else None)
        frame = frame.astype(object).where(frame.notna(), None)  # NaN != NaN; None == None
        return frame.sort_values(key).reset_index(drop=True).to_dict("records")

    return {"users": rows(USER_PROFILES, "user_id"), "anchors": rows(ANCHOR_PROFILES, "anchor_id")}


def _mutate(lake, day, seed):
    """Change a day's sessions: different rows and one extra heavy session of user 1."""
    rows = tiny_lake.sessions_for(day, seed=1000 + seed)
    rows.append((7, 1, 101, rows[0][3], 300.0, 9.0, day))
    tiny_lake.write_sessions(lake, day, rows)
    daily_stats.run(lake, day)
    profiles.run(lake, D, N, last_k=3, history_days=H)


def _without_history(snapshot: dict) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in HISTORY_COLUMNS}
            for row in snapshot["users"]]


@pytest.mark.parametrize("seed", [0, 1])
def test_profiles_of_d_depend_only_on_the_window(lake, seed):
    tiny_lake.build(lake, seed)
    _build(lake)
    before = _snapshot(lake)
    assert leakage_audit.audit_day(lake, D)["ok"]

    for day in (D, DAYS[7]):  # the label day and later: no effect
        _mutate(lake, day, seed)
    assert _snapshot(lake) == before
    _mutate(lake, DAYS[1], seed)  # D-H-1, just outside the long history: no effect
    assert _snapshot(lake) == before
    _mutate(lake, DAYS[2], seed)  # D-N-1: outside the window, inside the long history
    after = _snapshot(lake)
    assert after["anchors"] == before["anchors"]
    assert _without_history(after) == _without_history(before)
    assert [r["history_weights"] for r in after["users"]] != [
        r["history_weights"] for r in before["users"]]
    _mutate(lake, DAYS[5], seed)  # D-1: the profiles change
    assert _without_history(_snapshot(lake)) != _without_history(after)


def _reference_user_stats(lake) -> pd.DataFrame:
    """Direct recomputation from raw sessions over D-N .. D-1, in pandas."""
    raw = lake.read_days(RAW_WATCH_SESSIONS, DAYS[3], DAYS[5]).toPandas()
    raw["bounce"] = raw.watch_seconds <= 2
    raw["long"] = raw.watch_seconds >= 30
    return raw.groupby("user_id").agg(
        sessions=("session_id", "size"), watch_seconds=("watch_seconds", "sum"),
        active_days=("dt", "nunique"), distinct_anchors=("anchor_id", "nunique"),
        bounces=("bounce", "sum"), long_watches=("long", "sum"), gift_value=("gift_value", "sum"),
        source_min_dt=("dt", "min"), source_max_dt=("dt", "max"))


def test_incremental_sums_equal_a_direct_recomputation(lake):
    tiny_lake.build(lake, seed=5)
    _build(lake)
    got = lake.read_days(USER_PROFILES, D, D).toPandas().set_index("user_id")
    expected = _reference_user_stats(lake)
    warm = got[got.source_max_dt.notna()]  # active in the window
    assert got.has_history[warm.index].all()
    assert sorted(warm.index) == sorted(expected.index)
    for column in expected.columns:
        assert (warm.loc[expected.index, column].tolist() == expected[column].tolist()), column
    # the latest anchors come first; ties in time are broken by anchor id
    raw = lake.read_days(RAW_WATCH_SESSIONS, DAYS[3], DAYS[5]).toPandas()
    # shares of the window's watch time per category watched (anchor 101 + k: CATEGORIES[k])
    raw["category"] = raw.anchor_id.map(lambda a: tiny_lake.CATEGORIES[a % 3])
    seconds = raw[raw.watch_seconds > 0].groupby(["user_id", "category"]).watch_seconds.sum()
    for user, shares in (seconds / seconds.groupby("user_id").transform("sum")).groupby(
            "user_id"):
        expected_shares = {c: pytest.approx(v) for (_, c), v in shares.items()}
        assert dict(got.loc[user, "category_shares"]) == expected_shares
    for user, group in raw.groupby("user_id"):
        order = (group.groupby("anchor_id").start_time.max().reset_index()
                 .sort_values(["start_time", "anchor_id"], ascending=[False, True]))
        assert list(got.loc[user, "last_anchors"]) == order.anchor_id.tolist()[:3]


def test_cold_users_and_anchors_get_flagged_rows(lake):
    tiny_lake.build(lake, seed=3)
    # The new user and anchor first appear on DAYS[5]: in the profiles of DAYS[5] they have no
    # history (their first day is the label day itself), so they must be cold.
    _build(lake, days=DAYS[:6], day=DAYS[5])
    users = lake.read_days(USER_PROFILES, DAYS[5], DAYS[5]).toPandas().set_index("user_id")
    anchors = lake.read_days(ANCHOR_PROFILES, DAYS[5], DAYS[5]).toPandas().set_index("anchor_id")
    cold_user, cold_anchor = users.loc[NEW_USER], anchors.loc[NEW_ANCHOR]
    assert not cold_user.has_history and not cold_anchor.has_history
    # a user with a long history is not cold, whether or not they were active in the window
    assert users[users.history_max_dt.notna()].has_history.all()
    assert cold_user.sessions == 0 and cold_user.watch_seconds == 0.0
    assert list(cold_user.last_anchors) == [] and dict(cold_user.category_shares) == {}
    assert cold_user.tenure_days == 0 and cold_user.gender == "F"
    assert cold_anchor.live_days == 0 and cold_anchor.days_since_debut == 0
    assert pd.isna(cold_user.days_since_last_active)
    assert users.drop(NEW_USER).has_history.any()


def test_missing_window_days_are_named_and_partial_windows_recorded(lake):
    tiny_lake.build(lake, seed=4)
    for d in DAYS[:5]:
        daily_stats.run(lake, d)
    with pytest.raises(FileNotFoundError) as gap:
        profiles.run(lake, DAYS[6], window=3)  # a gap inside the history: always an error
    assert str(gap.value) == (
        f"missing daily_user_stats, daily_anchor_stats, daily_user_anchor for {DAYS[5]}: "
        f"profiles {DAYS[6]} window 3: a gap inside the history: run jobs.daily_stats for "
        f"these days")
    with pytest.raises(FileNotFoundError, match="starts before the history: use "
                                                "--allow-partial"):
        profiles.run(lake, DAYS[1], window=3)  # window starts before the history
    profiles.run(lake, DAYS[1], window=3, allow_partial=True)
    rows = lake.read_days(USER_PROFILES, DAYS[1], DAYS[1]).collect()
    assert {(r.window_days, r.window_days_present) for r in rows} == {(3, 1)}
    assert leakage_audit.audit_day(lake, DAYS[1])["ok"]


def test_audit_catches_a_leaked_row(lake):
    tiny_lake.build(lake, seed=6)
    _build(lake)
    leaked = lake.read_days(USER_PROFILES, D, D).withColumn(
        "source_max_dt", profiles.F.lit(D))
    lake.write_partition(leaked, USER_PROFILES, D)
    report = leakage_audit.audit_day(lake, D)
    assert not report["ok"]
    assert report["tables"]["user_profiles"]["rows_reading_day_or_later"] > 0
    assert report["tables"]["anchor_profiles"]["ok"]
    assert leakage_audit.main(["--date", D, "--lake", str(lake.root), "--engine", "sail"]) == 1


def test_audit_catches_a_long_history_that_read_the_day(lake):
    tiny_lake.build(lake, seed=6)
    _build(lake)
    rows = lake.read_days(USER_PROFILES, D, D)
    leaked = rows.withColumn("history_max_dt", profiles.F.when(
        profiles.F.col("user_id") == 1, profiles.F.lit(D)).otherwise(
        profiles.F.col("history_max_dt")))
    lake.write_partition(leaked, USER_PROFILES, D)
    table = leakage_audit.audit_day(lake, D)["tables"]["user_profiles"]
    assert table["rows_reading_day_or_later"] == 1 and not table["ok"]


def test_a_mistyped_lake_is_not_a_partial_window(tmp_path, capsys):
    """With --allow-partial a missing lake used to read as an empty history."""
    wrong = tmp_path / "no-such-lake"
    for flags in ([], ["--allow-partial"]):
        code = profiles.main(["--date", D, "--window", "3", "--lake", str(wrong),
                              "--engine", "sail", *flags])
        assert code == 2
        assert capsys.readouterr().err.strip() == (
            f"profiles: lake root {wrong} does not exist: check --lake or $LAKE_ROOT")


def test_the_job_prints_the_rows_it_wrote(lake, capsys):
    tiny_lake.build(lake, seed=7)
    for d in DAYS[3:6]:
        daily_stats.run(lake, d)
    assert profiles.main(["--date", D, "--window", "3", "--last-k", "3", "--lake",
                          str(lake.root), "--engine", "sail"]) == 0
    # users 1..12 and anchors 101..106 exist from DAYS[0], the new ones from DAYS[5]
    assert capsys.readouterr().out.splitlines()[-1] == (
        f"profiles {D} (window 3): user_profiles 13 rows, anchor_profiles 7 rows")


def test_the_long_history_ranks_anchors_by_decayed_watch_time(lake):
    """Against a direct pandas recomputation from raw sessions of D-H .. D-1."""
    import numpy as np

    from features.rules import HISTORY_HALF_LIFE_DAYS

    tiny_lake.build(lake, 5)
    _build(lake)
    raw = lake.read_days(RAW_WATCH_SESSIONS, DAYS[2], DAYS[5]).toPandas()
    pairs = raw.groupby(["user_id", "anchor_id", "dt"], as_index=False).watch_seconds.sum()
    age = (pd.Timestamp(D) - pd.to_datetime(pairs.dt)).dt.days
    pairs["w"] = pairs.watch_seconds * 0.5 ** (age / HISTORY_HALF_LIFE_DAYS)
    expected = pairs.groupby(["user_id", "anchor_id"]).w.sum().reset_index()
    expected["w"] = np.log1p(expected.w)
    profile = lake.read_days(USER_PROFILES, D, D).toPandas().set_index("user_id")
    checked = 0
    for user, rows in expected.groupby("user_id"):
        rows = rows.sort_values(["w", "anchor_id"], ascending=[False, True]).head(32)
        got = profile.loc[user]
        assert list(got.history_anchors) == rows.anchor_id.tolist()
        assert np.allclose(list(got.history_weights), rows.w.to_numpy(), rtol=0, atol=1e-5)
        assert got.history_max_dt == pairs[pairs.user_id == user].dt.max()
        assert got.history_days == H
        checked += 1
    assert checked >= 5
    never = profile[~profile.index.isin(expected.user_id)]
    assert len(never) and all(len(a) == 0 for a in never.history_anchors)


def test_reuse_adds_the_new_entities_to_current_profiles_and_equals_a_full_build(
        lake, monkeypatch):
    tiny_lake.build(lake, seed=9)
    fifth = DAYS[5]
    for d in DAYS[:5]:
        daily_stats.run(lake, d)
    new = {spec: lake.read_days(spec, fifth, fifth).toPandas() for spec in (USERS, ANCHORS)}
    # as the previous day's run builds them: before the day's new entities are ingested
    for spec in (USERS, ANCHORS):
        lake.write_partition(lake.read_days(spec, fifth, fifth).limit(0), spec, fifth)
    profiles.run(lake, fifth, N, last_k=3, history_days=H)
    before = _snapshot(lake, fifth)
    assert NEW_USER not in {r["user_id"] for r in before["users"]}
    for spec, rows in new.items():  # ingested now
        lake.write_partition(lake.spark.createDataFrame(rows, spark_schema(spec)), spec, fifth)

    def no_full_build(*args, **kwargs):
        raise AssertionError("reuse built the day in full")

    with monkeypatch.context() as patched:
        patched.setattr(profiles, "check_window", no_full_build)
        profiles.run(lake, fifth, N, last_k=3, history_days=H, reuse=True)
    reused = _snapshot(lake, fifth)
    assert len(reused["users"]) == len(before["users"]) + 1
    assert leakage_audit.audit_day(lake, fifth)["ok"]
    profiles.run(lake, fifth, N, last_k=3, history_days=H)  # full build
    assert _snapshot(lake, fifth) == reused
    # other settings than those the day was built with: built in full
    profiles.run(lake, fifth, N + 1, last_k=3, history_days=H, reuse=True)
    assert {r["window_days"] for r in _snapshot(lake, fifth)["users"]} == {N + 1}
