"""The distributed training loop shared by TensorFlow models (custom loop, `strategy.run`).

Strategy by setting: default (one device: the first GPU when one is visible, else the
CPU), mirrored (all local GPUs), multi_worker (TF_CONFIG, e.g. from training.launcher), or
auto (mirrored when GPUs are visible, else default). Each worker reads its own subset of
files (`distribute_datasets_from_function`) and every worker runs the same number of steps,
computed from Parquet metadata, so collectives never wait on a worker that ran out of data.
The loop knows nothing of the model: it asks a `Trainable` to encode a batch on the host,
then for the per-example loss of an encoded batch and its variables.

Speed settings: `precision` is the Keras dtype policy the model is built under
("mixed_float16" also wraps the optimizer in a dynamic `LossScaleOptimizer`); `xla`
compiles the forward and backward pass (`jit_compile`), while the optimizer update and the
cross-replica sum stay outside it. Encoded batches are prefetched to each replica's
device, so a GPU never waits on a host-to-device copy.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
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

    def encode(self, batch: Mapping[str, Any]) -> Any:
        """A batch of raw columns -> the tensors `loss` reads, in the input pipeline on the
        host (string lookups, casts); no string may be left, it would not reach a GPU."""

    def loss(self, encoded: Any) -> Any:
        """Per-example loss `[replica_batch]` float32 of an encoded batch, in training mode."""

    def checkpoint_items(self) -> dict[str, Any]:
        """Trackable objects saved in every checkpoint (optimizer and step are added)."""


@dataclass
class LoopResult:
    trainable: Any
    summary: dict
    chief: bool  # only the chief writes exports and summaries


def select_strategy(name: str):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if name == "multi_worker" or (name == "auto" and "TF_CONFIG" in os.environ):
        # NCCL refuses two ranks on one GPU: workers sharing a host's GPUs use gRPC rings
        ring = tf.distribute.experimental.CommunicationImplementation.RING
        options = (tf.distribute.experimental.CommunicationOptions(implementation=ring)
                   if gpus and workers_on_this_host() > len(gpus) else None)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "mirrored" or (name == "auto" and gpus):
        return tf.distribute.MirroredStrategy()
    if gpus:  # one device, with its input prefetched to it (the default strategy does not)
        return tf.distribute.OneDeviceStrategy("/gpu:0")
    return tf.distribute.get_strategy()


def workers_on_this_host() -> int:
    """Tasks of the TF_CONFIG cluster on this task's host (1 without a cluster)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task, cluster = config.get("task", {}), config.get("cluster", {})
    try:
        mine = cluster[task["type"]][task["index"]].rsplit(":", 1)[0]
    except (KeyError, IndexError, TypeError):
        return 1
    return sum(address.rsplit(":", 1)[0] == mine
               for addresses in cluster.values() for address in addresses)


@contextmanager
def dtype_policy(name: str) -> Iterator[None]:
    """Keras layers built inside take the dtype policy `name` ("float32", "mixed_float16",
    "mixed_bfloat16"); the global policy is restored on leaving."""
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def has_strings(spec: Any) -> bool:
    """Whether a dataset's `element_spec` holds a string tensor (which stays on the host)."""
    import tensorflow as tf

    return any(s.dtype == tf.string for s in tf.nest.flatten(spec))


def rows_per_pipeline(files: Sequence[str], pipelines: int) -> list[int]:
    return [sum(pq.ParquetFile(f).metadata.num_rows for f in files[i::pipelines])
            for i in range(pipelines)]


def learning_rate(optimizer) -> float:
    return float(np.asarray(optimizer.learning_rate))


