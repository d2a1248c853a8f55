"""Tuning: the search space, the user sample, the tuning view without test days, studies
that prune, resume and summarise, the final retrain on the full range, baselines' studies."""

from __future__ import annotations

import json

import numpy as np
import optuna
import pyarrow.parquet as pq
import pytest

from training import tune
from training.config import read_settings_file, split_settings
from training.models.als import ALSSettings
from training.models.fusion import FusionConfig
from training.models.item_cf import ItemCFSettings
from training.models.two_tower.config import TwoTowerConfig
from training.reader import TrainingSet

TINY = {"batch_size": 64, "log_every": 1000}  # every trial of the tiny set takes these


def _dts(data: TrainingSet, split: str) -> set[str]:
    return {d for f in data.files(split) for d in pq.read_table(f, columns=["dt"])
            .column("dt").to_pylist()}


@pytest.mark.unit
def test_user_sample_is_seeded_nested_and_near_its_fraction():
    users = np.arange(20_000, dtype=np.int64)
    half = tune.user_sample(users, 0.5, seed=3)
    assert abs(half.mean() - 0.5) < 0.02
    np.testing.assert_array_equal(half, tune.user_sample(users, 0.5, seed=3))  # reproducible
    assert (half != tune.user_sample(users, 0.5, seed=4)).mean() > 0.3  # the seed matters
    fifth = tune.user_sample(users, 0.2, seed=3)
    assert abs(fifth.mean() - 0.2) < 0.02 and not (fifth & ~half).any()  # nested samples
    assert tune.user_sample(users, 1.0, seed=3).all()
    big = np.array([0, 2**53 - 1], dtype=np.int64)  # the whole id range hashes
    assert tune.user_sample(big, 0.5, 0).dtype == bool


@pytest.mark.unit
@pytest.mark.parametrize("name", tune.TUNABLE)
def test_every_point_of_the_search_space_is_a_valid_setting(name):
    for params in tune.sample_configs(name, 8, seed=1):
        assert set(params) == set(tune.SEARCH_SPACES[name])
        settings = tune.to_settings(params)
        if name == "two_tower":
            loop, model = split_settings(settings, TwoTowerConfig)
            assert isinstance(model.hidden_units, tuple) and 3e-4 <= loop.learning_rate <= 1e-2
        else:
            (ALSSettings if name == "als" else ItemCFSettings)(**settings)
    assert json.dumps(tune.space_record("two_tower"))  # recorded in the study as JSON


def _trial(number, state, value, epochs, seconds, intermediate=None):
    return optuna.trial.create_trial(
        state=state, value=value, params={"x": float(number)},
        distributions={"x": optuna.distributions.FloatDistribution(0, 10)},
        user_attrs={"epochs_run": epochs, "seconds": seconds},
        intermediate_values=intermediate or {e: 0.1 * e for e in range(1, epochs + 1)})


@pytest.mark.unit
def test_the_summary_has_history_costs_best_settings_and_a_manifest_record():
    state = optuna.trial.TrialState
    study = optuna.create_study(direction="maximize")
    study.add_trials([_trial(0, state.COMPLETE, 0.5, 4, 40.0),
                      _trial(1, state.PRUNED, None, 1, 10.0),
                      _trial(2, state.COMPLETE, 0.7, 2, 20.0)])
    record = {"run_id": "r", "view": "r.tune", "model": "two_tower", "epochs": 4,
              "days": {"train": ["a"], "validation": ["b"], "test": ["c"]},
              "sample": {"users_fraction": 0.5}, "fixed": {"batch_size": 64},
              "search_space": {}}
    summary = tune.summarise_study(study, record, "sqlite://", wall_s=80.0)
    assert summary["best"]["number"] == 2 and summary["best"]["settings"]["batch_size"] == 64
    assert [h["best_so_far"] for h in summary["history"]] == [0.5, 0.5, 0.7]
    t = summary["timings"]
    assert (t["complete"], t["pruned"], t["trial_s"]) == (2, 1, 70.0)
    # the pruned trial would have run the completed trials' mean of 3 epochs at 10 s each
    assert t["pruning_saved_s"] == pytest.approx(20.0)
    assert t["early_stopping_saved_s"] == pytest.approx(20.0)  # trial 2: 2 epochs short
    assert summary["trials"][1]["intermediate"] == {"1": 0.1}
    assert summary["importances"] is None and "3 complete" in summary["note"]
    carried = tune.manifest_record(summary)
    assert carried["best_value"] == 0.7 and carried["days"]["test"] == ["c"]
    assert json.dumps(carried)


