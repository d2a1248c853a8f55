"""The oracle baseline (training/models/oracle.py) against the simulator's own world model.

The oracle only reads the saved truth files; these tests rebuild the world with
jobs.simulator.world and check that the oracle ranks as the world draws.
"""

from __future__ import annotations

import json
import shutil
from datetime import date

import numpy as np
import pytest
from scipy.stats import norm

import training.models
from jobs.simulator import SimParams, simulate, world
from tests.jobs.simulator.conftest import failures, lines, records
from training.models.base import ScoringContext
from training.models.oracle import OracleScorer, oracle_baseline

pytestmark = pytest.mark.unit

# temperature 0.5, not the default 1: an oracle that ignored the saved one would disagree
PARAMS = SimParams(start=date(2026, 3, 1), days=2, scale="tiny", seed=4, temperature=0.5)
LAST = "2026-03-02"


@pytest.fixture(scope="module")
def landing(tmp_path_factory):
    root = tmp_path_factory.mktemp("oracle") / "landing"
    simulate(PARAMS, root, progress=None)
    return root


def context(root) -> ScoringContext:
    return ScoringContext(training_set=None, landing_root=root)  # the oracle needs no data


def rebuilt_world() -> tuple[world.World, world.Day]:
    """The world and last day of PARAMS, drawn again from the world module alone."""
    tastes = world.make_tastes(world.rng_for(PARAMS.seed, 0, "tastes"))
    state, day = world.World.empty(), None
    for i in range(PARAMS.days):
        state, day = world.draw_day(PARAMS, tastes, state, i)
    return state, day


def test_oracle_is_the_registered_baseline():
    assert training.models._BASELINES["oracle"] is oracle_baseline


def test_oracle_ranks_as_the_world_draws(landing):
    state, day = rebuilt_world()
    live_ids = np.array([r["anchor_id"] for r in records(landing, "live_schedule", LAST)])
    assert live_ids.tolist() == (day.live + 1).tolist()  # the files are this world's
    user_ids = np.arange(1, state.n_users + 1)
    scores = oracle_baseline(context(landing)).score(
        LAST, {"user_id": user_ids}, {"anchor_id": live_ids})
    assert scores.shape == (len(user_ids), len(live_ids))

    # What the world would draw: P(choose | live) from the very logits choose_anchors samples,
    # times P(long watch) = P(affinity + N(0, sd) > threshold) with the world's constants.
    logits = world.choice_logits(state.user_vecs, state.anchor_vecs[day.live],
                                 np.log(state.anchor_pop[day.live]), PARAMS.temperature)
    p_choose = np.exp(logits - logits.max(axis=1, keepdims=True))
    p_choose /= p_choose.sum(axis=1, keepdims=True)
    affinity = state.user_vecs @ state.anchor_vecs[day.live].T
    p_long = norm.cdf((affinity - world.LONG_WATCH_THRESHOLD) / world.PERCEPTION_SD)
    joint = p_choose * p_long

    # log scores differ from log P(choose, long watch) by one constant per user ...
    gap = scores - np.log(joint)
    assert np.ptp(gap, axis=1).max() < 1e-9
    # ... so each user's ranking of the live anchors is the world's
    np.testing.assert_array_equal(np.argsort(-scores, axis=1, kind="stable")[:, :10],
                                  np.argsort(-joint, axis=1, kind="stable")[:, :10])


def test_oracle_separates_long_watches_from_bounces(landing):
    # On the day's own sessions: pairs the world made a long watch outscore its bounces.
    users = {r["user_id"] for d in ("2026-03-01", LAST) for r in records(landing, "users", d)}
    anchors = {r["anchor_id"] for d in ("2026-03-01", LAST)
               for r in records(landing, "anchors", d)}
    sessions = [json.loads(x) for x in lines(landing, "watch_sessions", LAST)
                if not failures(x, LAST, users, anchors)]
    scorer = oracle_baseline(context(landing))
    pair = np.array([scorer.score(LAST, {"user_id": np.array([s["user_id"]])},
                                  {"anchor_id": np.array([s["anchor_id"]])})[0, 0]
                     for s in sessions])
    watch = np.array([s["watch_seconds"] for s in sessions])
    assert pair[watch >= 30].mean() > pair[watch <= 2].mean() + 1.0


def test_no_oracle_without_ground_truth(landing, tmp_path):
    assert oracle_baseline(context(None)) is None
    assert oracle_baseline(context(tmp_path)) is None  # no _ground_truth at all
    # latents without the choice model (a landing zone from before model.json): its
    # constants are unknown, so there is no oracle rather than one with guessed constants
    (tmp_path / "_ground_truth").mkdir()
    shutil.copy(landing / "_ground_truth" / "latents.npz", tmp_path / "_ground_truth")
    assert oracle_baseline(context(tmp_path)) is None


def test_oracle_rejects_ids_and_formats_it_does_not_know(landing, tmp_path):
    scorer = OracleScorer.load(landing)
    with pytest.raises(ValueError, match="user ids are not in the ground truth"):
        scorer.score(LAST, {"user_id": np.array([1, 10**6])}, {"anchor_id": np.array([1])})
    with pytest.raises(ValueError, match="anchor ids"):
        scorer.score(LAST, {"user_id": np.array([1])}, {"anchor_id": np.array([0])})
    shutil.copytree(landing / "_ground_truth", tmp_path / "_ground_truth")
    model = tmp_path / "_ground_truth" / "model.json"
    model.write_text(json.dumps({**json.loads(model.read_text()), "format": 2}))
    with pytest.raises(ValueError, match="format"):
        OracleScorer.load(tmp_path)
