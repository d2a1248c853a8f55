"""The world model: parameters, arrivals, live days, and the draws behind choices and watches."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest
from scipy.stats import norm

from jobs.simulator import SimParams
from jobs.simulator.world import (
    BOUNCE_THRESHOLD,
    LONG_WATCH_THRESHOLD,
    PERCEPTION_SD,
    choice_logits,
    choose_anchors,
    draw_outcomes,
)
from tests.jobs.simulator.conftest import DAY_ISO, START, affinity, records

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
def test_choices_are_drawn_from_choice_logits(seed):
    # Two users, five anchors, 100k draws each; a chunk of one row forces the chunked path.
    rng = np.random.default_rng(seed)
    users, anchors = rng.normal(0, 0.5, (2, 4)), rng.normal(0, 0.5, (5, 4))
    log_pop = np.log(1.0 + rng.pareto(1.5, 5))
    counts = np.array([100_000, 100_000])
    cols = choose_anchors(rng, users, counts, anchors, log_pop, 0.7, chunk_elems=5)
    logits = choice_logits(users, anchors, log_pop, 0.7)
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
