"""The oracle baselines (training/models/oracle.py) against the simulator's own world model.

The oracles only read the saved truth files; these tests rebuild the world with
jobs.simulator.world and check that the oracle ranks as the world draws, habits included,
and that the content oracle scores a cold anchor from its content alone.
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
from tests.jobs.simulator.conftest import failures, lines, records, small_scale
from training.models.base import ScoringContext
from training.models.oracle import (
    ContentOracleScorer,
    OracleScorer,
    content_oracle_baseline,
    oracle_baseline,
)

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


def rebuilt_days() -> tuple[world.Tastes, list[tuple[world.World, world.Day]]]:
    """The tastes, and the world (as it ends) and draws of every day of PARAMS, drawn again
    from the world module alone."""
    tastes = world.make_tastes(world.rng_for(PARAMS.seed, 0, "tastes"))
    state, days = world.World.empty(), []
    for i in range(PARAMS.days):
        state, day = world.draw_day(PARAMS, tastes, state, i)
        days.append((state, day))
    return tastes, days


def rebuilt_world() -> tuple[world.World, world.Day]:
    """The world and last day of PARAMS."""
    return rebuilt_days()[1][-1]


def dense_habit_term(day: world.Day, state: world.World, columns: np.ndarray) -> np.ndarray:
    """`[users, len(columns)]` the expected habit term of the day's habits on the anchors
    `columns` (0 where a pair has no habit)."""
    term = np.zeros((state.n_users, len(columns)))
    col = world.positions_of(columns, state.n_anchors)
    keep = col[day.habits.anchors] >= 0
    term[day.habits.users[keep], col[day.habits.anchors[keep]]] = (
        day.habits.expected_term(PARAMS)[keep])
    return term


def test_oracles_are_registered_baselines():
    assert training.models._BASELINES["oracle"] is oracle_baseline
    assert training.models._BASELINES["content_oracle"] is content_oracle_baseline


def test_oracle_ranks_as_the_world_draws(landing):
    state, day = rebuilt_world()
    live_ids = np.array([r["anchor_id"] for r in records(landing, "live_schedule", LAST)])
    assert live_ids.tolist() == (day.live + 1).tolist()  # the files are this world's
    user_ids = np.arange(1, state.n_users + 1)
    scores = oracle_baseline(context(landing)).score(
        LAST, {"user_id": user_ids}, {"anchor_id": live_ids})
    assert scores.shape == (len(user_ids), len(live_ids))

    # What the world would draw: P(choose | live) from the very logits choose_anchors samples,
    # the day's habits at their term expected over the day's recall, times P(long watch) =
    # P(affinity + N(0, sd) > threshold) with the world's constants.
    assert len(day.habits) > 0
    logits = world.choice_logits(state.user_vecs, state.anchor_vecs[day.live],
                                 np.log(state.anchor_pop[day.live]), PARAMS.temperature)
    logits += dense_habit_term(day, state, day.live)
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
    assert content_oracle_baseline(context(None)) is None
    assert content_oracle_baseline(context(tmp_path)) is None
    # a format-2 model.json without the habits it names: incomplete, no oracle either
    shutil.copy(landing / "_ground_truth" / "model.json", tmp_path / "_ground_truth")
    assert oracle_baseline(context(tmp_path)) is None
    assert content_oracle_baseline(context(tmp_path)) is None


def test_oracle_rejects_ids_and_formats_it_does_not_know(landing, tmp_path):
    scorer = OracleScorer.load(landing)
    with pytest.raises(ValueError, match="user ids are not in the ground truth"):
        scorer.score(LAST, {"user_id": np.array([1, 10**6])}, {"anchor_id": np.array([1])})
    with pytest.raises(ValueError, match="anchor ids"):
        scorer.score(LAST, {"user_id": np.array([1])}, {"anchor_id": np.array([0])})
    shutil.copytree(landing / "_ground_truth", tmp_path / "_ground_truth")
    model = tmp_path / "_ground_truth" / "model.json"
    model.write_text(json.dumps({**json.loads(model.read_text()), "format": 3}))
    with pytest.raises(ValueError, match="format"):
        OracleScorer.load(tmp_path)
    with pytest.raises(ValueError, match="format"):
        ContentOracleScorer.load(tmp_path)


def test_oracle_replays_the_habits_of_every_day(landing):
    scorer = OracleScorer.load(landing)
    days = rebuilt_days()[1]
    for i, (_, day) in enumerate(days):  # the habits each day's choices used, bit for bit
        keys, h = scorer.habits.at(i)
        np.testing.assert_array_equal(keys, (day.habits.users + 1) << 32 | day.habits.anchors + 1)
        assert h.dtype == np.float32 and h.tobytes() == day.habits.strength.tobytes()
    keys, h = scorer.habits.at(PARAMS.days)  # and the start of the day after the run
    assert h.tobytes() == days[-1][0].habits.strength.tobytes()
    scorer.habits.at(0)  # going back replays from the start
    with pytest.raises(ValueError, match="no habits"):
        scorer.habits.at(PARAMS.days + 1)
    with pytest.raises(ValueError, match="2026-02-28: no habits.*2026-03-01 .. 2026-03-02"):
        scorer.score("2026-02-28", {"user_id": np.array([1])}, {"anchor_id": np.array([1])})


def with_habit(landing, tmp_path, user_id: int, anchor_id: int, strength: float):
    """A copy of the ground truth where (user_id, anchor_id) has a habit on the first day."""
    shutil.copytree(landing / "_ground_truth", tmp_path / "_ground_truth")
    path = tmp_path / "_ground_truth" / "habits.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    keys = arrays["start_user_ids"] << 32 | arrays["start_anchor_ids"]
    assert not (keys == (user_id << 32 | anchor_id)).any()
    at = int(np.searchsorted(keys, user_id << 32 | anchor_id))
    for name, value in (("start_user_ids", user_id), ("start_anchor_ids", anchor_id),
                        ("start_strength", strength)):
        arrays[name] = np.insert(arrays[name], at, value).astype(arrays[name].dtype)
    np.savez(path, **arrays)
    return tmp_path


def test_a_strong_habit_ranks_an_anchor_higher(landing, tmp_path):
    live_ids = np.array([r["anchor_id"] for r in records(landing, "live_schedule", LAST)])
    users, anchors = {"user_id": np.array([1])}, {"anchor_id": live_ids}
    before = OracleScorer.load(landing).score(LAST, users, anchors)[0]
    keys, _ = OracleScorer.load(landing).habits.at(1)
    no_habit = ~np.isin(1 << 32 | live_ids, keys)
    last = int(np.flatnonzero(no_habit)[np.argmin(before[no_habit])])  # user 1's worst
    after = OracleScorer.load(with_habit(landing, tmp_path, 1, int(live_ids[last]), 10.0)
                              ).score(LAST, users, anchors)[0]
    assert (before > before[last]).sum() == len(live_ids) - 1  # ranked last without ...
    assert (after > after[last]).sum() < len(live_ids) / 4  # ... in the top quarter with it
    # the gain is the expected term of the habit a day later: h = f32(10 * decay)
    model = json.loads((landing / "_ground_truth" / "model.json").read_text())["habit"]
    h = float(np.float32(10.0 * model["decay"]))
    term = model["strength"] * h / (h + model["saturation"])
    assert after[last] - before[last] == pytest.approx(np.log1p(model["recall"]
                                                                * np.expm1(term)))
    others = np.arange(len(live_ids)) != last
    np.testing.assert_array_equal(after[others], before[others])


def test_the_habit_term_ranks_the_days_positives_higher(tmp_path):
    # On a small world (2k users, 400 anchors), most of a day's positives are returns: the
    # oracle with its habit term puts far more of them in a user's top 10 than without.
    with small_scale() as scale:
        params = SimParams(start=date(2026, 3, 1), days=3, scale=scale, seed=4)
        simulate(params, tmp_path, progress=None)
        tastes = world.make_tastes(world.rng_for(params.seed, 0, "tastes"))
        state = world.World.empty()
        for i in range(params.days):
            state, day = world.draw_day(params, tastes, state, i)
    keys = day.users.astype(np.int64) << 32 | day.anchors
    pairs, where = np.unique(keys, return_inverse=True)
    positive = pairs[np.bincount(where, weights=day.watch) >= 30]
    user_ids = np.unique(positive >> 32) + 1
    rows = np.searchsorted(user_ids, (positive >> 32) + 1)
    cols = np.searchsorted(day.live, positive & 0xFFFFFFFF)

    def recall_at_10(scorer: OracleScorer) -> float:
        scores = scorer.score("2026-03-03", {"user_id": user_ids},
                              {"anchor_id": day.live + 1})
        top = np.zeros(scores.shape, dtype=bool)
        np.put_along_axis(top, np.argsort(-scores, axis=1)[:, :10], True, axis=1)
        return float(top[rows, cols].mean())

    without = OracleScorer.load(tmp_path)
    without.habits = None
    assert recall_at_10(OracleScorer.load(tmp_path)) > recall_at_10(without) + 0.15


def test_content_oracle_scores_cold_anchors_from_content_alone(landing):
    z = np.load(landing / "_ground_truth" / "latents.npz")
    content = z["anchor_category"] * 10 + z["anchor_gender"]
    same = next((a, b) for a in range(len(content)) for b in range(a + 1, len(content))
                if content[a] == content[b])
    ids = z["anchor_ids"][list(same)]
    assert not np.allclose(z["anchor_vecs"][same[0]], z["anchor_vecs"][same[1]])
    users = {"user_id": z["user_ids"]}
    scorer = content_oracle_baseline(context(landing))
    cold = scorer.score(LAST, users, {"anchor_id": ids})
    # equal content, equal scores, whatever the hidden traits and popularity
    np.testing.assert_allclose(cold[:, 0], cold[:, 1], rtol=1e-12)
    full = oracle_baseline(context(landing)).score(LAST, users, {"anchor_id": ids})
    assert not np.allclose(full[:, 0], full[:, 1])
    # deterministic: a second load scores the same bits
    again = ContentOracleScorer.load(landing).score(LAST, users, {"anchor_id": ids})
    np.testing.assert_array_equal(cold, again)
    # an anchor with history is scored as the oracle scores it; one without, by content
    mixed = scorer.score(LAST, users, {"anchor_id": ids,
                                       "anchor_has_history": np.array([True, False])})
    np.testing.assert_array_equal(mixed[:, 0], full[:, 0])
    np.testing.assert_array_equal(mixed[:, 1], cold[:, 1])


def test_content_oracle_is_the_expectation_over_the_worlds_anchor_draws(landing):
    # Monte Carlo over the simulator's own draw_anchors (seeded): within one (category,
    # gender), the mean of exp(affinity / T) * P(long watch) over the drawn traits is the
    # content score less log E[popularity] (popularity is drawn independently of content).
    tastes = world.make_tastes(world.rng_for(PARAMS.seed, 0, "tastes"))
    drawn = world.draw_anchors(np.random.default_rng(0), tastes, 1_000_000)
    scorer = ContentOracleScorer.load(landing)
    z = np.load(landing / "_ground_truth" / "latents.npz")
    np.testing.assert_array_equal(z["category_centroids"], tastes.category)
    user_ids = np.array([1, 2, 3, 50, 200])
    vecs = z["user_vecs"][user_ids - 1]
    for cat, gender in ((0, 0), (5, 1), (11, 0)):
        group = (drawn["category"] == cat) & (drawn["gender"] == gender)
        affinity = vecs @ drawn["vecs"][group].T
        weight = (np.exp(affinity / PARAMS.temperature)
                  * norm.cdf((affinity - world.LONG_WATCH_THRESHOLD) / world.PERCEPTION_SD))
        mc = weight.mean(axis=1)
        se = weight.std(axis=1) / mc / np.sqrt(group.sum())  # of log(mc), heavy-tailed
        anchor = int(np.flatnonzero((z["anchor_category"] == cat)
                                    & (z["anchor_gender"] == gender))[0]) + 1
        exact = scorer.content_scores({"user_id": user_ids}, {"anchor_id": np.array([anchor])})
        assert np.all(np.abs(np.log(mc) - (exact[:, 0] - np.log(3.0))) < 4 * se + 1e-3)
        assert se.max() < 0.03  # tight enough to tell the expected traits' score apart
        at_mean = (affinity.mean(axis=1) / PARAMS.temperature + norm.logcdf(
            (affinity.mean(axis=1) - world.LONG_WATCH_THRESHOLD) / world.PERCEPTION_SD))
        assert np.all(np.log(mc) - at_mean > 10 * se)
    model = json.loads((landing / "_ground_truth" / "model.json").read_text())
    assert model["popularity"]["mean"] == 1 + 1 / (world.POP_SHAPE - 1) == 3.0


def test_truth_of_format_1_has_an_oracle_without_habits_and_no_content_oracle(landing,
                                                                             tmp_path):
    # a landing zone simulated before habits: its latents and model.json only
    (tmp_path / "_ground_truth").mkdir()
    shutil.copy(landing / "_ground_truth" / "latents.npz", tmp_path / "_ground_truth")
    model = json.loads((landing / "_ground_truth" / "model.json").read_text())
    old = {k: model[k] for k in ("dim", "affinity", "choice", "perception", "long_watch",
                                 "bounce")}
    (tmp_path / "_ground_truth" / "model.json").write_text(json.dumps({"format": 1, **old}))
    scorer = oracle_baseline(context(tmp_path))
    assert scorer is not None and scorer.habits is None
    assert content_oracle_baseline(context(tmp_path)) is None
    users, anchors = {"user_id": np.array([1, 2])}, {"anchor_id": np.array([1, 2, 3])}
    without = OracleScorer.load(landing)
    without.habits = None
    np.testing.assert_array_equal(scorer.score(LAST, users, anchors),
                                  without.score(LAST, users, anchors))
