"""Fusion: per-row normalisation, the pairwise logistic fit, and the registered model fitted
on the validation days only, evaluated, checked and reloaded like any model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.evaluate import EvalSettings, evaluate_model, held_out_days
from training.models import fusion, model, model_names
from training.reader import TrainingSet
from training.train import train_run

TINY_LOOP = {"batch_size": 64, "max_steps": 6, "log_every": 1000, "epochs": 2}
TINY_TOWER = {"embedding_dim": 8, "hidden_units": (16,), "num_negatives": 8}


@pytest.mark.unit
def test_rows_are_normalised_per_user():
    scores = np.array([[3.0, 1.0, 2.0, 2.0], [5.0, 5.0, 5.0, 5.0], [-np.inf, 0.0, 1.0, 9.0]])
    rank = fusion.normalise(scores, "rank")
    np.testing.assert_allclose(rank[0], [1.0, 0.0, 0.5, 0.5])  # ties share their rank
    np.testing.assert_allclose(rank[1], [0.5] * 4)
    assert rank[2].argmax() == 3 and rank[2].argmin() == 0 and np.isfinite(rank).all()
    z = fusion.normalise(scores, "zscore")
    np.testing.assert_allclose(z[0].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(z[1], 0.0)
    assert np.abs(z).max() <= 5.0
    # a monotone change of one scorer's scale leaves its rank features unchanged
    np.testing.assert_allclose(fusion.normalise(np.exp(scores[:1]), "rank"), rank[:1])
    with pytest.raises(ValueError, match="normalisation"):
        fusion.normalise(scores, "minmax")


@pytest.mark.unit
def test_the_pairwise_fit_weights_the_informative_scorer():
    rng = np.random.default_rng(0)
    informative = rng.normal(1.0, 1.0, 4000)  # positives beat negatives on this one
    noise = rng.normal(0.0, 1.0, 4000)
    misleading = rng.normal(-0.5, 1.0, 4000)
    w, loss = fusion.fit_pairwise(np.stack([informative, noise, misleading], axis=1), 1e-3)
    assert w[0] > 0.5 and abs(w[1]) < 0.2 and w[2] < 0 and loss < np.log(2)
    with pytest.raises(ValueError, match="no .* pairs"):
        fusion.fit_pairwise(np.zeros((0, 3)), 1e-3)


@pytest.mark.unit
def test_without_validation_pairs_the_components_are_averaged():
    names = fusion.input_names(["two_tower", "rewatch"], ("zscore",))
    w, loss, fallback = fusion.blend_weights(np.zeros((0, len(names))), names,
                                             ["two_tower", "rewatch"], 1e-3)
    assert dict(zip(names, w, strict=True)) == {"two_tower": 0.5, "rewatch": 0.5,
                                                "two_tower_z": 0.0, "rewatch_z": 0.0}
    assert loss is None and "no (positive, negative) pair" in fallback
    diffs = np.random.default_rng(0).normal(size=(200, len(names))) + [1.0, 0, 0, 0]
    w, loss, fallback = fusion.blend_weights(diffs, names, ["two_tower", "rewatch"], 1e-3)
    assert fallback is None and loss is not None and w[0] > abs(w[1])


@pytest.mark.unit
def test_flat_two_tower_settings_go_to_the_component():
    from training.config import split_settings

    loop, config = split_settings({"embedding_dim": 8, "max_steps": 3, "l2": 0.1,
                                   "two_tower_settings": {"num_negatives": 4}},
                                  fusion.FusionConfig)
    assert loop.max_steps == 3 and config.l2 == 0.1
    assert config.two_tower_settings == {"embedding_dim": 8, "num_negatives": 4}
    with pytest.raises(ValueError, match="unknown training settings \\['embeding_dim'\\]"):
        split_settings({"embeding_dim": 8}, fusion.FusionConfig)


@pytest.mark.unit
def test_the_oracles_are_never_components():
    assert "fusion" in model_names()
    with pytest.raises(ValueError, match="truth"):
        fusion.FusionConfig(components=("two_tower", "oracle"))
    with pytest.raises(ValueError, match="distinct"):
        fusion.FusionConfig(components=("als", "als"))


@pytest.mark.unit
def test_log_ranks_spread_the_top_and_inputs_are_named_in_order():
    lr = fusion.log_rank(np.array([[0.9, 0.1, 0.5, 0.3], [1.0, 1.0, 1.0, 1.0]]))
    # positions 0, 3, 1, 2 of 4: 1 - log(1 + p) / log(4)
    np.testing.assert_allclose(lr[0], 1 - np.log1p([0, 3, 1, 2]) / np.log(4))
    assert lr[0, 0] == 1.0 and np.isfinite(lr).all()
    names = fusion.input_names(("two_tower", "rewatch"), ("zscore", "unseen"))
    assert names == ["two_tower", "rewatch", "two_tower_z", "rewatch_z", *fusion.HISTORY,
                     "two_tower*unseen"]  # rewatch ranks watched anchors: no discovery term
    assert fusion.input_names(("als",), ()) == ["als"]  # an export without inputs
    with pytest.raises(ValueError, match="inputs"):
        fusion.FusionConfig(inputs=("history", "gbdt"))


class Constant:
    """A component that scores `[U, A]` with fixed per-anchor scores."""

    def __init__(self, per_anchor) -> None:
        self.per_anchor = np.asarray(per_anchor, dtype=np.float64)

    def score(self, day, users, anchors):
        return np.tile(self.per_anchor, (len(users["user_id"]), 1))


@pytest.mark.unit
def test_new_anchors_get_their_own_bias_and_model_terms():
    scorers = {"two_tower": Constant([0.1, 0.9, 0.5]), "rewatch": Constant([3.0, 0.0, 1.0])}
    users = {"user_id": np.array([1, 2]), "user_has_history": np.array([True, True])}
    anchors = {"anchor_id": np.array([7, 8, 9]),
               "anchor_has_history": np.array([True, False, True])}
    x = fusion.features(scorers, "2026-01-02", users, anchors, "rank", ("cold_anchor",))
    names = fusion.input_names(list(scorers), ("cold_anchor",))
    assert names == ["two_tower", "rewatch", "cold_anchor", "two_tower*cold_anchor"]
    assert x.shape == (4, 2, 3)
    np.testing.assert_array_equal(x[2], [[0, 1, 0], [0, 1, 0]])  # anchor 8 is new
    # the model's rank of the new anchor (top: 1.0), zero on the warm ones; rewatch has none
    np.testing.assert_array_equal(x[3], [[0, 1, 0], [0, 1, 0]])


@pytest.mark.unit
def test_new_anchors_rank_where_the_two_tower_puts_them_among_warm_ones():
    # anchors 0..3 have history; 4, 5, 6 are new and buried by the blend (fused -5)
    fused = np.array([[4.0, 3.0, 2.0, 1.0, -5.0, -5.0, -5.0],
                      [1.0, 2.0, 3.0, 4.0, -5.0, -6.0, -5.0]])
    tower = np.array([[0.9, 0.5, 0.3, 0.1, 0.6, 0.95, 0.0],
                      [0.1, 0.2, 0.3, 0.4, 0.35, 0.35, 0.35]])  # row 2: ties between new
    new = np.array([False] * 4 + [True] * 3)
    placed = fusion.place_new_anchors(fused, tower, new)
    np.testing.assert_array_equal(placed[:, ~new], fused[:, ~new])  # warm scores untouched
    order = np.argsort(-placed, axis=1).tolist()
    # row 1: the tower ranks 5 first, 4 between warm 0 and 1, 6 last; warm keep the blend's
    assert order[0] == [5, 0, 4, 1, 2, 3, 6]
    # row 2: the three new ones between warm 3 (0.4) and warm 2 (0.3), in index order on ties
    assert order[1] == [3, 4, 5, 6, 2, 1, 0]
    assert fusion.place_new_anchors(fused, tower, np.zeros(7, bool)) is fused
    rng = np.random.default_rng(1)  # ranks among warm are the tower's, whatever the scale
    fused, tower = rng.normal(size=(50, 40)) * 100, rng.normal(size=(50, 40))
    new = rng.random(40) < 0.3
    placed = fusion.place_new_anchors(fused, tower, new)
    for t, p in zip(tower, placed, strict=True):
        for a in np.flatnonzero(new):
            warm_above_by_tower = (t[~new] > t[a]).sum()
            assert (p[~new] > p[a]).sum() == warm_above_by_tower
        assert (np.argsort(-p[new]) == np.argsort(-t[new], kind="stable")).all()


class Recorder:
    """A component that notes every day it scores."""

    def __init__(self, scorer, days: list) -> None:
        self.scorer, self.days = scorer, days
        self.finite = True

    def score(self, day, users, anchors):
        self.days.append(day)
        return self.scorer.score(day, users, anchors)


@pytest.mark.engine
def test_fusion_fits_on_validation_days_and_is_evaluated_like_any_model(tiny_training_set,
                                                                        tmp_path, monkeypatch):
    lake, run_id = tiny_training_set["lake"], tiny_training_set["run_id"]
    manifest = TrainingSet(lake, run_id).manifest
    scored: list[str] = []
    made = fusion.component_scorers

    def recorded(*args, **kwargs):
        return {k: Recorder(v, scored) for k, v in made(*args, **kwargs).items()}

    monkeypatch.setattr(fusion, "component_scorers", recorded)
    out = tmp_path / "fused"
    summary = train_run(lake, run_id, out, model_name="fusion",
                        two_tower_settings=TINY_TOWER, **TINY_LOOP)
    # training read the validation days only: never a test day
    assert set(scored) == set(manifest.validation_days)
    assert not set(scored) & set(manifest.holdout_days)
    fit = summary["fusion"]
    assert fit["fit_days"] == manifest.validation_days and fit["pairs"] > 0
    assert list(fit["weights"]) == fusion.input_names(fusion.DEFAULT_COMPONENTS, fusion.INPUTS)
    assert {"watched", "recency", "two_tower*unseen", "als_logrank"} <= set(fit["weights"])
    assert summary["two_tower"]["steps"] == 6  # the component was trained in the run
    assert 0 <= summary["best_val_recall@50"] <= 1
    export = model("fusion").export_dir(out)
    spec = json.loads((export / fusion.FUSION_FILE).read_text())
    assert spec["run_id"] == run_id and (export / "two_tower" / "user_tower").is_dir()
    assert model("fusion").artifacts(export) == {"fusion": export}
    assert all(c["status"] == "pass" for c in model("fusion").checks(export))
    assert spec["new_anchors"] == "two_tower" and model("fusion").load(export).place

    # judged on the test days by training.evaluate, beside every baseline
    monkeypatch.setattr(fusion, "component_scorers", made)
    metrics = evaluate_model(TrainingSet(lake, run_id), "fusion", export, out=out)
    assert metrics["eval_days"] == manifest.holdout_days
    assert metrics["model_name"] == "fusion" and metrics["embeddings_finite"]
    assert 0 <= metrics["model"]["recall@50"] <= 1 and "rewatch" in metrics["baselines"]

    # a second blend reuses that two-tower export, another normalisation and no other inputs
    again = train_run(lake, run_id, tmp_path / "reused", model_name="fusion",
                      two_tower_export=str(export / "two_tower"), normalise="zscore",
                      components=("two_tower", "rewatch", "segment_popularity"), inputs=(),
                      **TINY_LOOP)
    assert "two_tower" not in again and set(again["fusion"]["weights"]) == {
        "two_tower", "rewatch", "segment_popularity"}
    scorer = model("fusion").load(model("fusion").export_dir(tmp_path / "reused"))
    (day,) = held_out_days(TrainingSet(lake, run_id), EvalSettings(), manifest.holdout_days)
    scores = scorer.score(day.day, day.users, day.anchors)  # from the export alone
    assert scorer.how == "zscore" and scores.shape == day.positives.shape
    assert np.isfinite(scores).all()