class EarlyStopping:
    """Best epoch by a validation metric (higher is better), its weights, and when to stop;
    the learning rate is cut by `lr_decay` after every epoch that did not improve."""

    def __init__(self, loop: LoopConfig, variables: list, optimizer) -> None:
        self.loop, self.variables, self.optimizer = loop, variables, optimizer
        self.best: float | None = None
        self.best_epoch = 0
        self.weights: list[np.ndarray] | None = None
        self.stale = 0

    def update(self, epoch: int, metrics: Mapping[str, float | None]) -> bool:
        """Record one epoch's validation metrics; True when training should stop."""
        value = metrics.get(self.loop.monitor)
        if value is None:
            raise ValueError(f"validation gave no {self.loop.monitor!r}; it gave "
                             f"{sorted(metrics)}")
        if self.best is None or value > self.best + self.loop.min_delta:
            self.best, self.best_epoch, self.stale = value, epoch, 0
            self.weights = [np.array(v.numpy()) for v in self.variables]
            return False
        self.stale += 1
        if self.loop.lr_decay < 1:
            self.optimizer.learning_rate = learning_rate(self.optimizer) * self.loop.lr_decay
        return bool(self.loop.patience) and self.stale >= self.loop.patience

    def restore(self) -> bool:
        """Put the best epoch's weights back; False when the last epoch was the best."""
        if self.weights is None or self.stale == 0:
            return False
        for variable, value in zip(self.variables, self.weights, strict=True):
            variable.assign(value)
        return True


class SWA:
    """Stochastic weight averaging: the weights at the end of each of the last `epochs`
    epochs (of this process), averaged once training ends."""

    def __init__(self, epochs: int, variables: list) -> None:
        from collections import deque

        self.variables = variables
        self.snapshots: deque = deque(maxlen=epochs)

    def add(self, epoch: int) -> None:
        self.snapshots.append((epoch, [np.array(v.numpy()) for v in self.variables]))

    def apply(self, stopping: EarlyStopping | None, validate: Callable | None, trainable: Any,
              monitor: str) -> dict | None:
        """Put the average in the variables when it validates at least as well as the
        early-stopping epoch (or always, without validation); the record of the choice."""
        if len(self.snapshots) < 2:
            return None
        epochs = [e for e, _ in self.snapshots]
        average = [np.mean(parts, axis=0) for parts in zip(*(w for _, w in self.snapshots),
                                                             strict=True)]
        for variable, value in zip(self.variables, average, strict=True):
            variable.assign(value)  # float32 snapshots average to float32
        record = {"epochs": epochs, "kept": True, monitor: None}
        if stopping is not None and validate is not None and stopping.best is not None:
            value = validate(trainable).get(monitor)
            record[monitor] = value
            record["kept"] = value is not None and value >= stopping.best - 1e-6
            if not record["kept"]:  # back to the early-stopping epoch's weights
                for variable, best in zip(self.variables, stopping.weights, strict=True):
                    variable.assign(best)
        log.info("weight average of epochs %s: %s %s, %s", epochs, monitor, record[monitor],
                 "kept" if record["kept"] else "dropped")
        return record


