"""Training end to end on a tiny simulated lake: reader, loop, resume, workers, export,
evaluation through the scorer seam."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from training import train
from training.evaluate import baseline_scorers, evaluate, evaluate_model
from training.models import model
from training.models.two_tower.export import EMBEDDINGS, embed, load_towers
from training.models.two_tower.memory_scale import SCALES
from training.reader import TrainingSet

pytestmark = pytest.mark.engine

SMALL = {"batch_size": 64, "embedding_dim": 8, "hidden_units": (16,), "num_negatives": 8,
         "log_every": 2}
KEYS = ["user_id", "anchor_id", "dt"]


def _file_order(data: TrainingSet, batches: list[dict]) -> list[str]:
    """The files in the order the reader yielded their rows, told from the rows themselves."""
    owner = {}
    for path in data.files("train"):
        rows = pq.read_table(path, columns=KEYS).to_pylist()
        owner.update({(r["user_id"], r["anchor_id"], r["dt"]): path for r in rows})
    order = []
    for batch in batches:
        for key in zip(*[batch[k].tolist() for k in KEYS], strict=True):
            if not order or order[-1] != owner[key]:
                order.append(owner[key])
    return order


def test_reader_yields_every_row_once_per_epoch_in_a_new_file_order(tiny_training_set):
    data = TrainingSet(tiny_training_set["lake"], tiny_training_set["run_id"])
    files = data.files("train")
    assert len(files) == 3 and data.rows("train") == data.manifest.counts.train.rows
    seen = [list(data.batches("train", KEYS, 16, seed=1, epoch=e, id_list_width=5,
                              drop_remainder=False)) for e in (0, 1, 2, 3)]
    for batches in seen:
        assert all(len(b["user_id"]) == 16 for b in batches[:-1])
        assert sum(len(b["user_id"]) for b in batches) == data.rows("train")
    triples = [sorted(zip(*[np.concatenate([b[k] for b in batches]).tolist() for k in KEYS],
                          strict=True)) for batches in seen]
    assert all(t == triples[0] for t in triples)  # the same rows every epoch...
    orders = [_file_order(data, batches) for batches in seen]
    assert all(sorted(o) == sorted(files) for o in orders)  # each file read once, whole
    assert len({tuple(o) for o in orders}) > 1  # ...in another file order across epochs
    again = list(data.batches("train", KEYS, 16, seed=1, epoch=0, id_list_width=5,
                              drop_remainder=False))
    assert _file_order(data, again) == orders[0]  # and the order is a function of the seed


def test_train_resume_export_and_reload_parity(tiny_training_set, tmp_path):
    lake, run_id = tiny_training_set["lake"], tiny_training_set["run_id"]
    out = tmp_path / "run"
    first = train.train_run(lake, run_id, out, max_steps=4, **SMALL)
    assert first["steps"] == 4 and first["model"] == "two_tower"
    again = train.train_run(lake, run_id, out, max_steps=6, **SMALL)  # resumes at step 4
    assert again["steps"] == 6
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4, 6]
    assert all(np.isfinite(h["loss"]) and h["examples_per_sec"] > 0 for h in history)
    assert (out / "tensorboard").is_dir() and any((out / "checkpoints").iterdir())
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == "two_tower" and saved["loop"]["batch_size"] == 64
    assert saved["params"]["embedding_dim"] == 8

    export = model("two_tower").export_dir(out)
    towers = load_towers(export)
    parity = json.loads((export / "parity_sample.json").read_text())
    for name, side in (("user_tower", "user"), ("anchor_tower", "anchor")):
        inputs = {c: np.array(v) for c, v in parity[f"{side}_inputs"].items()}
        reloaded = embed(towers[name], inputs)
        np.testing.assert_allclose(reloaded, np.array(parity[f"{side}_embeddings"]),
                                   atol=1e-5)
        # the MLP part is unit norm scaled by its share; the memory part follows it
        params = saved["params"]
        norms = np.linalg.norm(reloaded[:, :params["embedding_dim"]], axis=1)
        np.testing.assert_allclose(norms, (1 - params["memory_weight"]) ** 0.5, atol=1e-5)
        # a tiny vocabulary gets exact codes: one dimension per anchor row, and an anchor's
        # memory part is its own unit vector scaled by sqrt(memory_weight)
        memory = reloaded[:, params["embedding_dim"]:-1]
        if side == "anchor":
            assert (np.count_nonzero(memory, axis=1) <= 1).all() and memory.any()
            np.testing.assert_allclose(memory[memory != 0], params["memory_weight"] ** 0.5,
                                       atol=1e-6)
    # the memory scale is chosen on the validation days before the offset, from its table
    scale = again["memory_scale"]
    assert scale["rule"] == "one_se" and len(scale["table"]) == len(SCALES)
    assert scale["scale"] in {row["scale"] for row in scale["table"]}
    # the last coordinate carries the cold-anchor offset chosen on the validation days
    offset = again["cold_anchor_offset"]
    assert offset["rule"] == "one_se" and len(offset["table"]) == 11
    user_last = embed(towers["user_tower"], {c: np.array(v) for c, v in
                                             parity["user_inputs"].items()})[:, -1]
    np.testing.assert_allclose(user_last, 1.0)
    table = pq.read_table(export / "anchor_tower" / EMBEDDINGS)
    assert table.num_rows == tiny_training_set["manifest"].counts.candidates
    candidates = TrainingSet(lake, run_id).read("candidates", ["anchor_has_history"])
    cold = ~np.asarray(candidates["anchor_has_history"], bool)
    assert cold.any() and (~cold).any()
    last = np.array(table.column("embedding").to_pylist())[:, -1]
    np.testing.assert_allclose(last, np.where(cold, offset["offset"], 0.0), atol=1e-6)
    assert sorted(model("two_tower").artifacts(export)) == ["anchor_tower", "user_tower"]

    data = TrainingSet(lake, run_id)
    metrics = evaluate_model(data, "two_tower", export, tiny_training_set["landing"], out)
    assert set(metrics["baselines"]) == {"popularity", "random", "oracle", "content_oracle",
                                         "recent_popularity",
                                         "segment_popularity", "rewatch", "item_cf", "als"}
    assert 0.0 <= metrics["model"]["recall@50"] <= 1.0 and metrics["embeddings_finite"]
    assert set(metrics["slices"]) == {"warm_user", "cold_user", "warm_anchor", "cold_anchor"}
    assert json.loads((out / "metrics.json").read_text())["model"] == metrics["model"]


class _Perfect:
    """Scores exactly the held-out positives: recall 1 and AUC 1 by construction."""

    def __init__(self, data: TrainingSet) -> None:
        pairs = data.read("validation", ["user_id", "anchor_id", "label", "dt"])
        self.positive = {(d, u, a) for d, u, a, y in zip(pairs["dt"], pairs["user_id"],
                                                         pairs["anchor_id"], pairs["label"],
                                                         strict=True) if y == 1}

    def score(self, day, users, anchors):
        return np.array([[float((day, u, a) in self.positive) for a in anchors["anchor_id"]]
                         for u in users["user_id"]])


def test_evaluation_ranks_every_scorer_on_the_same_candidates(tiny_training_set):
    data = TrainingSet(tiny_training_set["lake"], tiny_training_set["run_id"])
    baselines = baseline_scorers(data, landing=None, seed=3)
    assert set(baselines) == {"popularity", "random", "recent_popularity",  # no ground truth,
                              "segment_popularity", "rewatch", "item_cf", "als"}  # no oracle
    metrics = evaluate(data, {"model": _Perfect(data), **baselines})
    assert metrics["eval_days"] == data.manifest.holdout_days
    # every positive ranked first: NDCG 1 at any K, recall@K = min(positives, K) / positives
    assert metrics["model"]["ndcg@10"] == metrics["model"]["ndcg@50"] == 1.0
    assert metrics["model"]["auc"] == 1.0 and metrics["model"]["recall@50"] == 1.0
    assert metrics["baselines"]["random"]["recall@10"] < 1.0
    users = metrics["model"]["users"]
    assert users > 0 and all(b["users"] == users for b in metrics["baselines"].values())


def _variable_shapes(checkpoint_dir):
    path = tf.train.latest_checkpoint(str(checkpoint_dir))
    return {name: tuple(shape) for name, shape in tf.train.list_variables(path)
            if "optimizer" not in name and "save_counter" not in name}


@pytest.mark.e2e
def test_two_cpu_workers_train_to_the_same_shaped_checkpoint(tiny_training_set, tmp_path):
    lake, run_id = tiny_training_set["lake"], tiny_training_set["run_id"]
    single = train.train_run(lake, run_id, tmp_path / "one", max_steps=3, **SMALL)
    double = train.train_run(lake, run_id, tmp_path / "two", workers=2, max_steps=3, **SMALL)
    assert double["workers"] == 2 and double["replicas"] == 2 and double["steps"] == 3
    assert single["workers"] == 1
    shapes = _variable_shapes(tmp_path / "two" / "checkpoints")
    assert shapes and shapes == _variable_shapes(tmp_path / "one" / "checkpoints")


def test_training_validates_each_epoch_on_the_validation_days_only(tiny_training_set,
                                                                   tmp_path):
    lake, run_id = tiny_training_set["lake"], tiny_training_set["run_id"]
    manifest = tiny_training_set["manifest"]
    assert manifest.validation_days and not set(manifest.validation_days) & set(
        manifest.holdout_days + manifest.train_days)
    summary = train.train_run(lake, run_id, tmp_path / "run", epochs=3, patience=0,
                              **SMALL)
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    epochs = [h for h in history if "val_recall@50" in h]
    assert [h["epoch"] for h in epochs] == [1, 2, 3]
    assert all(0 <= h["val_recall@50"] <= 1 and np.isfinite(h["val_loss"]) for h in epochs)
    for h in epochs:  # each slice's recall@50 is logged (None: no positive in the slice)
        slices = [h[f"val_{s}_recall@50"] for s in ("warm_anchor", "cold_anchor")]
        assert all(v is None or 0 <= v <= 1 for v in slices)
        assert h["val_warm_anchor_recall@50"] is not None
    best = max(h["val_recall@50"] for h in epochs)
    assert summary["best_val_recall@50"] == pytest.approx(best)
    assert summary["best_epoch"] == next(h["epoch"] for h in epochs
                                         if h["val_recall@50"] == best)
    assert summary["epochs_run"] == 3 and not summary["stopped_early"]


@pytest.mark.unit
def test_early_stopping_keeps_the_best_epoch_and_cuts_the_learning_rate():
    import keras

    from training.config import LoopConfig
    from training.loop import EarlyStopping, learning_rate

    weight = tf.Variable([0.0, 0.0])
    optimizer = keras.optimizers.Adam(0.01)
    stopping = EarlyStopping(LoopConfig(patience=2, lr_decay=0.5), [weight], optimizer)
    decisions = []
    for epoch, value in enumerate([0.10, 0.20, 0.15, 0.12], start=1):
        weight.assign([epoch, epoch])
        decisions.append(stopping.update(epoch, {"val_recall@50": value}))
    assert decisions == [False, False, False, True]
    assert stopping.best_epoch == 2 and stopping.best == 0.20
    assert learning_rate(optimizer) == pytest.approx(0.0025)
    assert stopping.restore() and weight.numpy().tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="val_recall@50"):
        stopping.update(5, {"val_loss": 1.0})
