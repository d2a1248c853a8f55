"""Ground truth: the latents of everyone simulated, their habits and the constants of the
choice model."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from jobs.simulator import world
from tests.jobs.simulator.conftest import DAY_ISO, lines, records, run

pytestmark = pytest.mark.unit


def test_latents_cover_everyone(sim):
    root, summary = sim
    z = np.load(root / "_ground_truth" / "latents.npz")
    n_users = sum(len(lines(root, "users", d)) for d in DAY_ISO)
    assert z["user_vecs"].shape == (n_users, 16) and len(z["user_ids"]) == n_users
    assert z["anchor_vecs"].shape[0] == len(z["anchor_ids"]) == len(z["anchor_popularity"])
    # ids are dense and 1-based, row-aligned with every array (the documented format)
    last = summary["days"][DAY_ISO[-1]]
    assert z["user_ids"].tolist() == list(range(1, last["users_total"] + 1))
    assert z["anchor_ids"].tolist() == list(range(1, last["anchors_total"] + 1))
    assert len(z["user_activity"]) == n_users
    assert len(z["anchor_live_prob"]) == len(z["anchor_ids"])
    assert np.all(z["anchor_popularity"] >= 1.0)
    # the anchors' content, as the landing files name it
    model = json.loads((root / "_ground_truth" / "model.json").read_text())
    written = {r["anchor_id"]: (r["category"], r["gender"])
               for d in DAY_ISO for r in records(root, "anchors", d)}
    assert written == {int(i): (model["categories"][c], model["anchor_genders"][g])
                       for i, c, g in zip(z["anchor_ids"], z["anchor_category"],
                                          z["anchor_gender"], strict=True)}
    assert z["category_centroids"].shape == (len(world.CATEGORIES), world.DIM)
    assert z["gender_centroids"].shape == (len(world.ANCHOR_GENDERS), world.DIM)


def test_habits_hold_the_start_and_every_days_long_watches(sim, classified):
    root, summary = sim
    z = np.load(root / "_ground_truth" / "habits.npz")
    keys = z["start_user_ids"] << 32 | z["start_anchor_ids"]
    assert len(keys) > 0 and np.all(np.diff(keys) > 0)  # the burn-in's, sorted by pair
    assert z["start_strength"].dtype == np.float32
    assert np.all(z["start_strength"] >= world.HABIT_FLOOR)
    assert z["start_user_ids"].max() <= summary["days"][DAY_ISO[0]]["users_total"]
    # per day and pair, the number of its long watches among the day's good lines
    for i, day in enumerate(DAY_ISO):
        mine = z["long_watch_day"] == i
        got = {(int(u), int(a)): int(n) for u, a, n in zip(
            z["long_watch_user_ids"][mine], z["long_watch_anchor_ids"][mine],
            z["long_watch_count"][mine], strict=True)}
        want = Counter((s["user_id"], s["anchor_id"]) for s in classified[day][1]
                       if s["watch_seconds"] >= 30)
        assert got == dict(want)


def test_model_holds_the_worlds_constants(tmp_path):
    run(tmp_path, days=1, temperature=0.5)
    model = json.loads((tmp_path / "_ground_truth" / "model.json").read_text())
    assert model == {
        "format": 2, "dim": world.DIM, "start": DAY_ISO[0], "days": 1,
        "affinity": "dot(user_vecs, anchor_vecs)",
        "choice": {"temperature": 0.5},
        "perception": {"noise_sd": world.PERCEPTION_SD},
        "long_watch": {"threshold": world.LONG_WATCH_THRESHOLD},
        "bounce": {"threshold": world.BOUNCE_THRESHOLD},
        "habit": {"strength": 12.0, "saturation": 0.3, "recall": 0.25,
                  "half_life_days": 30.0, "decay": 0.5 ** (1 / 30), "floor": 0.02,
                  "burn_in_days": 14},
        "anchor_traits": {"category_weight": 0.8, "gender_weight": 0.3,
                          "noise_weight": 0.5, "noise_sd": world.DIM**-0.25},
        "popularity": {"distribution": "1 + pareto(shape)", "shape": 1.5, "mean": 3.0},
        "categories": list(world.CATEGORIES),
        "anchor_genders": list(world.ANCHOR_GENDERS),
    }
