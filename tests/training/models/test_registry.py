"""The model seam: a baseline or a model is one module of training/models, found by
discovery; evaluation picks it up with no other change."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

import training.models as registry
from training.models.random_baseline import RandomScorer

pytestmark = pytest.mark.unit


def test_every_shipped_model_and_baseline_is_registered():
    assert registry.model_names() == ["fusion", "two_tower"]
    assert {"popularity", "random", "oracle"} <= set(registry.baselines())
    with pytest.raises(ValueError, match="unknown model 'als'.*two_tower"):
        registry.model("als")


def test_the_random_baseline_is_seeded_per_day():
    users, anchors = {"user_id": np.arange(4)}, {"anchor_id": np.arange(6)}
    a = RandomScorer(1).score("2026-01-05", users, anchors)
    assert a.shape == (4, 6)
    np.testing.assert_array_equal(a, RandomScorer(1).score("2026-01-05", users, anchors))
    assert not np.array_equal(a, RandomScorer(1).score("2026-01-06", users, anchors))
    assert not np.array_equal(a, RandomScorer(2).score("2026-01-05", users, anchors))


def test_a_new_baseline_is_one_new_module(tmp_path, monkeypatch):
    """Drop a module into the package path: discovery registers it, nothing else changes."""
    (tmp_path / "constant_baseline.py").write_text(textwrap.dedent("""
        import numpy as np
        from training.models import register_baseline

        class ConstantScorer:
            def score(self, day, users, anchors):
                return np.ones((len(users["user_id"]), len(anchors["anchor_id"])))

        @register_baseline("constant")
        def constant(context):
            return ConstantScorer()
    """))
    monkeypatch.setattr(registry, "__path__", [*registry.__path__, str(tmp_path)])
    monkeypatch.setattr(registry, "_BASELINES", dict(registry._BASELINES))
    try:
        factory = registry.baselines()["constant"]
        scores = factory(None).score("2026-01-05", {"user_id": [1, 2]}, {"anchor_id": [7]})
        assert scores.tolist() == [[1.0], [1.0]]
    finally:
        sys.modules.pop("training.models.constant_baseline", None)
