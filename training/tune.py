"""Hyper-parameter search: `python -m training.tune --run-id R --trials N --study NAME`.

Optuna: a seeded TPE sampler proposes settings from the search space below (`SEARCH_SPACES`,
the one place ranges live); each trial of the two-tower model trains through
`training.train.train_run` into its own folder and reports its validation metric
(`val_recall@50`, the loop's `validate`) after every epoch, so a Hyperband (or
successive-halving, median) pruner stops poor trials early; the trial's value is its best
validation metric (after early stopping; the weight average when SWA is on and kept). A
baseline's trial (`--model als`, `item_cf`) builds the scorer with the trial's settings and
scores the validation days. The study lives in an RDB storage (SQLite by default): the same
command resumes a crashed study (`load_if_exists`; a trial that stopped beating is failed
and retried once) and several processes may run trials of one study at once (give each its
own `--worker`, which seeds its sampler apart).

Three kinds of days, never mixed. Trials read a *tuning view* of the training set, a
training set of its own (`<lake>/training_sets/<R>.tune-...`, written once per sample): the
train split (with `--sample-users F`, only the users whose seeded hash falls below F, and
with `--sample-train-days K` only the last K train days), the validation rows of the
validation days only, and the candidates of the train and validation days only; its
manifest lists no test day. Test-day rows are absent from every table a trial can read,
and this is checked when the view is built and before each study runs. Baselines read lake
history strictly before the scored (validation) day. Only `--final` reads the test days: it
retrains the best configuration on the full training range (the original set R) and
evaluates it there beside every baseline.

Outputs under `--out` (default `<runs_root>/<R>/tune/<study>`): `trials/<n>/` (history,
summary, config of each trial; checkpoints and exports are removed unless
`--keep-trials`), `study.db` (the default storage), `best_settings.json` (the best trial's
settings, for `training.train --config`), `study.json` (days, sample, search
space, every trial with its learning curve, the best trial and its full settings, history
and parameter importances as plot data, timings; `final` after `--final`), and `final/`.
One progress line per finished trial: number, state, value, epochs, seconds, best so far.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from features.files import atomic_write_json, atomic_write_text
from features.manifest import TRAINING_SETS, TrainingSetManifest, check_run_id

log = logging.getLogger(__name__)

MONITOR = "val_recall@50"
TUNABLE = ("two_tower", "als", "item_cf")
PRUNERS = ("hyperband", "sha", "median", "none")
VIEW_INFO = "_tuning_view.json"  # beside a view's manifest: what it was built from
BEST_SETTINGS = "best_settings.json"  # the best trial's flat settings (training.train --config)


# --- the search space: the one place ranges live ------------------------------------------

@dataclass(frozen=True)
class Param:
    """One dimension: `float` / `int` between low and high (log-uniform when `log`), or one
    of `choices` (`categorical`)."""

    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial, name: str):
        if self.kind == "float":
            return trial.suggest_float(name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_categorical(name, list(self.choices))


def Float(low: float, high: float, log: bool = False) -> Param:  # noqa: N802 (a constructor)
    return Param("float", low, high, log)


def Int(low: int, high: int, log: bool = False) -> Param:  # noqa: N802
    return Param("int", low, high, log)


def Choice(*choices) -> Param:  # noqa: N802
    return Param("categorical", choices=tuple(choices))


SEARCH_SPACES: dict[str, dict[str, Param]] = {
    # loop settings (training.config.LoopConfig) and TwoTowerConfig's, by their names
    "two_tower": {
        "learning_rate": Float(3e-4, 1e-2, log=True),
        "lr_decay": Float(0.3, 1.0),  # the schedule: x this after an epoch without progress
        "patience": Int(1, 3),
        "embedding_dim": Choice(16, 32, 64),
        "hidden_units": Choice("64", "128,64", "256,128"),  # layer sizes, comma-separated
        "user_dropout_rate": Float(0.0, 0.8),
        "anchor_dropout_rate": Float(0.0, 0.8),
        "num_negatives": Choice(16, 32, 64, 128),
        "logq_weight": Float(0.0, 1.0),
        "gamma": Float(5.0, 40.0, log=True),  # logit scale, 1 / temperature
        "margin": Float(0.0, 0.3),
        "pairwise_weight": Float(0.0, 0.5),
        "pointwise_weight": Float(0.0, 1.0),
        "memory_weight": Float(0.0, 0.9),
    },
    # training.models.als.ALSSettings
    "als": {
        "factors": Choice(16, 32, 64, 128),
        "regularization": Float(1e-3, 1.0, log=True),
        "alpha": Float(0.1, 10.0, log=True),  # confidence scale over log1p(watch seconds)
        "iterations": Int(5, 30),
        "window_days": Int(7, 56, log=True),
    },
    # training.models.item_cf.ItemCFSettings
    "item_cf": {
        "shrinkage": Float(0.0, 100.0),
        "neighbours": Int(10, 200, log=True),
        "recent_days": Int(3, 28),
        "half_life_days": Float(1.0, 30.0, log=True),
    },
}


def suggest(trial, model_name: str) -> dict[str, Any]:
    """The trial's point of `model_name`'s space (Optuna's raw values)."""
    return {name: p.suggest(trial, name) for name, p in SEARCH_SPACES[model_name].items()}


def to_settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """Raw trial values -> settings the model takes (`hidden_units` "128,64" -> (128, 64))."""
    out = dict(params)
    if isinstance(out.get("hidden_units"), str):
        out["hidden_units"] = tuple(int(u) for u in out["hidden_units"].split(","))
    return out


def space_record(model_name: str) -> dict[str, dict]:
    return {name: {k: v for k, v in asdict(p).items() if v not in (None, (), False)}
            for name, p in SEARCH_SPACES[model_name].items()}


# --- the tuning view: a reproducible user sample, no test day --------------------------------

def user_sample(user_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """`[N]` bool: whether each user is in the sample, by a seeded 64-bit hash (splitmix64)
    of the id: the same users for the same seed on any machine, about `fraction` of them,
    and a larger fraction keeps every user of a smaller one."""
    if fraction >= 1:
        return np.ones(len(user_ids), dtype=bool)
    with np.errstate(over="ignore"):
        x = np.asarray(user_ids).astype(np.int64).view(np.uint64)
        x = x ^ np.uint64((seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) % 2**64)
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / 2.0**53 < fraction


def view_id(run_id: str, fraction: float, seed: int, train_days: int | None) -> str:
    days = f"-d{train_days}" if train_days else ""
    return check_run_id(f"{run_id}.tune-u{round(fraction * 10000):05d}-s{seed}{days}")


def _dts(files: Sequence[str]) -> set[str]:
    import pyarrow.parquet as pq

    return {d for f in files for d in pq.read_table(f, columns=["dt"]).column("dt").to_pylist()}


def check_no_test_days(lake_root: Path | str, view: str, test_days: Sequence[str]) -> None:
    """Raise when the tuning view names or holds a row of any test day."""
    from training.reader import TrainingSet

    data = TrainingSet(lake_root, view)
    if data.manifest.holdout_days:
        raise AssertionError(f"tuning view {view} lists test days {data.manifest.holdout_days}")
    for split in ("train", "validation", "candidates"):
        leaked = sorted(_dts(data.files(split)) & set(test_days))
        if leaked:
            raise AssertionError(f"tuning view {view}: its {split} holds test days {leaked}")


def _copy_rows(files: Sequence[str], target: Path, fmt: str, keep: Callable) -> int:
    """The rows of `files` for which `keep(table) -> [N] bool` holds, into a new table at
    `target` (Delta or Parquet, as the source), one file per source file; rows kept."""
    import pyarrow.parquet as pq

    target.mkdir(parents=True, exist_ok=True)
    kept = 0
    for i, path in enumerate(files):
        table = pq.read_table(path)
        table = table.filter(keep(table))
        kept += table.num_rows
        if fmt == "delta":
            from deltalake import write_deltalake

            write_deltalake(str(target), table, mode="append")
        else:
            pq.write_table(table, target / f"part-{i:05d}.parquet")
    if fmt == "delta" and not files:
        raise ValueError(f"no source files for {target}")
    return kept


def tuning_view(lake_root: Path | str, run_id: str, fraction: float = 1.0, seed: int = 0,
                train_days: int | None = None) -> str:
    """The run id of the tuning view of training set `run_id` (built once, reused while
    its source is unchanged): train rows of the sampled users (and last `train_days` train
    days), validation rows of the validation days, candidates of the train and validation
    days, and no test day anywhere. Safe against concurrent builders (built aside, then
    renamed into place)."""
    from training.reader import TrainingSet

    if not 0 < fraction <= 1:
        raise ValueError(f"--sample-users must be in (0, 1], got {fraction}")
    lake_root = Path(lake_root)
    source = TrainingSet(lake_root, run_id)
    m = source.manifest
    if not m.validation_days:
        raise ValueError(f"training set {run_id!r} has no validation days: tuning chooses on "
                         f"them; rebuild it with jobs.training_set --validation-days 1")
    if train_days is not None and not 1 <= train_days <= len(m.train_days):
        raise ValueError(f"--sample-train-days must be in [1, {len(m.train_days)}], "
                         f"got {train_days}")
    name = view_id(run_id, fraction, seed, train_days)
    days = m.train_days[-train_days:] if train_days else list(m.train_days)
    wanted = {"source": run_id, "source_manifest": _sha(m.model_dump_json()),
              "users_fraction": fraction, "seed": seed, "train_days": days}
    folder = lake_root / TRAINING_SETS / name
    info = folder / VIEW_INFO
    if info.is_file() and (folder / "manifest.json").is_file():
        recorded = json.loads(info.read_text())
        if all(recorded.get(k) == v for k, v in wanted.items()):
            return name
        shutil.rmtree(folder)  # built from an older source set: rebuild
    staging = lake_root / TRAINING_SETS / f".{name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    base = f"{TRAINING_SETS}/{name}"
    day_set, fit_days = set(days), set(days) | set(m.validation_days)

    def train_keep(table):
        users = table.column("user_id").to_numpy(zero_copy_only=False)
        in_days = np.isin(np.asarray(table.column("dt").to_pylist(), dtype=object),
                          list(day_set))
        return user_sample(users, fraction, seed) & in_days

    def days_keep(kept_days):
        return lambda table: np.isin(np.asarray(table.column("dt").to_pylist(), dtype=object),
                                     list(kept_days))

    started = time.perf_counter()
    if fraction >= 1 and not train_days:
        train_table, train_rows = m.tables.train, m.counts.train.rows  # the source's own
    else:
        train_rows = _copy_rows(source.files("train"), staging / "train", m.format,
                                train_keep)
        train_table = f"{base}/train"
    validation_rows = _copy_rows(source.files("validation"), staging / "validation", m.format,
                                 days_keep(m.validation_days))
    candidates = _copy_rows(source.files("candidates"), staging / "candidates", m.format,
                            days_keep(fit_days))
    view = TrainingSetManifest.model_validate({
        **m.model_dump(), "run_id": name, "train_days": days, "holdout_days": [],
        "empty_days": [d for d in m.empty_days if d in fit_days],
        "tables": {"train": train_table, "validation": f"{base}/validation",
                   "candidates": f"{base}/candidates"},
        "counts": {"train": {"rows": train_rows, "positive_rate": None},
                   "validation": {"rows": validation_rows, "positive_rate": None},
                   "candidates": candidates}})
    atomic_write_json(staging / VIEW_INFO, {**wanted, "train_rows": train_rows,
                                            "source_train_rows": m.counts.train.rows,
                                            "build_s": time.perf_counter() - started})
    atomic_write_text(staging / "manifest.json", view.model_dump_json(indent=2))
    try:
        staging.rename(folder)
    except OSError:  # another process put it in place first
        shutil.rmtree(staging, ignore_errors=True)
    check_no_test_days(lake_root, name, m.holdout_days)
    return name


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- trials -----------------------------------------------------------------------------

@dataclass
class Context:
    """What every trial of a study shares."""

    lake_root: Path
    run_id: str  # the full training set (only --final reads it)
    view: str  # the tuning view the trials read
    model: str
    out: Path
    epochs: int
    fixed: dict = field(default_factory=dict)  # settings every trial takes (batch size...)
    seed: int = 0
    keep_trials: bool = False
    cache: dict = field(default_factory=dict)


def _tidy(out: Path, keep: bool) -> None:
    if not keep:
        for name in ("checkpoints", "export", "tensorboard"):
            shutil.rmtree(out / name, ignore_errors=True)


def _release_memory() -> None:
    import keras

    keras.backend.clear_session()
    gc.collect()


def trial_value(summary: Mapping[str, Any]) -> float | None:
    """A two-tower run's value: its best validation metric, or the kept weight average's."""
    values = [summary.get(f"best_{MONITOR}")]
    swa = summary.get("swa") or {}
    if swa.get("kept"):
        values.append(swa.get(MONITOR))
    values = [v for v in values if v is not None]
    return max(values) if values else None


def two_tower_objective(ctx: Context) -> Callable:
    import optuna

    def objective(trial) -> float:
        params = suggest(trial, "two_tower")
        settings = {**ctx.fixed, **to_settings(params), "epochs": ctx.epochs}
        out = ctx.out / "trials" / f"{trial.number:04d}"
        shutil.rmtree(out, ignore_errors=True)  # never resume another study's checkpoints
        started = time.perf_counter()
        seconds: list[float] = []

        def on_epoch(epoch: int, entry: dict) -> None:
            seconds.append(time.perf_counter() - started)
            trial.set_user_attr("epochs_run", epoch)
            trial.set_user_attr("seconds", seconds[-1])
            trial.set_user_attr("epoch_seconds", seconds)
            value = entry.get(MONITOR)
            if value is None:
                return
            trial.report(float(value), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch}")

        try:
            summary = _train(ctx.lake_root, ctx.view, out, on_epoch, settings)
        finally:  # a pruned trial's time counts its tidying too
            _tidy(out, ctx.keep_trials)
            _release_memory()
            trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("epochs_run", summary.get("epochs_run"))
        trial.set_user_attr("best_epoch", summary.get("best_epoch"))
        trial.set_user_attr("stopped_early", summary.get("stopped_early"))
        value = trial_value(summary)
        if value is None:
            raise ValueError(f"trial {trial.number} gave no {MONITOR}")
        return value

    return objective


def _train(lake_root: Path, run_id: str, out: Path, on_epoch: Callable | None,
           settings: Mapping[str, Any]) -> dict:
    from training.train import train_run

    return train_run(lake_root, run_id, out, model_name="two_tower", on_epoch=on_epoch,
                     **settings)


def baseline_scorer(model_name: str, lake_root: Path, fmt: str, params: Mapping[str, Any],
                    seed: int = 0):
    """The als / item_cf scorer with `params` over its default settings."""
    if model_name == "als":
        from training.models.als import ALSScorer, ALSSettings

        return ALSScorer(lake_root, fmt, ALSSettings(**params), seed)
    if model_name == "item_cf":
        from training.models.item_cf import ItemCFScorer, ItemCFSettings

        return ItemCFScorer(lake_root, fmt, ItemCFSettings(**params))
    raise ValueError(f"no tunable baseline {model_name!r}; choose one of {TUNABLE}")


def validation_metrics(data, scorer, days: Sequence[str] | None = None,
                       held: list | None = None) -> dict:
    """Pooled metrics of `scorer` over `days` of `data` (default: its validation days)."""
    from training.evaluate import EvalSettings, Rows, held_out_days, score_day, summarise

    if held is None:
        held = held_out_days(data, EvalSettings(), list(days or data.manifest.validation_days))
    users = (np.concatenate([d.users["user_id"][d.pool] for d in held]) if held
             else np.array([]))
    rows = Rows.concat([score_day("model", scorer, d) for d in held])
    return {k: v for k, v in summarise(rows, users).items() if k != "slices"}


def baseline_objective(ctx: Context) -> Callable:
    from training.evaluate import EvalSettings, held_out_days
    from training.reader import TrainingSet

    data = TrainingSet(ctx.lake_root, ctx.view)
    held = held_out_days(data, EvalSettings(), list(data.manifest.validation_days))

    def objective(trial) -> float:
        params = suggest(trial, ctx.model)
        started = time.perf_counter()
        scorer = baseline_scorer(ctx.model, ctx.lake_root, data.manifest.format,
                                 {**ctx.fixed, **to_settings(params)}, ctx.seed)
        value = validation_metrics(data, scorer, held=held).get("recall@50")
        trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("epochs_run", 1)
        if value is None:
            raise ValueError(f"trial {trial.number} gave no recall@50")
        trial.report(float(value), 1)
        return float(value)

    return objective


# --- the study --------------------------------------------------------------------------

def make_pruner(name: str, epochs: int):
    import optuna

    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1),
                                              reduction_factor=3)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"unknown pruner {name!r}; choose one of {PRUNERS}")


