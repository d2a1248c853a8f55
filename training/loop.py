"""The distributed training loop shared by TensorFlow models (custom loop, `strategy.run`).

Strategy by setting: default (one device), mirrored (all local GPUs), multi_worker
(TF_CONFIG, e.g. from training.launcher), or auto (mirrored when GPUs are visible, else
default). Each worker reads its own subset of files (`distribute_datasets_from_function`)
and every worker runs the same number of steps, computed from Parquet metadata, so
collectives never wait on a worker that ran out of data. The loop knows nothing of the
model: it asks a `Trainable` for the per-example loss of a batch and its variables.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow.parquet as pq

from features.files import atomic_write_json
from training.config import LoopConfig

log = logging.getLogger(__name__)


class Trainable(Protocol):
    """What the loop trains: built under the strategy's scope for one replica's batch."""

    columns: Sequence[str]  # example columns every batch must hold
    id_list_width: int  # width of id-list columns in a batch

    @property
    def trainable_variables(self) -> list: ...

    def loss(self, batch: Mapping[str, Any]) -> Any:
        """Per-example loss `[replica_batch]` of a batch of raw columns, in training mode."""

    def checkpoint_items(self) -> dict[str, Any]:
        """Trackable objects saved in every checkpoint (optimizer and step are added)."""


@dataclass
class LoopResult:
    trainable: Any
    summary: dict
    chief: bool  # only the chief writes exports and summaries


def select_strategy(name: str):
    import tensorflow as tf

    if name == "multi_worker" or (name == "auto" and "TF_CONFIG" in os.environ):
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored" or (name == "auto" and tf.config.list_physical_devices("GPU")):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def rows_per_pipeline(files: Sequence[str], pipelines: int) -> list[int]:
    return [sum(pq.ParquetFile(f).metadata.num_rows for f in files[i::pipelines])
            for i in range(pipelines)]


def run_loop(build: Callable[[int], Trainable], files: Sequence[str], out: Path,
             loop: LoopConfig) -> LoopResult:
    """Train the Trainable `build(replica_batch)` on `files`; checkpoints, TensorBoard and
    history.json go to `out`, and a run restarted on the same `out` resumes."""
    import keras
    import tensorflow as tf

    from training.pipeline import make_dataset

    keras.utils.set_random_seed(loop.seed)
    strategy = select_strategy(loop.strategy)
    resolver = getattr(strategy, "cluster_resolver", None)
    task_id = resolver.task_id if resolver is not None and resolver.task_type else 0
    chief = task_id == 0
    pipelines = getattr(strategy.extended, "_num_workers", 1)
    replicas = strategy.num_replicas_in_sync
    per_replica = loop.batch_size // replicas
    rows = rows_per_pipeline(files, pipelines)
    steps_per_epoch = min(rows) // (per_replica * (replicas // pipelines))
    if steps_per_epoch < 1:
        raise ValueError(f"too little data for one step: {rows} rows per worker, "
                         f"batch {loop.batch_size}")
    total_steps = steps_per_epoch * loop.epochs
    if loop.max_steps:
        total_steps = min(total_steps, loop.max_steps)

    with strategy.scope():
        trainable = build(per_replica)
        optimizer = keras.optimizers.Adam(loop.learning_rate)
    # host-side bookkeeping: a plain variable, not a mirrored one, so Python can read it
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    with strategy.scope():
        checkpoint = tf.train.Checkpoint(**trainable.checkpoint_items(), optimizer=optimizer,
                                         step=step)
    ckpt_dir = out / "checkpoints" if chief else Path(tempfile.mkdtemp(prefix=f"worker{task_id}_"))
    manager = tf.train.CheckpointManager(checkpoint, str(ckpt_dir), max_to_keep=3)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint)
        log.info("resumed from %s at step %d", manager.latest_checkpoint, int(step))

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        mine = list(files)[context.input_pipeline_id::context.num_input_pipelines]
        return make_dataset(mine, trainable.columns,
                            context.get_per_replica_batch_size(loop.batch_size),
                            loop.seed + context.input_pipeline_id, trainable.id_list_width,
                            epochs=10**6)

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))

    def step_fn(batch):
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(trainable.loss(batch),
                                              global_batch_size=loop.batch_size)
        variables = trainable.trainable_variables
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
        if current % loop.log_every == 0 or current == total_steps \
                or current % steps_per_epoch == 0:
            elapsed = time.perf_counter() - started
            rate = window_steps * loop.batch_size / elapsed
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
                atomic_write_json(history_path, history)
            started, window_loss, window_steps = time.perf_counter(), 0.0, 0

    summary = {"steps": int(step), "steps_per_epoch": steps_per_epoch, "replicas": replicas,
               "workers": pipelines,
               "final_loss": history[-1]["loss"] if history else None,
               "examples_per_sec": float(np.median([h["examples_per_sec"] for h in history]))
               if history else None}
    return LoopResult(trainable, summary, chief)
