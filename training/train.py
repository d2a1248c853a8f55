"""Distributed training of the two-tower model with a custom loop (`strategy.run`).

Strategy by flag: default (one device), mirrored (all local GPUs), multi_worker (TF_CONFIG,
e.g. from training.launcher), or auto (mirrored when GPUs are visible, else default). Each
worker reads its own subset of shard files (`distribute_datasets_from_function`) and every
worker runs the same number of steps, computed from Parquet metadata, so collectives never
wait on a worker that ran out of data.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

log = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Everything derived from the training set before the model is built."""

    manifest: dict
    train_files: list[str]
    vocab: object  # training.inputs.Vocabularies
    log_q: np.ndarray  # [anchor_buckets + 1] log frequency of each anchor among all rows
    columns: list[str]


def prepare(lake_root: Path, run_id: str, last_k: int) -> Prepared:
    from jobs.training_set import load_manifest
    from training.inputs import LABEL_COLUMNS, Vocabularies, raw_columns, shard_files, tower_specs

    manifest = load_manifest(lake_root, run_id)
    fmt = manifest["format"]
    tables = manifest["tables"]
    train_files = shard_files(Path(lake_root) / tables["train"], fmt)
    candidate_files = shard_files(Path(lake_root) / tables["candidates"], fmt)
    ids = [pq.read_table(f, columns=["anchor_id"]) for f in train_files]
    candidates = [pq.read_table(f, columns=["anchor_id"]) for f in candidate_files]
    max_id = max(int(pc.max(t.column("anchor_id")).as_py() or 0) for t in ids + candidates)
    buckets = max_id + 1
    # In-batch negatives are the anchors of other rows, whatever their label: q is the
    # anchor's share of all training rows.
    rows = np.concatenate([t.column("anchor_id").to_numpy() for t in ids])
    counts = np.bincount(rows, minlength=buckets + 1).astype(np.float64)
    # anchors never seen in training get half a count: a finite log q
    log_q = np.log(np.maximum(counts, 0.5) / max(counts.sum(), 1.0)).astype(np.float32)
    vocab = Vocabularies.from_manifest(manifest, buckets, last_k)
    user_spec, anchor_spec = tower_specs(vocab)
    columns = sorted({*LABEL_COLUMNS, *raw_columns(user_spec), *raw_columns(anchor_spec)})
    return Prepared(manifest, train_files, vocab, log_q, columns)


def select_strategy(name: str):
    import tensorflow as tf

    if name == "multi_worker" or (name == "auto" and "TF_CONFIG" in os.environ):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored" or (name == "auto" and tf.config.list_physical_devices("GPU")):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _rows_per_pipeline(files: Sequence[str], pipelines: int) -> list[int]:
    return [sum(pq.ParquetFile(f).metadata.num_rows for f in files[i::pipelines])
            for i in range(pipelines)]


def train_run(lake_root: Path | str, run_id: str, out_dir: Path | str, workers: int = 1,
              epochs: int | None = None, **overrides) -> dict:
    """Train on lake/training_sets/<run_id>, write checkpoints, logs and the export to
    `out_dir`; with workers > 1, as that many local MultiWorkerMirrored processes."""
    from training.config import TrainConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = TrainConfig().replace(**overrides, **({"epochs": epochs} if epochs else {}))
    if workers > 1:
        from training.launcher import launch_workers

        config.replace(strategy="multi_worker").save(out / "config.json")
        launch_workers(workers, ["--lake", str(lake_root), "--run-id", run_id,
                                 "--out", str(out), "--config", str(out / "config.json")])
        return json.loads((out / "summary.json").read_text())
    return _train(Path(lake_root), run_id, out, config)


