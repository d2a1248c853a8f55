"""Mixed precision and XLA against float32 on the CPU: same weights, same batch.

Tolerances, from what 16-bit arithmetic can do here: bfloat16 keeps 8 significant bits
(relative step 2**-8 = 0.0039), float16 11 bits (2**-11 = 0.00049). An embedding goes
through two roundings per layer (input cast and output); its unit-norm components are <= 1,
so bfloat16 embeddings may move by a few 1e-3 and float16 ones by a few 1e-4. Losses scale
cosines by gamma = 20 (softmax) and 10 (pairwise, pointwise) before any exp, so their error
is ~20x the cosine error. Ranking metrics can only move where two scores are closer than
that error: a few ties on a day of ~60 candidates.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from training import train
from training.config import LoopConfig, split_settings
from training.evaluate import evaluate_scores
from training.loop import dtype_policy
from training.models.two_tower.config import TwoTowerConfig
from training.models.two_tower.export import ServingTower, embed
from training.models.two_tower.features import raw_columns
from training.models.two_tower.trainable import TwoTowerTrainable, prepare
from training.pipeline import column_signature, make_dataset
from training.reader import TrainingSet

pytestmark = pytest.mark.engine

# t = 1: the hard-negative map (t > 1) jumps by gamma (t - 1)(1 + neg) where a negative
# crosses pos - margin, so a 16-bit cosine error of 0.002 next to that boundary moved a row's
# loss by up to 2.7 (2 of 60 random batches, 2026-12-02; CI failed once on 0.54). The jump is
# the loss's design, not a precision error, and the loss runs in float32 either way.
CONFIG = TwoTowerConfig(embedding_dim=16, hidden_units=(32, 16), num_negatives=8, t=1.0)
BATCH = 64
# precision: (embeddings, per-example loss, recall@K / NDCG@K), max abs difference allowed;
# measured on the tiny set (2026-11-30): bfloat16 0.0037, 0.066, 0.0018; float16 0.00052,
# 0.0050, 0.00098
TOLERANCE = {"mixed_bfloat16": (0.01, 0.15, 0.02), "mixed_float16": (0.0015, 0.015, 0.01)}
MEASURED: dict[str, dict[str, float]] = {}  # printed at the end of the module (pytest -s)


def _build(prepared, precision: str) -> TwoTowerTrainable:
    with dtype_policy(precision):
        return TwoTowerTrainable(prepared, CONFIG, seed=3, replica_batch=BATCH)


def _scores(trainable: TwoTowerTrainable, data: TrainingSet, day: str):
    """`[users, candidates]` cosines of the held-out day, users and candidates as evaluate
    reads them, through the same serving path as an export."""
    schema, towers = data.schema("train"), trainable.towers()
    pairs = data.read("validation", ["user_id", "anchor_id", "label", "dt",
                                     *raw_columns(trainable.model.user_tower.spec)],
                      CONFIG.last_k)
    candidates = data.read("candidates", ["dt", *raw_columns(trainable.model.anchor_tower.spec)],
                           CONFIG.last_k)
    today, live = pairs["dt"] == day, candidates["dt"] == day
    user_ids, first = np.unique(pairs["user_id"][today], return_index=True)
    vectors = {}
    for name, encoder, rows in (("user_tower", trainable.user_encoder,
                                 {c: v[today][first] for c, v in pairs.items()}),
                                ("anchor_tower", trainable.anchor_encoder,
                                 {c: v[live] for c, v in candidates.items()})):
        columns = raw_columns(towers[name].spec)
        serving = ServingTower(towers[name], encoder,
                               column_signature(columns, schema, CONFIG.last_k))
        vectors[name] = embed(serving, rows)
    day_pairs = {c: pairs[c][today] for c in ("user_id", "anchor_id", "label")}
    cold_users = np.zeros(len(user_ids), bool)
    cold_anchors = np.zeros(int(live.sum()), bool)
    scores = vectors["user_tower"] @ vectors["anchor_tower"].T
    return evaluate_scores(user_ids, candidates["anchor_id"][live], scores, day_pairs,
                           cold_users, cold_anchors)["overall"]


def _mlp_part_is_normalised(vectors: np.ndarray, embedding_dim: int = CONFIG.embedding_dim) -> None:
    """The MLP part of each row (its first embedding_dim values) has norm
    sqrt(1 - memory_weight): normalised in float32 whatever the policy."""
    norms = np.linalg.norm(vectors[:, :embedding_dim], axis=1)
    np.testing.assert_allclose(norms, (1 - CONFIG.memory_weight) ** 0.5, atol=1e-5)


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_agrees_with_float32(tiny_training_set, precision):
    data = TrainingSet(tiny_training_set["lake"], tiny_training_set["run_id"])
    prepared = prepare(data, CONFIG)
    reference, mixed = _build(prepared, "float32"), _build(prepared, precision)
    assert keras.config.dtype_policy().name == "float32"  # the policy did not leak
    assert mixed.model.user_tower.hidden[0].compute_dtype == precision.removeprefix("mixed_")
    assert reference.model.user_tower.hidden[0].compute_dtype == "float32"
    assert mixed.loss_fn.compute_dtype == "float32"  # losses never run in 16 bits
    for target, source in zip(mixed.trainable_variables, reference.trainable_variables,
                              strict=True):
        assert target.dtype == source.dtype == "float32" and target.shape == source.shape
        target.assign(source)

    batch = next(iter(make_dataset(data.files("train"), reference.columns, BATCH, seed=0,
                                   id_list_width=CONFIG.last_k, transform=reference.encode)))
    emb_tol, loss_tol, rank_tol = TOLERANCE[precision]
    got = {}
    for name, model in (("float32", reference), (precision, mixed)):
        u, a = model.embed(batch, training=False)
        tf.random.set_seed(11)  # the same dropout draws and rolled negatives for both
        got[name] = (u.numpy(), a.numpy(), model.loss(batch).numpy())
    (u32, a32, l32), (u16, a16, l16) = got["float32"], got[precision]
    assert u16.dtype == a16.dtype == l16.dtype == np.float32
    _mlp_part_is_normalised(u16)  # normalised in float32
    emb_diff = max(np.abs(u16 - u32).max(), np.abs(a16 - a32).max())
    loss_diff = np.abs(l16 - l32).max()
    assert 0 < emb_diff <= emb_tol  # > 0: the towers really computed in 16 bits
    assert loss_diff <= loss_tol and np.isfinite(l16).all()
    assert abs(l16.mean() - l32.mean()) <= loss_tol / 5  # errors do not pile up one way

    day = data.manifest.holdout_days[0]
    ranked = {name: _scores(model, data, day)
              for name, model in (("float32", reference), (precision, mixed))}
    rank_diff = {m: abs(ranked[precision][m] - ranked["float32"][m])
                 for m in ("recall@10", "recall@50", "ndcg@10")}
    assert ranked["float32"]["users"] == ranked[precision]["users"] > 0
    assert all(d <= rank_tol for d in rank_diff.values()), rank_diff
    MEASURED[precision] = {"embedding": float(emb_diff), "loss": float(loss_diff),
                           **{k: float(v) for k, v in rank_diff.items()}}
    print(f"\n{precision} vs float32, max abs diff: {json.dumps(MEASURED[precision])}")


@pytest.mark.parametrize("precision", ["mixed_bfloat16", "mixed_float16"])
def test_short_mixed_precision_xla_run_has_finite_loss(tiny_training_set, tmp_path, precision):
    lake, run_id = tiny_training_set["lake"], tiny_training_set["run_id"]
    out = tmp_path / "run"
    summary = train.train_run(lake, run_id, out, max_steps=4, batch_size=64, embedding_dim=8,
                              hidden_units=(16,), num_negatives=8, log_every=2,
                              precision=precision, xla=True)
    assert summary["steps"] == 4 and summary["precision"] == precision and summary["xla"]
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4]
    assert all(np.isfinite(h["loss"]) and h["loss"] > 0 for h in history)
    saved = json.loads((out / "config.json").read_text())["loop"]
    assert saved["precision"] == precision and saved["xla"] is True
    assert keras.config.dtype_policy().name == "float32"  # reset after the run
    from training.models.two_tower.export import load_towers

    towers = load_towers(out / "export")
    parity = json.loads((out / "export" / "parity_sample.json").read_text())
    reloaded = embed(towers["user_tower"], {c: np.array(v)
                                            for c, v in parity["user_inputs"].items()})
    assert reloaded.dtype == np.float32 and np.isfinite(reloaded).all()
    _mlp_part_is_normalised(reloaded, embedding_dim=8)


def test_precision_and_xla_are_loop_settings_checked_by_name():
    loop, model = split_settings({"precision": "mixed_bfloat16", "xla": True,
                                  "embedding_dim": 8}, TwoTowerConfig)
    assert (loop.precision, loop.xla, model.embedding_dim) == ("mixed_bfloat16", True, 8)
    assert LoopConfig().precision == "float32" and LoopConfig().xla is False
    with pytest.raises(ValueError, match="precision"):
        split_settings({"precision": "float8"}, TwoTowerConfig)
    with pytest.raises(ValueError, match="xla"):
        split_settings({"xla": "yes"}, TwoTowerConfig)


def test_workers_sharing_a_host_are_counted_from_tf_config(monkeypatch):
    # two local workers and one remote: NCCL cannot put the two local ones on one GPU
    from training.launcher import tf_config
    from training.loop import workers_on_this_host

    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert workers_on_this_host() == 1
    monkeypatch.setenv("TF_CONFIG", tf_config([5001, 5002], 1))
    assert workers_on_this_host() == 2
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.2:2"]},
        "task": {"type": "worker", "index": 0}}))
    assert workers_on_this_host() == 1