def open_study(storage: str, name: str, seed: int = 0, worker: int = 0,
               pruner: str = "hyperband", epochs: int = 4, startup_trials: int = 6):
    """The study `name` of `storage` (created, or loaded to resume), maximising."""
    import optuna

    engine = {"connect_args": {"timeout": 120}} if storage.startswith("sqlite") else None
    with warnings.catch_warnings():  # heartbeats and multivariate TPE are "experimental"
        warnings.simplefilter("ignore")
        # a trial whose process died (no heartbeat for grace_period s) is failed, retried once
        rdb = optuna.storages.RDBStorage(
            storage, engine_kwargs=engine, heartbeat_interval=30, grace_period=120,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1))
        sampler = optuna.samplers.TPESampler(seed=seed * 1000 + worker,
                                             n_startup_trials=startup_trials,
                                             multivariate=True, constant_liar=True)
    return optuna.create_study(storage=rdb, study_name=name, direction="maximize",
                               sampler=sampler, pruner=make_pruner(pruner, epochs),
                               load_if_exists=True)


def _finished(study) -> int:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


class Progress:
    """One line per finished trial."""

    def __init__(self, print_fn: Callable[[str], None] = print) -> None:
        self.started = time.perf_counter()
        self.print = print_fn

    def __call__(self, study, trial) -> None:
        value = trial.value
        if value is None and trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        try:
            best = f"best {study.best_value:.4f} (#{study.best_trial.number})"
        except ValueError:
            best = "best -"
        seconds = trial.user_attrs.get("seconds")
        self.print(f"trial {trial.number:3d} {trial.state.name.lower():8s} "
                   f"value {'-' if value is None else f'{value:.4f}'} "
                   f"epochs {trial.user_attrs.get('epochs_run', '-')} "
                   f"trial {'-' if seconds is None else f'{seconds:.1f}'}s "
                   f"elapsed {time.perf_counter() - self.started:.1f}s {best}")


