"""Ground truth: the latents of everyone simulated and the constants of the choice model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jobs.simulator import world
from tests.jobs.simulator.conftest import DAY_ISO, lines, run

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


def test_model_holds_the_worlds_constants(tmp_path):
    run(tmp_path, days=1, temperature=0.5)
    model = json.loads((tmp_path / "_ground_truth" / "model.json").read_text())
    assert model == {
        "format": 1, "dim": world.DIM, "affinity": "dot(user_vecs, anchor_vecs)",
        "choice": {"temperature": 0.5},
        "perception": {"noise_sd": world.PERCEPTION_SD},
        "long_watch": {"threshold": world.LONG_WATCH_THRESHOLD},
        "bounce": {"threshold": world.BOUNCE_THRESHOLD},
    }
