"""The memory scale: chosen on held-out days by NDCG@10, the smallest within one standard
error of the best."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluate import EvalSettings, make_day
from training.models.two_tower.memory_scale import SCALES, fit

pytestmark = pytest.mark.unit


def _day(users: int = 40) -> tuple:
    """Each user watched anchors 0 .. 9 before (the memory part orders them, 0 strongest)
    and comes back to anchor 0 only; the MLP part prefers anchors 5 .. 9 a little, more
    than the memory part's small steps, and knows nothing of the other 30 anchors."""
    ids = {"user_id": np.arange(users), "user_has_history": np.ones(users, bool)}
    anchors = {"anchor_id": np.arange(40), "anchor_has_history": np.ones(40, bool)}
    pairs = {"user_id": np.arange(users), "anchor_id": np.zeros(users, int),
             "label": np.ones(users, int)}
    day = make_day("2026-01-14", ids, anchors, pairs, EvalSettings(auc_negatives=5))
    memory = np.zeros((users, 40))
    memory[:, :10] = np.linspace(0.10, 0.05, 10)
    mlp = np.zeros((users, 40))
    mlp[:, 5:10] = 0.06
    return day, mlp, memory


def test_fit_turns_the_memory_up_until_it_orders_the_history():
    day, mlp, memory = _day()
    out = fit([(mlp, memory)], [day], "one_se")
    table = {row["scale"]: row for row in out["table"]}
    assert [row["scale"] for row in out["table"]] == list(SCALES)
    assert table[1.0]["ndcg@10"] < 1.0 and out["ndcg@10"] == 1.0
    # anchor 0 outranks anchor 5 once 0.10 c > 0.06 + 0.072 c, c > 2.2: 3 is the smallest
    assert out["scale"] == 3.0
    assert all(row["recall@50"] == 1.0 for row in out["table"])  # every scale finds it


def test_fit_keeps_scale_one_when_the_memory_already_decides():
    day, mlp, memory = _day()
    out = fit([(np.zeros_like(mlp), memory)], [day], "one_se")
    assert out["scale"] == 1.0 and out["ndcg@10"] == 1.0
    assert fit([(mlp, memory)], [day], "none")["scale"] == 1.0