class FailureLimit:
    """Stops the study after `limit` failed trials in a row: failed trials do not count
    towards `--trials`, so a search whose every trial fails (no validation metric, a setting
    that diverges) would otherwise never end."""

    def __init__(self, limit: int = 3) -> None:
        self.limit, self.in_a_row = limit, 0

    def __call__(self, study, trial) -> None:
        import optuna

        failed = trial.state == optuna.trial.TrialState.FAIL
        self.in_a_row = self.in_a_row + 1 if failed else 0
        if self.in_a_row >= self.limit:
            study.stop()


def study_record(ctx: Context, days: Mapping[str, list], sample: Mapping[str, Any],
                 search: Mapping[str, Any]) -> dict:
    return {"run_id": ctx.run_id, "view": ctx.view, "model": ctx.model, "days": dict(days),
            "sample": dict(sample), "epochs": ctx.epochs, "fixed": ctx.fixed,
            "search_space": dict(search)}


def _check_same(study, record: Mapping[str, Any]) -> None:
    """A resumed study must be the same search: run, model, days, sample, space."""
    old = study.user_attrs.get("tuning")
    if old is None:
        study.set_user_attr("tuning", json.loads(json.dumps(record, default=str)))
        return
    new = json.loads(json.dumps(record, default=str))
    differ = [k for k in ("run_id", "model", "days", "sample", "search_space", "epochs",
                          "fixed") if old.get(k) != new.get(k)]
    if differ:
        raise ValueError(f"study {study.study_name!r} was started with other {differ}; "
                         f"name a new --study or --storage")