def run_loop(build: Callable[[int], Trainable], files: Sequence[str], out: Path,
             loop: LoopConfig, validate: Callable[[Any], dict] | None = None,
             on_epoch: Callable[[int, dict], None] | None = None) -> LoopResult:
    """Train the Trainable `build(replica_batch)` on `files`; checkpoints, TensorBoard and
    history.json go to `out`, and a run restarted on the same `out` resumes (the early
    stopping record restarts with it).

    `validate(trainable)`, when given, runs after every epoch on every worker (the same
    data and weights, so every worker takes the same decision) and returns validation
    metrics (`loop.monitor` among them) for the history and early stopping.
    `on_epoch(epoch, entry)`, when given, sees each epoch's history entry once it is saved
    (a tuning trial reports it; an exception raised there, e.g. a pruned trial, ends the
    run). With `loop.swa_epochs` = N > 0 the weights of the last N epochs are averaged at
    the end, and kept when validation does not score them below the kept epoch's."""
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
        with dtype_policy(loop.precision):
            trainable = build(per_replica)
        variables = trainable.trainable_variables
        optimizer = keras.optimizers.Adam(loop.learning_rate)
        if loop.precision == "mixed_float16":  # bfloat16 has float32's range: no scaling
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        # built now, so a traced step reads the live loss scale, not its initial value
        optimizer.build(variables)
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
                            epochs=10**6, transform=trainable.encode)

    probe = make_dataset(files[:1], trainable.columns, per_replica, loop.seed,
                         trainable.id_list_width, transform=trainable.encode)
    options = tf.distribute.InputOptions(
        experimental_fetch_to_device=not has_strings(probe.element_spec),
        experimental_per_replica_buffer_size=2)
    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn, options))
    scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)

    def gradients(batch):
        with tf.GradientTape() as tape:
            loss = tf.nn.compute_average_loss(trainable.loss(batch),
                                              global_batch_size=loop.batch_size)
            target = optimizer.scale_loss(loss) if scaled else loss
        return loss, tape.gradient(target, variables)  # scaled: apply_gradients unscales

    if loop.xla:  # the update and its cross-replica sum (merge_call) stay outside XLA
        gradients = tf.function(gradients, jit_compile=True)

    def step_fn(batch):
        loss, grads = gradients(batch)
        optimizer.apply_gradients(zip(grads, variables, strict=True))
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
    stopping = EarlyStopping(loop, variables, optimizer) if validate is not None else None
    averaged = SWA(loop.swa_epochs, variables) if loop.swa_epochs else None
    stopped_early = False
    started, window_loss, window_steps = time.perf_counter(), 0.0, 0
    while int(step) < total_steps and not stopped_early:
        loss = float(train_step(iterator))
        step.assign_add(1)
        window_loss, window_steps = window_loss + loss, window_steps + 1
        current = int(step)
        # an epoch ends on its last step, or on the last step of all (max_steps may cut an
        # epoch short: its weights are still validated, so a run always has a best epoch)
        epoch_end = current % steps_per_epoch == 0 or current == total_steps
        if current % loop.log_every == 0 or epoch_end:
            elapsed = time.perf_counter() - started
            rate = window_steps * loop.batch_size / elapsed
            entry = {"step": current, "epoch": (current - 1) // steps_per_epoch + 1,
                     "loss": window_loss / window_steps, "examples_per_sec": rate,
                     "learning_rate": learning_rate(optimizer)}
            if stopping is not None and epoch_end:
                entry.update(validate(trainable))
                stopped_early = stopping.update(entry["epoch"], entry)
            if averaged is not None and epoch_end:
                averaged.add(entry["epoch"])
            history.append(entry)
            log.info("step %d/%d epoch %d loss %.4f %.0f examples/s%s", current, total_steps,
                     entry["epoch"], entry["loss"], rate,
                     "".join(f" {k} {v:.4f}" for k, v in entry.items()
                             if k.startswith("val_") and v is not None))
            if writer is not None:
                with writer.as_default(step=current):
                    for key, value in entry.items():
                        if key not in ("step", "epoch") and value is not None:
                            tf.summary.scalar(key, value)
            manager.save(checkpoint_number=current)
            if chief:
                atomic_write_json(history_path, history)
            if on_epoch is not None and epoch_end:
                on_epoch(entry["epoch"], entry)
            started, window_loss, window_steps = time.perf_counter(), 0.0, 0

    swa = averaged.apply(stopping, validate, trainable, loop.monitor) if averaged else None
    if swa is not None and swa["kept"]:
        manager.save(checkpoint_number=int(step) + 1)  # the averaged weights are the latest
    elif stopping is not None and stopping.restore():
        manager.save(checkpoint_number=int(step) + 1)  # the kept weights are the latest
        log.info("restored the weights of epoch %d (%s %.4f)", stopping.best_epoch,
                 loop.monitor, stopping.best)
    summary = {"steps": int(step), "steps_per_epoch": steps_per_epoch, "replicas": replicas,
               "workers": pipelines, "strategy": type(strategy).__name__,
               "precision": loop.precision, "xla": loop.xla,
               "epochs_run": -(-int(step) // steps_per_epoch), "stopped_early": stopped_early,
               "best_epoch": stopping.best_epoch if stopping else None,
               f"best_{loop.monitor}": stopping.best if stopping else None,
               "final_loss": history[-1]["loss"] if history else None,
               "examples_per_sec": float(np.median([h["examples_per_sec"] for h in history]))
               if history else None}
    if swa is not None:
        summary["swa"] = swa
    return LoopResult(trainable, summary, chief)