@pytest.mark.unit
def test_a_study_is_not_resumed_as_another_search():
    study = optuna.create_study(direction="maximize")
    record = {"run_id": "r", "model": "two_tower", "days": {}, "sample": {}, "epochs": 2,
              "fixed": {}, "search_space": {}}
    tune._check_same(study, record)
    tune._check_same(study, dict(record))
    with pytest.raises(ValueError, match="other \\['run_id'\\]"):
        tune._check_same(study, {**record, "run_id": "other"})


@pytest.mark.engine
def test_the_tuning_view_samples_users_and_holds_no_test_day(tiny_training_set):
    lake, run_id = tiny_training_set["lake"], tiny_training_set["run_id"]
    source = TrainingSet(lake, run_id)
    test_days = source.manifest.holdout_days
    with pytest.raises(AssertionError, match="test days"):
        tune.check_no_test_days(lake, run_id, test_days)  # the full set does hold them
    view = tune.tuning_view(lake, run_id, 0.5, seed=2)
    assert tune.tuning_view(lake, run_id, 0.5, seed=2) == view  # built once, reused
    data = TrainingSet(lake, view)
    tune.check_no_test_days(lake, view, test_days)
    assert data.manifest.holdout_days == []
    assert _dts(data, "validation") == set(source.manifest.validation_days)
    assert not _dts(data, "candidates") & set(test_days)
    full = source.read("train", ["user_id"])["user_id"]
    kept = data.read("train", ["user_id"])["user_id"]
    assert len(kept) == int(tune.user_sample(full, 0.5, 2).sum()) == data.rows("train")
    assert set(kept) == set(full[tune.user_sample(full, 0.5, 2)])
    days = tune.tuning_view(lake, run_id, 1.0, seed=2, train_days=1)
    assert TrainingSet(lake, days).manifest.train_days == source.manifest.train_days[-1:]
    assert _dts(TrainingSet(lake, days), "train") == set(source.manifest.train_days[-1:])


