"""Training end to end on a tiny simulated lake: pipeline, loop, resume, workers, export."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import tensorflow as tf

from training import train
from training.evaluate import evaluate_run
from training.export import embed, load_serving
from training.inputs import read_batches

SMALL = {"batch_size": 64, "embedding_dim": 8, "hidden_units": (16,), "num_negatives": 8,
         "log_every": 2}


def test_input_pipeline_reads_every_row_once_per_epoch_in_a_new_shard_order(tiny_training_set):
    data = train.prepare(tiny_training_set["lake"], tiny_training_set["run_id"], last_k=5)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in data.train_files)
    assert len(data.train_files) == 3
    keys = ["user_id", "anchor_id", "dt"]
    seen = [list(read_batches(data.train_files, keys, 16, seed=1, epoch=e, last_k=5,
                              drop_remainder=False)) for e in (0, 1)]
    for batches in seen:
        assert all(len(b["user_id"]) == 16 for b in batches[:-1])
        assert sum(len(b["user_id"]) for b in batches) == rows
    triples = [sorted(zip(*[np.concatenate([b[k] for b in batches]).tolist() for k in keys],
                          strict=True)) for batches in seen]
    assert triples[0] == triples[1]  # same rows each epoch...
    firsts = [b[0]["user_id"].tolist() for b in seen]
    orders = [[f for f in np.random.default_rng([1, e]).permutation(data.train_files)]
              for e in (0, 1)]
    assert orders[0] != orders[1] and firsts[0] != firsts[1]  # ...read in another shard order
    assert data.log_q.shape == (data.vocab.anchor_buckets + 1,) and np.isfinite(data.log_q).all()


def test_train_resume_export_and_reload_parity(tiny_training_set, tmp_path):
    lake, run_id = tiny_training_set["lake"], tiny_training_set["run_id"]
    out = tmp_path / "run"
    first = train.train_run(lake, run_id, out, max_steps=4, **SMALL)
    assert first["steps"] == 4
    again = train.train_run(lake, run_id, out, max_steps=6, **SMALL)  # resumes at step 4
    assert again["steps"] == 6
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history] == [2, 4, 6]
    assert all(np.isfinite(h["loss"]) and h["examples_per_sec"] > 0 for h in history)
    assert (out / "tensorboard").is_dir() and any((out / "checkpoints").iterdir())

    towers = load_serving(out / "export")
    parity = json.loads((out / "export" / "parity_sample.json").read_text())
    for name, side in (("user_tower", "user"), ("anchor_tower", "anchor")):
        inputs = {c: np.array(v) for c, v in parity[f"{side}_inputs"].items()}
        reloaded = embed(towers[name], inputs)
        np.testing.assert_allclose(reloaded, np.array(parity[f"{side}_embeddings"]),
                                   atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(reloaded, axis=1), 1.0, atol=1e-5)
    table = pq.read_table(out / "export" / "anchor_embeddings.parquet")
    assert table.num_rows == tiny_training_set["manifest"]["counts"]["candidates"]

    metrics = evaluate_run(lake, run_id, out, landing=tiny_training_set["landing"])
    assert set(metrics["baselines"]) == {"popularity", "random", "oracle"}
    assert 0.0 <= metrics["model"]["recall@50"] <= 1.0 and metrics["embeddings_finite"]
    assert set(metrics["slices"]) == {"warm_user", "cold_user", "warm_anchor", "cold_anchor"}
    assert json.loads((out / "metrics.json").read_text())["model"] == metrics["model"]


def _variable_shapes(checkpoint_dir):
    path = tf.train.latest_checkpoint(str(checkpoint_dir))
    return {name: tuple(shape) for name, shape in tf.train.list_variables(path)
            if "optimizer" not in name and "save_counter" not in name}


def test_two_cpu_workers_train_to_the_same_shaped_checkpoint(tiny_training_set, tmp_path):
    lake, run_id = tiny_training_set["lake"], tiny_training_set["run_id"]
    single = train.train_run(lake, run_id, tmp_path / "one", max_steps=3, **SMALL)
    double = train.train_run(lake, run_id, tmp_path / "two", workers=2, max_steps=3, **SMALL)
    assert double["workers"] == 2 and double["replicas"] == 2 and double["steps"] == 3
    assert single["workers"] == 1
    shapes = _variable_shapes(tmp_path / "two" / "checkpoints")
    assert shapes and shapes == _variable_shapes(tmp_path / "one" / "checkpoints")
