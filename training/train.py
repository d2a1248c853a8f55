"""Train a registered model on a training set: `python -m training.train --run-id R --out D`.

Settings come from the model's defaults, then a (partial) JSON file, then flags; the loop's
and the model's settings are told apart by name. With `--workers W > 1` the same command
runs as W local MultiWorkerMirrored processes (training.launcher).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from training.config import STRATEGIES, read_settings_file, save_settings, split_settings

log = logging.getLogger(__name__)


def train_run(lake_root: Path | str, run_id: str, out_dir: Path | str, workers: int = 1,
              epochs: int | None = None, model_name: str | None = None,
              on_epoch: Callable[[int, dict], None] | None = None, **overrides: Any) -> dict:
    """Train `model_name` (default two_tower) on lake/training_sets/<run_id>; checkpoints,
    history, config.json, the export and summary.json go to `out_dir`. `on_epoch(epoch,
    history entry)` (in process only) sees every epoch of a model trained by
    `training.loop` (a tuning trial reports and is pruned there)."""
    from features.files import atomic_write_json
    from training.models import DEFAULT_MODEL, model
    from training.reader import TrainingSet

    name = model_name or DEFAULT_MODEL
    kind = model(name)
    if epochs:
        overrides = {**overrides, "epochs": epochs}
    loop, params = split_settings(overrides, kind.config_class)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers > 1:
        from training.launcher import launch_workers

        if on_epoch is not None:
            raise ValueError("on_epoch needs an in-process run (workers = 1)")

        config = out / "config.json"
        save_settings(config, name, loop.model_copy(update={"strategy": "multi_worker"}), params)
        launch_workers(workers, ["--lake", str(lake_root), "--run-id", run_id, "--out",
                                 str(out), "--model", name, "--config", str(config)])
        return json.loads((out / "summary.json").read_text())
    data = TrainingSet(lake_root, run_id)
    summary = {"run_id": run_id, "model": name,
               **kind.train(data, out, params, loop, workers,
                            **({"on_epoch": on_epoch} if on_epoch is not None else {}))}
    if loop.strategy != "multi_worker" or _is_chief():
        save_settings(out / "config.json", name, loop, params)
        atomic_write_json(out / "summary.json", summary)
    return summary


def _is_chief() -> bool:
    import os

    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return task.get("index", 0) == 0


def main(argv: Sequence[str] | None = None) -> int:
    from features.settings import load_settings
    from training.cli import run_parser
    from training.models import DEFAULT_MODEL, model_names

    parser = run_parser("Train a model on a training set.")
    parser.add_argument("--out", required=True, help="output folder of the training run")
    parser.add_argument("--model", default=DEFAULT_MODEL, choices=model_names())
    parser.add_argument("--workers", type=int, default=1,
                        help="local MultiWorkerMirrored workers (default 1: in process)")
    parser.add_argument("--strategy", choices=STRATEGIES)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--precision", choices=("float32", "mixed_float16", "mixed_bfloat16"))
    parser.add_argument("--xla", action="store_true", default=None,
                        help="compile the train step with XLA")
    parser.add_argument("--config", help="JSON file of settings, partial is fine (flags win)")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = read_settings_file(args.config) if args.config else {}
        flags = {"strategy": args.strategy, "epochs": args.epochs,
                 "max_steps": args.max_steps, "batch_size": args.batch_size,
                 "precision": args.precision, "xla": args.xla}
        settings.update({k: v for k, v in flags.items() if v is not None})
        summary = train_run(load_settings(lake_root=args.lake).lake_root, args.run_id,
                            args.out, args.workers, model_name=args.model, **settings)
    except (FileNotFoundError, ValueError) as error:
        print(f"train: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
