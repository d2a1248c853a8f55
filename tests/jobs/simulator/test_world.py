"""The world model: parameters, arrivals, live days, and the draws behind choices and watches."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from scipy.stats import norm

from jobs.simulator import SimParams
from jobs.simulator.world import (
    BOUNCE_THRESHOLD,
    HABIT_FLOOR,
    LONG_WATCH_THRESHOLD,
    PERCEPTION_SD,
    Habits,
    World,
    choice_logits,
    choose_anchors,
    draw_day,
    draw_outcomes,
    make_tastes,
    rng_for,
)
from tests.jobs.simulator.conftest import DAY_ISO, START, affinity, records, small_scale

pytestmark = pytest.mark.unit


def test_params_are_validated():
    with pytest.raises(ValueError):
        SimParams(start=START, days=0)
    with pytest.raises(ValueError):
        SimParams(start=START, days=3, bad_rate=0.7)
    with pytest.raises(ValueError):
        SimParams(start=START, days=3, scale="huge")
    with pytest.raises(ValueError, match="seed"):
        SimParams(start=START, days=3, seed=-1)
    with pytest.raises(ValueError, match="temperature"):
        SimParams(start=START, days=3, temperature=0.0)
    for name, bad in (("habit_strength", -1.0), ("habit_strength", 21.0),
                      ("habit_saturation", 0.0), ("habit_half_life_days", 0.0),
                      ("habit_recall", 0.0), ("habit_recall", 1.5),
                      ("habit_burn_in_days", -1), ("habit_burn_in_days", 400)):
        with pytest.raises(ValueError, match=name):
            SimParams(start=START, days=3, **{name: bad})
    assert SimParams(start=START, days=3, habit_half_life_days=10).habit_decay == 0.5**0.1


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


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("with_bonus", [False, True])
def test_choices_are_drawn_from_choice_logits(seed, with_bonus):
    # Two users, five anchors, 100k draws each; a chunk of one row forces the chunked path.
    # The bonus (the habits' terms) adds to the logits of its cells.
    rng = np.random.default_rng(seed)
    users, anchors = rng.normal(0, 0.5, (2, 4)), rng.normal(0, 0.5, (5, 4))
    log_pop = np.log(1.0 + rng.pareto(1.5, 5))
    counts = np.array([100_000, 100_000])
    bonus = (np.array([0, 0, 1]), np.array([1, 4, 4]), np.array([2.0, 0.5, 3.0]))
    cols = choose_anchors(rng, users, counts, anchors, log_pop, 0.7, chunk_elems=5,
                          bonus=bonus if with_bonus else None)
    logits = choice_logits(users, anchors, log_pop, 0.7)
    if with_bonus:
        logits[bonus[0], bonus[1]] += bonus[2]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    for row in range(2):
        drawn = cols[row * 100_000:(row + 1) * 100_000]
        freq = np.bincount(drawn, minlength=5) / 100_000
        # binomial sd <= sqrt(0.25 / 1e5) = 0.0016: 0.006 is ~4 sd
        np.testing.assert_allclose(freq, p[row], atol=0.006)


@pytest.mark.parametrize("aff", [-1.0, 0.0, 0.9, 1.5, 2.5])
def test_long_watch_and_bounce_rates_follow_the_perceived_match(aff):
    # watch >= 30 s exactly when affinity + N(0, sd) > the long-watch threshold; <= 2 s when
    # it is below the bounce threshold (mid watches are 3..29 s, long ones 30 s and more)
    n = 200_000
    watch, _ = draw_outcomes(np.random.default_rng(11), np.full(n, aff))
    p_long = norm.cdf((aff - LONG_WATCH_THRESHOLD) / PERCEPTION_SD)
    p_bounce = norm.cdf((BOUNCE_THRESHOLD - aff) / PERCEPTION_SD)
    assert abs((watch >= 30).mean() - p_long) < 0.005  # sd <= 0.0011
    assert abs((watch <= 2).mean() - p_bounce) < 0.005


def test_habits_decay_grow_and_forget():
    decay = 0.5 ** (1 / 30)
    habits = Habits(np.array([0, 0, 2]), np.array([3, 5, 1]),
                    np.array([1.0, HABIT_FLOOR, 4.0], np.float32))
    # user 0 watches anchor 3 long twice, user 1 anchor 0 once (a new pair)
    after = habits.updated(decay, np.array([0, 1, 0]), np.array([3, 0, 3]))
    assert after.users.tolist() == [0, 1, 2] and after.anchors.tolist() == [3, 0, 1]
    assert after.strength.dtype == np.float32
    assert after.strength.tolist() == [np.float32(1.0 * decay + 2), 1.0,
                                       np.float32(4.0 * decay)]
    # (0, 5) fell below the floor and is forgotten; keys stay sorted by user, then anchor
    assert np.all(np.diff(after.keys()) > 0)
    # a habit halves every half-life without watches
    h = Habits(np.array([0]), np.array([0]), np.array([8.0], np.float32))
    for _ in range(30):
        h = h.updated(decay, np.empty(0, np.int64), np.empty(0, np.int64))
    assert h.strength[0] == pytest.approx(4.0, rel=1e-5)


def test_a_recalled_habit_pulls_harder_than_its_expectation():
    params = SimParams(start=START, days=1)
    habits = Habits(np.array([0, 0]), np.array([0, 1]), np.array([0.3, 30.0], np.float32))
    term = habits.term(params)
    # strength * h / (h + saturation): half the strength at h = saturation
    assert term[0] == pytest.approx(params.habit_strength / 2)
    assert 0 < term[0] < term[1] < params.habit_strength
    expected = habits.expected_term(params)
    np.testing.assert_allclose(
        expected, np.log(1 - params.habit_recall + params.habit_recall * np.exp(term)))
    assert np.all(expected < term)


def run_world(params: SimParams) -> list:
    tastes = make_tastes(rng_for(params.seed, 0, "tastes"))
    state, days = World.empty(), []
    for i in range(params.days):
        state, day = draw_day(params, tastes, state, i)
        days.append(day)
    return days


def repeat_shares(days: list, last: int) -> tuple[float, float]:
    """Over the last `last` days: the share of positives (a pair's day with >= 30 s) whose
    pair was watched on an earlier day, and the share on a pair with a habit."""
    seen: set[int] = set()
    repeats = positives = habitual = 0
    for i, day in enumerate(days):
        keys = day.users.astype(np.int64) << 32 | day.anchors
        pairs, where = np.unique(keys, return_inverse=True)
        positive = pairs[np.bincount(where, weights=day.watch) >= 30]
        if i >= len(days) - last:
            repeats += sum(k in seen for k in positive.tolist())
            habitual += int(np.isin(positive, day.habits.keys()).sum())
            positives += len(positive)
        seen.update(pairs.tolist())
    return repeats / positives, habitual / positives


def test_habits_make_most_positives_returns():
    # On a small world (2k users, 400 anchors) over 10 days: with habits most positives of
    # the last days are on anchors the user watched earlier in the run, well above the
    # repeats that tastes alone make; most are on a habit the user had that morning.
    with small_scale() as scale:
        days = run_world(SimParams(start=START, days=10, scale=scale))
        memoryless = run_world(SimParams(start=START, days=10, scale=scale, habit_strength=0))
    repeats, habitual = repeat_shares(days, last=3)
    assert repeats > 0.5 and habitual > 0.7
    assert repeats > repeat_shares(memoryless, last=3)[0] + 0.1
    assert all(len(day.habits) == 0 for day in memoryless)


def test_the_initial_population_starts_with_habits():
    # the burn-in: day 0's choices already use the habits of past viewing
    params = SimParams(start=START, days=1, scale="tiny")
    day = run_world(params)[0]
    assert len(day.habits) > 0 and len(np.unique(day.habits.users)) > 150
    assert len(run_world(SimParams(start=START, days=1, scale="tiny",
                                   habit_burn_in_days=0))[0].habits) == 0
