"""Training throughput and the cost of the global shuffle, ratios measured in one run:
- the piled write of the training set (rows to piles by a hash, unordered) vs a plain
  write of the same examples (goal <= 1.2), repeated and interleaved, medians compared;
- the reader (piles permuted in memory) and the tf.data pipeline in examples/s, and the
  mixing z-scores of the reader's consecutive batches (a shuffle passes with |z| < 4);
- the input pipeline vs the train step on CPU (goal >= 3; `--steps 0` skips it).

Needs a lake with labels and profiles (e.g. after `make demo`); writes
training_sets/bench* into it."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
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


def reader_rate(data, columns: list[str], batch_size: int, permute_piles: bool = True
                ) -> float:
    """Examples/s of one epoch of the reader alone: piles read, permuted, batched."""
    rows = 0
    started = time.perf_counter()
    for batch in data.batches("train", columns, batch_size, seed=0, epoch=0,
                              id_list_width=10, permute_piles=permute_piles):
        rows += len(batch[columns[0]])
    return rows / (time.perf_counter() - started)


def files_mb(lake, spec) -> tuple[int, float]:
    from training.reader import table_files

    files = table_files(lake.path(spec), lake.format)
    return len(files), sum(Path(f.removeprefix("file://")).stat().st_size
                           for f in files) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lake", default="lake")
    parser.add_argument("--end", default="2026-01-14")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--window", type=int, default=7)
    parser.add_argument("--steps", type=int, default=300, help="train steps; 0: skip")
    parser.add_argument("--repeats", type=int, default=3,
                        help="plain and piled writes, interleaved, medians compared")
    args = parser.parse_args()
    import pyarrow.parquet as pq

    from features.catalog import ANCHOR_PROFILES, LABELS, USER_PROFILES
    from features.examples import TRAIN_EXAMPLES, VALIDATION_EXAMPLES
    from features.mixing import MIXING_GROUPS, batches_mixing_z
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
    rows, piles = manifest.counts.train.rows, manifest.shards

    # Write cost: the same examples written plainly and in piles, turn about.
    days = manifest.train_days
    examples = training_set.examples(
        lake.read_days(LABELS, days[0], days[-1]),
        lake.read_days(USER_PROFILES, days[0], days[-1]),
        lake.read_days(ANCHOR_PROFILES, days[0], days[-1]),
        manifest.vocabularies["category"])
    plain_spec = VALIDATION_EXAMPLES.renamed("training_sets/bench/plain")
    piled_spec = TRAIN_EXAMPLES.renamed("training_sets/bench/piled")
    plain, piled = [], []
    for _ in range(args.repeats):
        plain.append(timed(lambda: lake.overwrite_table(examples, plain_spec)))
        piled.append(timed(lambda: lake.overwrite_table(
            training_set.assign_piles(examples, manifest.seed, piles), piled_spec,
            partition_by="shard")))
    plain_s, piled_s = statistics.median(plain), statistics.median(piled)
    (plain_files, plain_mb), (piled_files, piled_mb) = (files_mb(lake, plain_spec),
                                                         files_mb(lake, piled_spec))

    data = TrainingSet(lake.root, run_id)
    columns = prepare(data, TwoTowerConfig()).columns
    biggest = max(data.files("train"), key=lambda f: pq.ParquetFile(f).metadata.num_rows)
    pile = pq.read_table(biggest, columns=columns)
    z = batches_mixing_z(data.batches("train", list(MIXING_GROUPS), 1024, seed=0, epoch=0,
                                      id_list_width=1, drop_remainder=False))
    reader = reader_rate(data, columns, 1024)
    unpermuted = reader_rate(data, columns, 1024, permute_piles=False)
    feed = pipeline_rate(data, columns, 1024, 200)
    lines = [
        ("plain write", f"{plain_s:7.2f} s  (median of {' '.join(f'{t:.2f}' for t in plain)};"
                        f" {plain_files} files, {plain_mb:.0f} MB)"),
        ("piled write (the job's)", f"{piled_s:7.2f} s  (median of "
                                    f"{' '.join(f'{t:.2f}' for t in piled)}; {piles} piles, "
                                    f"{piled_files} files, {piled_mb:.0f} MB)"),
        ("ratio piled / plain", f"{piled_s / plain_s:7.2f}x   (goal <= 1.2)"),
        ("largest pile in memory", f"{pile.num_rows:,} rows, {pile.nbytes / 1e6:.0f} MB of "
                                   f"the trainer's {len(columns)} columns (bound "
                                   f"{training_set.MAX_PILE_ROWS:,} rows)"),
        ("mixing z of reader batches", "  ".join(f"{k} {v:+.2f}" for k, v in z.items())
         + ("   (pass: |z| < 4)" if max(map(abs, z.values())) < 4 else "   (FAIL: |z| >= 4)")),
        ("reader (piles permuted)", f"{reader:10,.0f} examples/s (one epoch, batch 1024)"),
        ("reader without permutation", f"{unpermuted:10,.0f} examples/s (the same, for its "
                                       f"cost: {reader / unpermuted:.2f}x)"),
        ("input pipeline (tf.data)", f"{feed:10,.0f} examples/s"),
    ]
    if args.steps:
        with tempfile.TemporaryDirectory() as out:
            summary = train_run(lake.root, run_id, Path(out), max_steps=args.steps,
                                log_every=50)
            history = json.loads((Path(out) / "history.json").read_text())
        step_rate = sorted(h["examples_per_sec"] for h in history[1:])[len(history[1:]) // 2]
        lines += [("train step, batch 1024, CPU", f"{step_rate:10,.0f} examples/s "
                   f"(median after warm-up, {summary['steps']} steps)"),
                  ("ratio pipeline / train step", f"{feed / step_rate:7.2f}x   (goal >= 3)")]
    lines.append(("load average (1 min)", f"{os.getloadavg()[0]:.1f}"))
    report(f"training set of {rows:,} rows ({len(days)} train days)", lines)


if __name__ == "__main__":
    main()