@pytest.mark.engine
def test_a_study_prunes_resumes_summarises_and_retrains_the_best(tiny_training_set, tmp_path,
                                                                monkeypatch):
    lake, run_id = tiny_training_set["lake"], tiny_training_set["run_id"]
    manifest = TrainingSet(lake, run_id).manifest
    out, storage = tmp_path / "study", f"sqlite:///{tmp_path / 'study.db'}"
    lines: list[str] = []
    original = tune.make_pruner
    # first process: every trial is pruned after its first epoch (below an unreachable bar)
    monkeypatch.setattr(tune, "make_pruner",
                        lambda name, epochs: optuna.pruners.ThresholdPruner(lower=2.0))
    args = dict(storage=storage, out=out, sample_users=0.5, epochs=2, fixed=TINY,
                startup_trials=1, print_fn=lines.append)
    first = tune.run_study(lake, run_id, "s", 2, **args)
    assert first["timings"]["pruned"] == 2 and first["best"] is None
    assert all(t["intermediate"].keys() == {"1"} for t in first["trials"])
    assert sum(" pruned " in line for line in lines) == 2
    # the same command later (a crash, a second process): the study goes on to 3 trials
    monkeypatch.setattr(tune, "make_pruner", original)
    second = tune.run_study(lake, run_id, "s", 3, **{**args, "worker": 1, "pruner": "none"})
    assert second["timings"]["trials"] == 3 and second["timings"]["complete"] == 1
    best = second["best"]
    assert best["number"] == 2 and 0 < best["value"] <= 1
    assert best["settings"]["batch_size"] == 64
    assert second["days"]["test"] == manifest.holdout_days
    assert second["days"]["validation"] == manifest.validation_days
    assert not set(second["days"]["test"]) & set(second["days"]["validation"])
    assert second["sample"]["train_rows"] < second["sample"]["full_train_rows"]
    assert [h["state"] for h in second["history"]] == ["pruned", "pruned", "complete"]
    assert second["timings"]["trials_per_hour"] > 0
    trial = out / "trials" / "0002"
    assert (trial / "history.json").is_file() and not (trial / "checkpoints").exists()
    assert json.loads((out / "study.json").read_text())["best"]["number"] == 2
    assert read_settings_file(out / tune.BEST_SETTINGS) == json.loads(
        json.dumps(best["settings"]))  # training.train --config takes the best settings
    with pytest.raises(ValueError, match="other"):  # not the same search: refused
        tune.run_study(lake, run_id, "s", 4, **{**args, "epochs": 3})

    final = tune.final_run(lake, run_id, out, print_fn=lines.append)
    assert final["test_days"] == manifest.holdout_days and final["trial"] == 2
    assert final["validation"][tune.MONITOR] is not None
    metrics = json.loads((out / "final" / "metrics.json").read_text())
    assert metrics["eval_days"] == manifest.holdout_days
    assert json.loads((out / "study.json").read_text())["final"]["trial"] == 2
    assert lines[-1].startswith("final: trial 2")


@pytest.mark.engine
def test_baselines_are_tuned_on_the_validation_days_from_the_command_line(tiny_training_set,
                                                                          tmp_path, capsys):
    lake, run_id = tiny_training_set["lake"], tiny_training_set["run_id"]
    out = tmp_path / "cf"
    code = tune.main(["--lake", str(lake), "--run-id", run_id, "--study", "cf",
                      "--model", "item_cf", "--trials", "2", "--out", str(out), "--final",
                      "--startup-trials", "1"])
    assert code == 0
    printed = capsys.readouterr().out
    assert sum(line.startswith("trial ") for line in printed.splitlines()) == 2
    summary = json.loads((out / "study.json").read_text())
    assert summary["model"] == "item_cf" and set(summary["best"]["params"]) == set(
        tune.SEARCH_SPACES["item_cf"])
    final = summary["final"]
    assert final["test"]["recall@50"] is not None and "item_cf" in final["test"]["baselines"]
    assert f"default_{tune.MONITOR}" in final["validation"]
    als = tune.run_study(lake, run_id, "als", 1, out=tmp_path / "als", model_name="als",
                         print_fn=lambda line: None)
    assert als["timings"]["complete"] == 1 and 0 <= als["best"]["value"] <= 1
    assert tune.main(["--lake", str(lake), "--run-id", "missing", "--study", "x",
                      "--out", str(tmp_path / "x")]) == 2


@pytest.mark.engine
def test_every_epoch_is_reported_and_the_last_epochs_can_be_averaged(tiny_training_set,
                                                                     tmp_path):
    from training.train import train_run

    seen = []
    summary = train_run(tiny_training_set["lake"], tiny_training_set["run_id"], tmp_path / "r",
                        on_epoch=lambda epoch, entry: seen.append((epoch, entry[tune.MONITOR])),
                        epochs=3, patience=0, swa_epochs=2, embedding_dim=8,
                        hidden_units=(16,), num_negatives=8, **TINY)
    assert [e for e, _ in seen] == [1, 2, 3] and all(0 <= v <= 1 for _, v in seen)
    swa = summary["swa"]
    assert swa["epochs"] == [2, 3] and isinstance(swa["kept"], bool)
    assert swa[tune.MONITOR] is not None
    best = max(v for _, v in seen)
    assert summary[f"best_{tune.MONITOR}"] == pytest.approx(best)
    assert tune.trial_value(summary) == pytest.approx(max(best, swa[tune.MONITOR])
                                                      if swa["kept"] else best)
    with pytest.raises(ValueError, match="in-process"):
        train_run(tiny_training_set["lake"], tiny_training_set["run_id"], tmp_path / "w",
                  workers=2, on_epoch=lambda epoch, entry: None)


