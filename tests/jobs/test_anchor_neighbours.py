"""Anchor neighbours: shrunk cosine of co-watching by hand, top-n, vote cap, leakage-free,
partial and empty windows, idempotent, the same numbers as the NumPy item-CF."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from features import day_status
from features.catalog import ANCHOR_NEIGHBOURS, DAILY_USER_ANCHOR
from features.days import add_days, days_between
from jobs import anchor_neighbours
from jobs.anchor_neighbours import JOB
from jobs.schemas import spark_schema
from training.models.item_cf import (
    ItemCFScorer,
    ItemCFSettings,
    anchor_similarity,
    most_watched,
)

pytestmark = pytest.mark.engine

D = "2026-05-10"
BEFORE = [add_days(D, -2), add_days(D, -1)]
T = datetime(2026, 5, 1, tzinfo=UTC)


def put_day(lake, day, watches):
    """daily_user_anchor of `day` from (user, anchor, watch seconds) and its daily_stats
    record (the tables daily_stats would write, stood in for)."""
    rows = [(u, a, 1, float(s), 0.0, T, day) for u, a, s in watches]
    lake.write_partition(lake.spark.createDataFrame(rows, spark_schema(DAILY_USER_ANCHOR)),
                         DAILY_USER_ANCHOR, day)
    lake.finish_day("daily_stats", day, (), {}, {})


def table(lake, day=D) -> dict[tuple[int, int], tuple[float, int]]:
    frame = lake.read_days(ANCHOR_NEIGHBOURS, day, day).toPandas()
    assert set(frame["dt"]) <= {day}
    return {(int(r.anchor_id), int(r.neighbour_id)): (float(r.similarity), int(r.co_viewers))
            for r in frame.itertuples()}


def hand_lake(lake):
    # viewers over the window: anchor 1 {1, 2, 3}, anchor 2 {1, 2}, anchor 3 {3};
    # user 1 watches anchor 1 on both days (one viewer), user 4 only anchor 4 (no pair)
    put_day(lake, BEFORE[0], [(1, 1, 60), (2, 1, 30), (2, 2, 30), (4, 4, 10)])
    put_day(lake, BEFORE[1], [(1, 1, 60), (1, 2, 5), (3, 1, 9), (3, 3, 9)])


def test_similarities_are_the_shrunk_cosine_of_viewer_sets(lake):
    hand_lake(lake)
    counts = anchor_neighbours.run(lake, D, window=2, shrinkage=1.0, top_n=10)
    s12, s13 = 2 / (math.sqrt(3 * 2) + 1), 1 / (math.sqrt(3 * 1) + 1)
    got = table(lake)
    assert got.keys() == {(1, 2), (2, 1), (1, 3), (3, 1)}  # no self pair, no 2-3, no 4
    for (i, j), (sim, co) in got.items():
        expected = {frozenset((1, 2)): (s12, 2), frozenset((1, 3)): (s13, 1)}[frozenset((i, j))]
        assert sim == pytest.approx(expected[0], abs=1e-12) and co == expected[1]
    frame = lake.read_days(ANCHOR_NEIGHBOURS, D, D).toPandas()
    assert set(frame["window_days"]) == {2}
    assert counts == {"anchor_neighbours": 4, "anchors": 3}
    record = day_status.load(lake.root, JOB, D)
    assert record.counts["window_days_present"] == 2 and record.counts["shrinkage"] == 1.0
    assert set(record.inputs) == {f"daily_stats/{d}" for d in BEFORE}


def test_top_n_keeps_the_most_similar_and_ties_go_to_the_smaller_id(lake):
    hand_lake(lake)
    # anchor 10 shares one viewer with 11 and one with 12, symmetric: a tie
    put_day(lake, add_days(D, -3), [(7, 10, 1), (7, 11, 1), (8, 10, 1), (8, 12, 1)])
    anchor_neighbours.run(lake, D, window=3, shrinkage=1.0, top_n=1)
    got = table(lake)
    assert {i: j for i, j in got} == {1: 2, 2: 1, 3: 1, 10: 11, 11: 10, 12: 10}
    assert len(got) == 6  # one neighbour each


def test_a_user_votes_with_their_most_watched_anchors_only(lake):
    # user 1: anchor 1 (100 s over two days), 2 (50 s), 3 (10 s); user 2: anchors 1, 3
    put_day(lake, BEFORE[0], [(1, 1, 60), (1, 2, 50), (1, 3, 10), (2, 1, 5)])
    put_day(lake, BEFORE[1], [(1, 1, 40), (2, 3, 5)])
    anchor_neighbours.run(lake, D, window=2, shrinkage=0.0, top_n=10)
    assert table(lake)[(1, 3)] == (pytest.approx(2 / math.sqrt(2 * 2)), 2)
    anchor_neighbours.run(lake, D, window=2, shrinkage=0.0, top_n=10, max_user_anchors=2)
    capped = table(lake)  # user 1's anchor 3 no longer counts: V1 {1, 2}, V2 {1}, V3 {2}
    assert capped[(1, 2)] == (pytest.approx(1 / math.sqrt(2 * 1)), 1)
    assert capped[(1, 3)] == (pytest.approx(1 / math.sqrt(2 * 1)), 1)
    assert (2, 3) not in capped


def test_the_day_itself_is_never_read(lake):
    hand_lake(lake)
    anchor_neighbours.run(lake, D, window=2, shrinkage=1.0)
    clean = table(lake)
    # day D: everyone co-watches anchors 2, 3 and 9 for hours
    put_day(lake, D, [(u, a, 20_000) for u in range(1, 30) for a in (2, 3, 9)])
    anchor_neighbours.run(lake, D, window=2, shrinkage=1.0)
    assert table(lake) == clean
    anchor_neighbours.run(lake, add_days(D, 1), window=2, shrinkage=1.0)
    assert table(lake, add_days(D, 1)) != clean  # it counts once it is in the past


def test_a_window_before_the_history_is_partial_and_an_empty_one_is_a_complete_day(lake):
    hand_lake(lake)
    anchor_neighbours.run(lake, D, window=5, shrinkage=1.0)  # 3 days precede the history
    assert day_status.load(lake.root, JOB, D).counts["window_days_present"] == 2
    first = BEFORE[0]  # nothing before the first day: empty
    assert anchor_neighbours.run(lake, first, window=5) == {"anchor_neighbours": 0, "anchors": 0}
    assert table(lake, first) == {}
    assert lake.ledger().state(JOB, first) == (None, day_status.load(lake.root, JOB, first).token)
    assert table(lake)  # D untouched


def test_a_gap_inside_the_history_fails_naming_the_day(lake):
    put_day(lake, add_days(D, -3), [(1, 1, 1), (1, 2, 1)])
    put_day(lake, BEFORE[1], [(1, 1, 1), (1, 2, 1)])
    with pytest.raises(FileNotFoundError, match=f"daily_user_anchor for {BEFORE[0]}"):
        anchor_neighbours.run(lake, D, window=3)
    assert lake.ledger().state(JOB, D)[0] == day_status.MISSING


def test_a_rerun_gives_the_same_partition_and_touches_no_other(lake):
    hand_lake(lake)
    put_day(lake, D, [(5, 2, 10), (5, 3, 10)])
    anchor_neighbours.run(lake, D, window=2, shrinkage=1.0)
    anchor_neighbours.run(lake, add_days(D, 1), window=2, shrinkage=1.0)
    first, other = table(lake), table(lake, add_days(D, 1))
    anchor_neighbours.run(lake, D, window=2, shrinkage=1.0)
    assert table(lake) == first and table(lake, add_days(D, 1)) == other
    assert lake.rows(ANCHOR_NEIGHBOURS) == len(first) + len(other)


def random_lake(lake, seed, days):
    rng = np.random.default_rng(seed)
    watches = {}
    for day in days:
        n = 60
        rows = list(zip(rng.integers(0, 25, n).tolist(), rng.integers(100, 130, n).tolist(),
                        rng.choice([1.0, 2.5, 30.0, 30.0, 600.0], n).tolist(), strict=True))
        put_day(lake, day, rows)
        watches[day] = rows
    return watches


@pytest.mark.parametrize("seed", [0, 1])
def test_the_spark_job_and_numpy_give_the_same_neighbours(lake, seed):
    days = days_between(add_days(D, -6), add_days(D, -1))
    watches = random_lake(lake, seed, days)
    shrinkage, top_n, cap = (2.0, 4, 5) if seed == 0 else (0.0, 50, 200)
    anchor_neighbours.run(lake, D, window=6, shrinkage=shrinkage, top_n=top_n,
                          max_user_anchors=cap)
    rows = np.array([r for day in days for r in watches[day]])
    users, anchors = most_watched(rows[:, 0], rows[:, 1], rows[:, 2], cap)
    ids, a = np.unique(anchors, return_inverse=True)
    _, u = np.unique(users, return_inverse=True)
    sim = anchor_similarity(u, a, u.max() + 1, len(ids), shrinkage, top_n).tocoo()
    numpy = {(int(ids[i]), int(ids[j])): v for i, j, v in zip(sim.row, sim.col, sim.data,
                                                             strict=True)}
    spark = {k: v for k, (v, _) in table(lake).items()}
    assert spark.keys() == numpy.keys()
    assert max(abs(spark[k] - numpy[k]) for k in spark) <= 1e-9


def test_the_item_cf_scorer_reads_the_table_and_scores_as_numpy_does(lake, tmp_path):
    days = days_between(add_days(D, -6), add_days(D, -1))
    random_lake(lake, 3, days)
    settings = ItemCFSettings(window_days=6, recent_days=3, shrinkage=2.0, neighbours=5)
    anchor_neighbours.run(lake, D, window=6, shrinkage=2.0, top_n=8)
    users, anchors = {"user_id": np.arange(0, 30)}, {"anchor_id": np.arange(95, 135)}
    scorer = ItemCFScorer(lake.root, "delta", settings)
    scores = scorer.score(D, users, anchors)
    assert scorer.fit(D).source == "anchor_neighbours"
    numpy = ItemCFScorer(lake.root, "delta", settings.model_copy(update={"use_table": False}))
    np.testing.assert_allclose(scores, numpy.score(D, users, anchors), rtol=0, atol=1e-9)
    assert numpy.fit(D).source == "numpy"
    other = ItemCFScorer(lake.root, "delta", settings.model_copy(update={"shrinkage": 1.0}))
    assert other.fit(D).source == "numpy"  # built with other settings: not used
    # a re-run input makes the day out of date: not used either
    put_day(lake, days[-1], [(1, 100, 5.0)])
    stale = ItemCFScorer(lake.root, "delta", settings)
    assert stale.fit(D).source == "numpy"


def test_cli_validates_its_arguments_and_prints_one_line(lake, tmp_path, capsys):
    hand_lake(lake)
    for bad in (["--top-n", "0"], ["--shrinkage", "nan"], ["--window", "x"],
                ["--max-user-anchors", "1"]):
        with pytest.raises(SystemExit) as exit_:
            anchor_neighbours.main(["--lake", str(lake.root), "--date", D, *bad])
        assert exit_.value.code == 2
    capsys.readouterr()
    missing = tmp_path / "nowhere"
    assert anchor_neighbours.main(["--lake", str(missing), "--date", D]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"{JOB}: lake root") and "\n" not in err
    assert not missing.exists()
    assert anchor_neighbours.main(["--lake", str(lake.root), "--date", D, "--window", "2",
                                   "--shrinkage", "1", "--top-n", "1"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"{JOB} {D} (window 2, shrinkage 1, top 1): anchor_neighbours 3 rows, "
                   f"3 anchors"]