def _train(lake_root: Path, run_id: str, out: Path, config) -> dict:
    import keras
    import tensorflow as tf

    from training.export import export_model
    from training.inputs import RawFeatureEncoder, make_dataset, raw_columns, tower_specs
    from training.losses import CombinedLoss, InBatchSoftmaxLoss
    from training.towers import TwoTowerModel

    keras.utils.set_random_seed(config.seed)
    data = prepare(lake_root, run_id, config.last_k)
    strategy = select_strategy(config.strategy)
    resolver = getattr(strategy, "cluster_resolver", None)
    task_id = resolver.task_id if resolver is not None and resolver.task_type else 0
    chief = task_id == 0
    pipelines = strategy.extended._num_workers if hasattr(strategy.extended, "_num_workers") \
        else 1
    replicas = strategy.num_replicas_in_sync
    per_replica = config.batch_size // replicas
    per_pipeline_rows = _rows_per_pipeline(data.train_files, pipelines)
    steps_per_epoch = min(per_pipeline_rows) // (per_replica * (replicas // pipelines))
    if steps_per_epoch < 1:
        raise ValueError(f"too little data for one step: {per_pipeline_rows} rows per worker, "
                         f"batch {config.batch_size}")
    total_steps = steps_per_epoch * config.epochs
    if config.max_steps:
        total_steps = min(total_steps, config.max_steps)

    user_spec, anchor_spec = tower_specs(data.vocab)
    with strategy.scope():
        model = TwoTowerModel(user_spec, anchor_spec, config.embedding_dim, config.hidden_units,
                              config.user_dropout_rate, config.anchor_dropout_rate, config.seed)
        softmax = InBatchSoftmaxLoss(
            num_negatives=min(config.num_negatives, per_replica - 1), margin=config.margin,
            t=config.t, gamma=config.gamma, remove_accidental_hits=config.remove_accidental_hits,
            logq_correction=config.logq_correction, seed=config.seed)
        loss_fn = CombinedLoss(config.softmax_weight, config.pairwise_weight,
                               config.pointwise_weight, softmax=softmax)
        optimizer = keras.optimizers.Adam(config.learning_rate)
    # host-side bookkeeping: a plain variable, not a mirrored one, so Python can read it
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    with strategy.scope():
        checkpoint = tf.train.Checkpoint(user_tower=model.user_tower,
                                         anchor_tower=model.anchor_tower, loss=loss_fn,
                                         optimizer=optimizer, step=step)
    user_encoder = RawFeatureEncoder(user_spec, data.vocab)
    anchor_encoder = RawFeatureEncoder(anchor_spec, data.vocab)
    log_q = tf.constant(data.log_q * config.logq_weight)
    user_raw, anchor_raw = raw_columns(user_spec), raw_columns(anchor_spec)

    ckpt_dir = out / "checkpoints" if chief else Path(tempfile.mkdtemp(prefix=f"worker{task_id}_"))
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=3)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint)
        log.info("resumed from %s at step %d", manager.latest_checkpoint, int(step))

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        files = data.train_files[context.input_pipeline_id::context.num_input_pipelines]
        return make_dataset(files, data.columns, context.get_per_replica_batch_size(
            config.batch_size), config.seed + context.input_pipeline_id, config.last_k,
            epochs=10**6)

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))

    def step_fn(raw):
        users, user_mask = user_encoder({c: raw[c] for c in user_raw})
        anchors, anchor_mask = anchor_encoder({c: raw[c] for c in anchor_raw})
        with tf.GradientTape() as tape:
            u = model.user_tower(users, training=True, preference_mask=user_mask)
            a = model.anchor_tower(anchors, training=True, preference_mask=anchor_mask)
            per_example, terms = loss_fn(u, a, tf.cast(raw["label"], tf.float32),
                                         anchor_ids=raw["anchor_id"],
                                         anchor_log_q=tf.gather(log_q, raw["anchor_id"]))
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=config.batch_size)
        variables = model.trainable_variables + loss_fn.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    @tf.function
    def train_step(iterator):
        losses = strategy.run(step_fn, args=(next(iterator),))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    writer = tf.summary.create_file_writer(str(out / "tensorboard")) if chief else None
    history_path = out / "history.json"
    history = json.loads(history_path.read_text()) if history_path.exists() and int(step) else []
    for _ in range(int(step) % steps_per_epoch if int(step) else 0):
        next(iterator)  # resume mid-epoch: skip the batches already trained on
    started, window_loss, window_steps = time.perf_counter(), 0.0, 0
    while int(step) < total_steps:
        loss = float(train_step(iterator))
        step.assign_add(1)
        window_loss, window_steps = window_loss + loss, window_steps + 1
        current = int(step)
        if current % config.log_every == 0 or current == total_steps \
                or current % steps_per_epoch == 0:
            elapsed = time.perf_counter() - started
            rate = window_steps * config.batch_size / elapsed
            entry = {"step": current, "epoch": (current - 1) // steps_per_epoch + 1,
                     "loss": window_loss / window_steps, "examples_per_sec": rate}
            history.append(entry)
            log.info("step %d/%d epoch %d loss %.4f %.0f examples/s", current, total_steps,
                     entry["epoch"], entry["loss"], rate)
            if writer is not None:
                with writer.as_default(step=current):
                    tf.summary.scalar("loss", entry["loss"])
                    tf.summary.scalar("examples_per_sec", rate)
            manager.save(checkpoint_number=current)
            if chief:
                history_path.write_text(json.dumps(history, indent=1))
            started, window_loss, window_steps = time.perf_counter(), 0.0, 0

    summary = {"run_id": run_id, "steps": int(step), "steps_per_epoch": steps_per_epoch,
               "replicas": replicas, "workers": pipelines,
               "final_loss": history[-1]["loss"] if history else None,
               "examples_per_sec": float(np.median([h["examples_per_sec"] for h in history]))
               if history else None}
    if chief:
        config.save(out / "config.json")
        export_model(model, data, user_spec, anchor_spec, out / "export", lake_root)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    from training.config import STRATEGIES, TrainConfig

    parser = argparse.ArgumentParser(description="Train the two-tower model on a training set.")
    parser.add_argument("--lake", help="lake root (default: $LAKE_ROOT or ./lake)")
    parser.add_argument("--run-id", "--training-set", dest="run_id", required=True,
                        help="training set run id under <lake>/training_sets/")
    parser.add_argument("--out", required=True, help="output folder of the training run")
    parser.add_argument("--workers", type=int, default=1,
                        help="local MultiWorkerMirrored workers (default 1: in process)")
    parser.add_argument("--strategy", choices=STRATEGIES)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--config", help="JSON file of TrainConfig fields (flags win)")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from jobs.lake import lake_root

    config = TrainConfig.load(Path(args.config)) if args.config else TrainConfig()
    flags = {k: v for k, v in {"strategy": args.strategy, "epochs": args.epochs,
                               "max_steps": args.max_steps,
                               "batch_size": args.batch_size}.items() if v is not None}
    config = config.replace(**flags)
    if args.workers > 1:
        summary = train_run(lake_root(args.lake), args.run_id, args.out, args.workers,
                            **{k: v for k, v in vars(config).items()})
    else:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        summary = _train(lake_root(args.lake), args.run_id, out, config)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
