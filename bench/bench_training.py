"""Training throughput: input pipeline examples/s vs train-step examples/s on CPU (goal >= 3),
and the global-shuffle write vs a plain write of the same training set (goal <= 1.3).

Needs a lake with labels and profiles (e.g. after `make demo`)."""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

from bench.common import report, timed


def pipeline_rate(data, columns: list[str], batch_size: int, batches: int) -> float:
    from training.pipeline import make_dataset

    dataset = make_dataset(data.files("train"), columns, batch_size, seed=0,
                           id_list_width=10, epochs=100)
    iterator = iter(dataset)
    next(iterator)  # first batch: file open, graph building
    started = time.perf_counter()
    for _ in itertools.islice(iterator, batches):
        pass
    return batches * batch_size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lake", default="lake")
    parser.add_argument("--end", default="2026-01-14")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    from features.catalog import ANCHOR_PROFILES, LABELS, USER_PROFILES
    from features.examples import TRAIN_EXAMPLES, VALIDATION_EXAMPLES
    from jobs import training_set
    from jobs.engine import spark_session
    from jobs.lake import Lake, lake_root
    from training.models.two_tower.config import TwoTowerConfig
    from training.models.two_tower.trainable import prepare
    from training.reader import TrainingSet
    from training.train import train_run

    lake = Lake(lake_root(args.lake), spark_session("sail"))
    run_id = "bench"
    manifest = training_set.run(lake, args.end, args.days, args.window, run_id)
    rows = manifest.counts.train.rows

    # Write cost: the same examples written plainly and globally shuffled.
    days = manifest.train_days
    examples = training_set.examples(
        lake.read_days(LABELS, days[0], days[-1]),
        lake.read_days(USER_PROFILES, days[0], days[-1]),
        lake.read_days(ANCHOR_PROFILES, days[0], days[-1]),
        manifest.vocabularies["category"])
    plain_spec = VALIDATION_EXAMPLES.renamed("training_sets/bench/plain")
    shuffled_spec = TRAIN_EXAMPLES.renamed("training_sets/bench/shuffled")
    plain = timed(lambda: lake.overwrite_table(examples, plain_spec))
    shuffled = timed(lambda: lake.overwrite_table(
        training_set.shuffle_globally(examples, 7, training_set.DEFAULT_SHARDS), shuffled_spec,
        partition_by="shard"))

    data = TrainingSet(lake.root, run_id)
    feed = pipeline_rate(data, prepare(data, TwoTowerConfig()).columns, 1024, 200)
    with tempfile.TemporaryDirectory() as out:
        summary = train_run(lake.root, run_id, Path(out), max_steps=args.steps, log_every=50)
        history = json.loads((Path(out) / "history.json").read_text())
    step_rate = sorted(h["examples_per_sec"] for h in history[1:])[len(history[1:]) // 2]
    report(f"training set of {rows:,} rows ({args.days} label days)", [
        ("plain write", f"{plain:7.2f} s"),
        ("globally shuffled write", f"{shuffled:7.2f} s"),
        ("ratio shuffled / plain", f"{shuffled / plain:7.2f}x   (goal <= 1.3)"),
        ("input pipeline (read + batch)", f"{feed:10,.0f} examples/s"),
        ("train step, batch 1024, CPU", f"{step_rate:10,.0f} examples/s "
                                        f"(median after warm-up, {summary['steps']} steps)"),
        ("ratio pipeline / train step", f"{feed / step_rate:7.2f}x   (goal >= 3)"),
    ])


if __name__ == "__main__":
    main()