def run_study(lake_root: Path | str, run_id: str, study_name: str, trials: int,
              storage: str | None = None, out: Path | str | None = None,
              model_name: str = "two_tower", timeout: float | None = None,
              sample_users: float = 1.0, sample_seed: int = 0,
              sample_train_days: int | None = None, epochs: int = 4,
              pruner: str = "hyperband", fixed: Mapping[str, Any] | None = None,
              seed: int = 0, worker: int = 0, startup_trials: int = 6,
              keep_trials: bool = False, print_fn: Callable[[str], None] = print) -> dict:
    """Run trials of study `study_name` until it has `trials` finished ones (complete or
    pruned, across every process) or `timeout` seconds pass; writes and returns the
    study's summary (`study.json`)."""
    import optuna

    from training.reader import TrainingSet

    if model_name not in TUNABLE:
        raise ValueError(f"cannot tune {model_name!r}; choose one of {TUNABLE}")
    lake_root = Path(lake_root)
    full = TrainingSet(lake_root, run_id).manifest
    out = Path(out) if out else _default_out(run_id, study_name)
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or f"sqlite:///{(out / 'study.db').resolve()}"
    started = time.perf_counter()
    view = tuning_view(lake_root, run_id, sample_users, sample_seed, sample_train_days)
    check_no_test_days(lake_root, view, full.holdout_days)  # trials never see a test day
    view_build_s = time.perf_counter() - started
    vm = TrainingSet(lake_root, view).manifest
    ctx = Context(lake_root, run_id, view, model_name, out, epochs, dict(fixed or {}), seed,
                  keep_trials)
    days = {"train": list(full.train_days), "validation": list(full.validation_days),
            "test": list(full.holdout_days), "tuning_train": list(vm.train_days)}
    sample = {"users_fraction": sample_users, "seed": sample_seed,
              "train_days": sample_train_days, "train_rows": vm.counts.train.rows,
              "full_train_rows": full.counts.train.rows}
    record = study_record(ctx, days, sample, space_record(model_name))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(storage, study_name, seed, worker, pruner, epochs, startup_trials)
    _check_same(study, record)
    left = trials - _finished(study)
    print_fn(f"study {study_name}: {model_name} on {view} ({sample['train_rows']:,} of "
             f"{sample['full_train_rows']:,} train rows), validation days "
             f"{days['validation']}, test days {days['test']} unseen; "
             f"{_finished(study)} trials done, {max(left, 0)} to run")
    if left > 0:
        objective = (two_tower_objective(ctx) if model_name == "two_tower"
                     else baseline_objective(ctx))
        stop = optuna.study.MaxTrialsCallback(
            trials, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
        study.optimize(objective, timeout=timeout,
                       callbacks=[Progress(print_fn), stop, FailureLimit()],
                       catch=(ValueError, FloatingPointError, ArithmeticError))
    summary = summarise_study(study, record, storage, wall_s=time.perf_counter() - started,
                              view_build_s=view_build_s)
    summary["pruner"], summary["worker"] = pruner, worker
    previous = _read_json(out / "study.json")
    if previous.get("final") and previous["final"].get("trial") == (summary["best"] or {}).get(
            "number"):
        summary["final"] = previous["final"]
    atomic_write_json(out / "study.json", summary)
    if summary["best"] and model_name == "two_tower":  # training.train --config takes it
        atomic_write_json(out / BEST_SETTINGS, summary["best"]["settings"])
    return summary


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _default_out(run_id: str, study_name: str) -> Path:
    from features.settings import load_settings

    return load_settings().runs_root / run_id / "tune" / study_name


def summarise_study(study, record: Mapping[str, Any], storage: str, wall_s: float,
                    view_build_s: float | None = None) -> dict:
    """The study as JSON: its record, every trial (params, value, learning curve, timings),
    the best trial and its full settings, history and importances (plot data), and cost
    figures (trials per hour, the time pruning and early stopping saved)."""
    import optuna

    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    rows = [{"number": t.number, "state": t.state.name.lower(), "value": t.value,
             "params": t.params, "epochs_run": t.user_attrs.get("epochs_run"),
             "best_epoch": t.user_attrs.get("best_epoch"),
             "seconds": t.user_attrs.get("seconds"),
             "started": t.datetime_start.isoformat() if t.datetime_start else None,
             "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())}}
            for t in trials]
    complete = [t for t in trials if t.state == state.COMPLETE]
    pruned = [t for t in trials if t.state == state.PRUNED]
    best = max(complete, key=lambda t: t.value) if complete else None
    history, best_so_far = [], None
    for t in sorted(complete + pruned, key=lambda t: t.datetime_complete or t.datetime_start):
        if t.state == state.COMPLETE:
            best_so_far = t.value if best_so_far is None else max(best_so_far, t.value)
        history.append({"number": t.number, "state": t.state.name.lower(), "value": t.value,
                        "best_so_far": best_so_far})
    importances, note = None, None
    if len(complete) >= 3:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importances = dict(optuna.importance.get_param_importances(study))
        except (ValueError, RuntimeError) as error:
            note = f"importances: {error}"
    else:
        note = "importances need at least 3 complete trials"
    model_name = record["model"]
    return {"study": study.study_name, "storage": storage, **record,
            "best": None if best is None else {
                "number": best.number, "value": best.value, "params": best.params,
                "settings": {**record["fixed"], **to_settings(best.params)},
                "epochs_run": best.user_attrs.get("epochs_run"),
                "best_epoch": best.user_attrs.get("best_epoch")},
            "trials": rows, "history": history, "importances": importances,
            **({"note": note} if note else {}),
            "timings": cost_figures(complete, pruned, len(trials), wall_s, record["epochs"],
                                    view_build_s, model_name)}


def cost_figures(complete: list, pruned: list, total: int, wall_s: float, epochs: int,
                 view_build_s: float | None, model_name: str) -> dict:
    """Trials per hour (this call's wall time; the trials' own seconds summed too), and
    the seconds pruning and early stopping saved: a pruned trial would have run as many
    epochs as the completed trials did on average, an early-stopped one all `epochs`, each
    at its own seconds per epoch."""
    def secs(t):
        return t.user_attrs.get("seconds") or 0.0

    def per_epoch(t):
        return secs(t) / max(t.user_attrs.get("epochs_run") or 1, 1)

    finished = complete + pruned
    trial_s = sum(secs(t) for t in finished)
    starts = [t.datetime_start for t in finished if t.datetime_start]
    ends = [t.datetime_complete for t in finished if t.datetime_complete]
    span_s = (max(ends) - min(starts)).total_seconds() if starts and ends else None
    mean_epochs = (float(np.mean([t.user_attrs.get("epochs_run") or epochs for t in complete]))
                   if complete else float(epochs))
    pruning = sum(max(0.0, mean_epochs - (t.user_attrs.get("epochs_run") or 0)) * per_epoch(t)
                  for t in pruned)
    early = sum(max(0, epochs - (t.user_attrs.get("epochs_run") or epochs)) * per_epoch(t)
                for t in complete) if model_name == "two_tower" else 0.0
    return {"trials": total, "complete": len(complete), "pruned": len(pruned),
            "other": total - len(finished), "wall_s": wall_s, "study_span_s": span_s,
            "trial_s": trial_s, "view_build_s": view_build_s,
            # finished trials per hour of the study's span (every process together)
            "trials_per_hour": 3600 * len(finished) / span_s if span_s else None,
            # per hour of one process's trial time (the sequential rate)
            "trials_per_trial_hour": 3600 * len(finished) / trial_s if trial_s else None,
            "mean_trial_s": trial_s / len(finished) if finished else None,
            "pruning_saved_s": pruning,
            "pruning_saved_share": pruning / (trial_s + pruning) if trial_s + pruning else None,
            "early_stopping_saved_s": early,
            "epochs_run": sum(t.user_attrs.get("epochs_run") or 0 for t in finished)}


def manifest_record(summary: Mapping[str, Any]) -> dict:
    """What a published manifest carries of a study: its name, model, days, sample, best
    trial and settings, its value on the validation days, and the final run's test figures."""
    best = summary.get("best") or {}
    final = summary.get("final") or {}
    return {"study": summary.get("study"), "model": summary.get("model"),
            "run_id": summary.get("run_id"), "days": summary.get("days"),
            "sample": summary.get("sample"), "trials": summary.get("timings", {}).get("trials"),
            "best_trial": best.get("number"), "best_value": best.get("value"),
            "monitor": MONITOR, "settings": best.get("settings"),
            "final": {k: final.get(k) for k in ("out", "validation", "test")} if final else None}


# --- a study before training (the training DAG's `tune_trials`) ---------------------------

class StudySettings(BaseModel):
    """How a study run before training searches (the training DAG's param `tune`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(4, ge=1, le=1000)  # most epochs per trial
    sample_users: float = Field(1.0, gt=0, le=1)
    sample_seed: int = 0
    sample_train_days: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, gt=0)  # stop starting trials after this many seconds
    pruner: str = "hyperband"
    startup_trials: int = Field(6, ge=0)
    seed: int = 0


def tuned_overrides(lake_root: Path | str, run_id: str, out: Path | str, trials: int,
                    overrides: Mapping[str, Any], settings: StudySettings,
                    model_name: str = "two_tower",
                    print_fn: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) a study of `trials` finished trials on training set `run_id`'s
    validation days (every trial takes `overrides` as fixed settings), in `out`; the
    training settings of its best trial (`overrides` included) for the final training.
    For `fusion` the study tunes its two-tower component: the best trial's loop settings
    become the fusion's, its model settings the component's `two_tower_settings`."""
    if model_name == "fusion":
        return _tuned_fusion(lake_root, run_id, out, trials, overrides, settings, print_fn)
    if model_name != "two_tower":
        raise ValueError(f"a study before training tunes the two_tower model (or fusion's "
                         f"two-tower component), not {model_name!r}")
    summary = run_study(lake_root, run_id, "study", trials, out=out, model_name=model_name,
                        timeout=settings.timeout, sample_users=settings.sample_users,
                        sample_seed=settings.sample_seed,
                        sample_train_days=settings.sample_train_days, epochs=settings.epochs,
                        pruner=settings.pruner, fixed=overrides, seed=settings.seed,
                        startup_trials=settings.startup_trials, print_fn=print_fn)
    if not summary["best"]:
        raise ValueError(f"study of {run_id}: no trial completed, nothing to train with "
                         f"({summary['timings']})")
    return {**overrides, **summary["best"]["settings"]}


def _tuned_fusion(lake_root: Path | str, run_id: str, out: Path | str, trials: int,
                  overrides: Mapping[str, Any], settings: StudySettings,
                  print_fn: Callable[[str], None]) -> dict[str, Any]:
    from training.config import LoopConfig
    from training.models.fusion import FusionConfig

    field, inner = FusionConfig.nested_settings
    component = set(LoopConfig.model_fields) | set(inner.model_fields)
    fixed = {**{k: v for k, v in overrides.items() if k in component},
             **dict(overrides.get(field) or {})}
    best = tuned_overrides(lake_root, run_id, out, trials, fixed, settings, "two_tower",
                           print_fn)
    # flat: the fusion's split_settings routes the two-tower names into its component
    return {**{k: v for k, v in overrides.items() if k not in component | {field}}, **best}


# --- the final run: the best configuration on the full range, judged on the test days -----

def final_run(lake_root: Path | str, run_id: str, out: Path | str, landing: Path | None = None,
              epochs: int | None = None, print_fn: Callable[[str], None] = print) -> dict:
    """Retrain (two-tower) or rebuild (baseline) the study's best configuration on the full
    training set `run_id`, evaluate it on the test days beside every baseline, and add the
    figures to `study.json` as `final`."""
    from training.evaluate import baseline_scorers, evaluate_model, evaluate_scorer
    from training.reader import TrainingSet

    out = Path(out)
    summary = _read_json(out / "study.json")
    if not summary.get("best"):
        raise ValueError(f"no complete trial in {out / 'study.json'}: nothing to retrain")
    if summary["run_id"] != run_id:
        raise ValueError(f"the study tuned {summary['run_id']!r}, not {run_id!r}")
    best, model_name = summary["best"], summary["model"]
    data = TrainingSet(lake_root, run_id)
    final_dir = out / "final"
    started = time.perf_counter()
    if model_name == "two_tower":
        shutil.rmtree(final_dir, ignore_errors=True)
        settings = {**to_settings(best["settings"]), "epochs": epochs or summary["epochs"]}
        trained = _train(Path(lake_root), run_id, final_dir, None, settings)
        train_s = time.perf_counter() - started
        metrics = evaluate_model(data, "two_tower", final_dir / "export", landing, final_dir)
        validation = {MONITOR: trial_value(trained), "best_epoch": trained.get("best_epoch"),
                      "epochs_run": trained.get("epochs_run")}
    else:
        final_dir.mkdir(parents=True, exist_ok=True)
        scorer = baseline_scorer(model_name, data.lake_root, data.manifest.format,
                                 to_settings(best["settings"]))
        train_s = 0.0
        others = baseline_scorers(data, landing)
        metrics = evaluate_scorer(data, scorer, f"{model_name} (tuned)", out=final_dir,
                                  baselines=others)
        default_val = validation_metrics(data, others[model_name]).get("recall@50")
        validation = {MONITOR: validation_metrics(data, scorer).get("recall@50"),
                      f"default_{MONITOR}": default_val}
    test = {"recall@50": metrics["model"].get("recall@50"),
            "ndcg@10": metrics["model"].get("ndcg@10"),
            "baselines": {k: v.get("recall@50") for k, v in metrics["baselines"].items()}}
    record = {"trial": best["number"], "out": str(final_dir), "train_s": train_s,
              "seconds": time.perf_counter() - started, "validation": validation,
              "test_days": list(data.manifest.holdout_days), "test": test}
    summary["final"] = record
    atomic_write_json(out / "study.json", summary)
    print_fn(f"final: trial {best['number']} retrained on {run_id} "
             f"({len(data.manifest.train_days)} train days) in {train_s:.0f}s: validation "
             f"{MONITOR} {_fmt(validation[MONITOR])}, test recall@50 "
             f"{_fmt(test['recall@50'])} (best baseline "
             f"{_best_baseline(test['baselines'])})")
    return record


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}"


def _best_baseline(baselines: Mapping[str, float | None]) -> str:
    ranked = [(v, k) for k, v in baselines.items()
              if v is not None and "oracle" not in k and k != "random"]
    if not ranked:
        return "-"
    value, name = max(ranked)
    return f"{name} {value:.4f}"


# --- how far the subsample's ranking of configurations agrees with the full data's ------

def sample_configs(model_name: str, k: int, seed: int = 0) -> list[dict]:
    """`k` configurations drawn at random (seeded) from the search space."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    draws = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed),
                                direction="maximize")
    configs = []
    for _ in range(k):
        trial = draws.ask()
        configs.append(suggest(trial, model_name))
        draws.tell(trial, 0.0)
    return configs


def rank_agreement(lake_root: Path | str, run_id: str, configs: Sequence[Mapping[str, Any]],
                   fraction: float, out: Path | str, sample_seed: int = 0, epochs: int = 4,
                   fixed: Mapping[str, Any] | None = None,
                   print_fn: Callable[[str], None] = print) -> dict:
    """Train each two-tower configuration on the user sample and on every user (no pruning,
    the same epochs and early stopping); the Spearman correlation of their validation
    values, and the seconds each took (what subsampling saves)."""
    from scipy.stats import spearmanr

    lake_root, out = Path(lake_root), Path(out)
    views = {"sample": tuning_view(lake_root, run_id, fraction, sample_seed),
             "full": tuning_view(lake_root, run_id, 1.0, sample_seed)}
    rows = []
    for i, config in enumerate(configs):
        row = {"params": dict(config)}
        for kind, view in views.items():
            folder = out / "agreement" / f"{i:02d}-{kind}"
            shutil.rmtree(folder, ignore_errors=True)
            started = time.perf_counter()
            summary = _train(lake_root, view, folder, None,
                             {**(fixed or {}), **to_settings(config), "epochs": epochs})
            _tidy(folder, False)
            _release_memory()
            row[kind] = {"value": trial_value(summary), "seconds": time.perf_counter() - started,
                         "epochs_run": summary.get("epochs_run")}
        rows.append(row)
        print_fn(f"config {i}: sample {_fmt(row['sample']['value'])} in "
                 f"{row['sample']['seconds']:.0f}s, full {_fmt(row['full']['value'])} in "
                 f"{row['full']['seconds']:.0f}s")
    sample = [r["sample"]["value"] for r in rows]
    full = [r["full"]["value"] for r in rows]
    rho = spearmanr(sample, full).statistic if len(rows) >= 3 else None
    sample_s = sum(r["sample"]["seconds"] for r in rows)
    full_s = sum(r["full"]["seconds"] for r in rows)
    result = {"fraction": fraction, "configs": rows,
              "spearman": None if rho is None or math.isnan(rho) else float(rho),
              "sample_s": sample_s, "full_s": full_s,
              "subsample_saved_share": 1 - sample_s / full_s if full_s else None,
              "best_agrees": bool(rows) and int(np.argmax(sample)) == int(np.argmax(full))}
    atomic_write_json(out / "agreement.json", result)
    return result


# --- the command line -------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    from features.settings import load_settings
    from training.cli import run_parser

    parser = run_parser("Tune a model's settings on the validation days of a training set "
                        "(Optuna).")
    parser.add_argument("--study", required=True, help="study name (resumed when it exists)")
    parser.add_argument("--trials", type=int, default=20,
                        help="finished trials the study should have, all processes together")
    parser.add_argument("--timeout", type=float, help="stop starting trials after S seconds")
    parser.add_argument("--storage", help="RDB URL (default: sqlite:///<out>/study.db)")
    parser.add_argument("--out", help="study folder (default: <runs_root>/<run>/tune/<study>)")
    parser.add_argument("--model", default="two_tower", choices=TUNABLE)
    parser.add_argument("--sample-users", type=float, default=1.0,
                        help="fraction of users whose train rows trials read (seeded hash)")
    parser.add_argument("--sample-seed", type=int, default=0)
    parser.add_argument("--sample-train-days", type=int,
                        help="trials read only the last K train days")
    parser.add_argument("--epochs", type=int, default=4, help="most epochs per trial")
    parser.add_argument("--pruner", default="hyperband", choices=PRUNERS)
    parser.add_argument("--startup-trials", type=int, default=6,
                        help="random trials before TPE models the space")
    parser.add_argument("--fixed", help="JSON settings every trial takes, e.g. "
                                        "'{\"batch_size\": 512}'")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument("--worker", type=int, default=0,
                        help="this process's index when several run one study")
    parser.add_argument("--keep-trials", action="store_true",
                        help="keep each trial's checkpoints and export")
    parser.add_argument("--final", action="store_true",
                        help="then retrain the best configuration on the full training range "
                             "and evaluate it on the test days")
    parser.add_argument("--final-epochs", type=int, help="epochs of the final run")
    parser.add_argument("--landing", help="landing root, for the oracle in --final")
    parser.add_argument("--agreement", type=int, default=0, metavar="K",
                        help="then train K random configurations on the sample and on all "
                             "users; Spearman of their validation values")
    parser.add_argument("--verbose", action="store_true", help="the trainer's INFO lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level="INFO" if args.verbose else "WARNING",
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        lake = load_settings(lake_root=args.lake).lake_root
        fixed = json.loads(args.fixed) if args.fixed else {}
        if not isinstance(fixed, dict):
            raise ValueError("--fixed must be a JSON object")
        out = Path(args.out) if args.out else _default_out(args.run_id, args.study)
        summary = run_study(lake, args.run_id, args.study, args.trials, args.storage, out,
                            args.model, args.timeout, args.sample_users, args.sample_seed,
                            args.sample_train_days, args.epochs, args.pruner, fixed,
                            args.seed, args.worker, args.startup_trials, args.keep_trials)
        t = summary["timings"]
        print(f"study {summary['study']}: {t['complete']} complete, {t['pruned']} pruned, "
              f"{t['other']} failed or running; {_fmt(t['trials_per_hour'])} trials/hour; pruning "
              f"saved {t['pruning_saved_s']:.0f}s; best "
              f"{_fmt((summary['best'] or {}).get('value'))} -> {out / 'study.json'}")
        if args.final:
            final_run(lake, args.run_id, out, Path(args.landing) if args.landing else None,
                      args.final_epochs)
        if args.agreement:
            if args.model != "two_tower":
                raise ValueError("--agreement measures two-tower trials on the sample")
            result = rank_agreement(lake, args.run_id,
                                    sample_configs(args.model, args.agreement, args.seed),
                                    args.sample_users, out, args.sample_seed, args.epochs,
                                    fixed)
            print(f"agreement over {args.agreement} configurations: Spearman "
                  f"{_fmt(result['spearman'])}, subsample saved "
                  f"{_fmt(result['subsample_saved_share'])} of the time")
    except (FileNotFoundError, ValueError) as error:
        print(f"tune: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