@pytest.mark.unit
def test_a_study_whose_trials_all_fail_stops_after_three():
    def fails(trial):
        trial.suggest_float("x", 0, 1)
        raise ValueError("no val_recall@50")

    study = optuna.create_study()
    study.optimize(fails, n_trials=50, catch=(ValueError,), callbacks=[tune.FailureLimit()])
    assert len(study.trials) == 3
    limit, passes = tune.FailureLimit(2), iter([1.0, None, 0.5, None, None, 1.0])

    def sometimes(trial):
        value = next(passes)
        if value is None:
            raise ValueError("failed")
        return value

    study = optuna.create_study()
    study.optimize(sometimes, n_trials=6, catch=(ValueError,), callbacks=[limit])
    assert len(study.trials) == 5  # a success resets the count; two in a row stop it


@pytest.mark.engine
def test_steps_cut_short_inside_an_epoch_are_still_validated(tiny_training_set, tmp_path):
    from training.train import train_run

    seen = []
    summary = train_run(tiny_training_set["lake"], tiny_training_set["run_id"], tmp_path / "r",
                        on_epoch=lambda epoch, entry: seen.append(epoch), epochs=2,
                        max_steps=2, embedding_dim=8, hidden_units=(16,), num_negatives=8,
                        batch_size=16, log_every=1000)
    assert summary["steps"] == 2 < summary["steps_per_epoch"]
    assert seen == [1] and summary[f"best_{tune.MONITOR}"] is not None
    assert tune.trial_value(summary) is not None


@pytest.mark.engine
def test_a_study_before_training_gives_the_best_trials_settings(tiny_training_set, tmp_path):
    lake, run_id = tiny_training_set["lake"], tiny_training_set["run_id"]
    manifest = TrainingSet(lake, run_id).manifest
    settings = tune.StudySettings(epochs=1, startup_trials=1)
    lines: list[str] = []
    overrides = tune.tuned_overrides(lake, run_id, tmp_path / "tune", 2,
                                     {**TINY, "max_steps": 3}, settings, print_fn=lines.append)
    summary = json.loads((tmp_path / "tune" / "study.json").read_text())
    assert overrides == {**TINY, "max_steps": 3, **tune.to_settings(summary["best"]["params"])}
    assert summary["days"]["test"] == manifest.holdout_days  # recorded, never a trial's
    assert summary["days"]["validation"] == manifest.validation_days
    assert sum(line.startswith("trial ") for line in lines) == 2  # a line per trial
    # fusion: the same study (resumed, no trial left) tunes its two-tower component
    fused = tune.tuned_overrides(lake, run_id, tmp_path / "tune", 2,
                                 {**TINY, "max_steps": 3, "l2": 0.01}, settings, "fusion")
    loop, fusion = split_settings(fused, FusionConfig)
    best = summary["best"]["settings"]
    assert fusion.l2 == 0.01 and loop.learning_rate == pytest.approx(best["learning_rate"])
    component = json.loads(json.dumps(fusion.two_tower_settings))  # tuples as lists
    assert component == {k: v for k, v in best.items() if k not in type(loop).model_fields}
    assert "embedding_dim" in fusion.two_tower_settings
    with pytest.raises(ValueError, match="not 'als'"):
        tune.tuned_overrides(lake, run_id, tmp_path / "f", 1, {}, settings, "als")
    with pytest.raises(ValueError, match="StudySettings: sample_users"):
        from features.checks import config_from

        config_from(tune.StudySettings, {"sample_users": 0})
