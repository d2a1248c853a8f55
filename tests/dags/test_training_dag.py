"""The training DAG end to end through dag.test on a tiny simulated lake: a run publishes
version 1; a run whose model gate fails (it must beat the champion by more than it can)
and a run whose data gate fails (leakage injected into a profile partition) publish
nothing, and version 1 stays the newest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from features.days import add_days, days_between
from tests.dags.conftest import run_dag, simulate_landing

# whole DAG runs through Airflow (dag.test); one worker, so the module's lake and first run
# (~60 s) are built once (make test: --dist loadgroup)
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("training_dag")]

START, DAYS, WINDOW = "2026-04-01", 6, 2
END = add_days(START, DAYS - 1)
TINY = {"max_steps": 4, "batch_size": 64, "embedding_dim": 8, "hidden_units": [16],
        "num_negatives": 8, "log_every": 2}
# 4 steps do not make a good model: the floors are for the demo scale, not this test.
LENIENT = {"min_auc": 0.0, "min_recall_at_50": 0.0, "min_recall_lift": -1.0,
           "min_cold_anchor_recall_at_50": 0.0, "min_cold_anchor_lift": -1.0}
AFTER_TRAINING_SET = ["data_gate", "train", "evaluate", "model_gate", "report", "publish"]


@pytest.fixture(scope="module")
def lake(tmp_path_factory, spark):
    from jobs.lake import Lake
    from jobs.run_days import run_days

    root = tmp_path_factory.mktemp("training")
    landing = simulate_landing(root, START, DAYS, seed=11)
    lake = Lake(root / "lake", spark)
    run_days(lake, days_between(START, END), ["ingest", "daily_stats", "profiles", "labels"],
             WINDOW, allow_partial=True, landing=str(landing))
    return {"root": root, "lake": lake, "landing": landing}


def _conf(lake: dict, **changes) -> dict:
    root = lake["root"]
    return {"end": END, "days": 3, "window": WINDOW, "model": "two_tower",
            "train_overrides": TINY,
            "model_gate": LENIENT, "lake_root": str(root / "lake"),
            "landing_root": str(lake["landing"]), "models_root": str(root / "models"),
            "runs_root": str(root / "runs"), **changes}


def _run_folder(lake: dict, run) -> Path:
    from dags.common import safe_name

    return next((lake["root"] / "runs").glob(f"*__{safe_name(run.run_id)}"))


@pytest.fixture(scope="module")
def first_run(dagbag, lake):
    return run_dag(dagbag.dags["training"], None, _conf(lake))


def test_a_run_publishes_version_1(first_run, lake):
    from features.manifest import load_manifest
    from training.publish import latest_version, read_manifest

    run, states = first_run
    assert run.state == "success", states
    models = lake["root"] / "models"
    assert latest_version(models) == 1
    manifest = read_manifest(models, 1)
    training_set = load_manifest(lake["root"] / "lake", manifest["run_id"])
    assert manifest["source_versions"] == training_set.source_versions
    assert manifest["model"] == "two_tower"
    assert manifest["artifacts"] == ["anchor_tower", "user_tower"]
    assert manifest["metrics"]["eval_days"] == [END]
    assert manifest["gates"]["data_gate"]["passed"] and manifest["gates"]["model_gate"]["passed"]
    regression = [c for c in manifest["gates"]["model_gate"]["checks"]
                  if c["name"] == "non_regression"]
    assert regression[0]["status"] == "skip"  # no champion yet
    assert manifest["training_config"]["loop"]["max_steps"] == TINY["max_steps"]
    assert manifest["training_config"]["params"]["embedding_dim"] == TINY["embedding_dim"]
    assert manifest["published_at"] and manifest["airflow"]["run_id"] == run.run_id
    for tower in ("user_tower", "anchor_tower"):
        version = models / tower / "1"
        assert (version / "saved_model.pb").is_file()
        assert (version / "report.html").read_text().count("data:image/png;base64") >= 4
    assert (models / "anchor_tower" / "1" / "anchor_embeddings.parquet").is_file()


def test_a_model_worse_than_the_champion_is_not_published(dagbag, lake, first_run):
    from training.publish import latest_version

    must_beat = {**LENIENT, "max_regression": -1.0}  # better by 1.0 AUC: impossible
    run, states = run_dag(dagbag.dags["training"], None, _conf(lake, model_gate=must_beat))
    assert run.state == "failed"
    assert states["evaluate"] == "success" and states["model_gate"] == "failed"
    assert states["report"] == states["publish"] == "upstream_failed"
    assert latest_version(lake["root"] / "models") == 1
    folder = _run_folder(lake, run)
    report = json.loads((folder / "model_gate.json").read_text())
    assert not report["passed"] and report["champion_version"] == 1
    assert "non_regression[auc]" in report["failed"]
    champion = json.loads((folder / "champion" / "metrics.json").read_text())
    assert champion["eval_days"] == [END]  # the champion was scored on the same day


def test_leakage_fails_the_data_gate_before_any_training(dagbag, lake, first_run, spark):
    from pyspark.sql import functions as F

    from features.catalog import USER_PROFILES
    from jobs import profiles
    from jobs.schemas import spark_schema
    from training.publish import latest_version

    day, store = add_days(END, -1), lake["lake"]
    rows = store.read_days(USER_PROFILES, day, day).withColumn("source_max_dt", F.lit(day))
    leaked = spark.createDataFrame(rows.collect(), spark_schema(USER_PROFILES))
    store.write_partition(leaked, USER_PROFILES, day)  # every row "read" its own label day
    try:
        run, states = run_dag(dagbag.dags["training"], None, _conf(lake))
    finally:
        profiles.run(store, day, WINDOW, allow_partial=True)
    assert run.state == "failed"
    assert states["training_set"] == "success" and states["data_gate"] == "failed"
    assert {states[t] for t in AFTER_TRAINING_SET[1:]} == {"upstream_failed"}
    assert latest_version(lake["root"] / "models") == 1
    report = json.loads((_run_folder(lake, run) / "data_gate.json").read_text())
    assert report["failed"] == [f"leakage_audit[{day}]"]


def test_a_tuned_run_trains_and_publishes_its_best_trial(dagbag, lake, first_run):
    from training.publish import latest_version, read_manifest

    any_regression = {**LENIENT, "max_regression": 1.0}  # 4 steps: the champion is noise too
    # the DAG's default model (test_dag_integrity), whose two-tower component the study tunes;
    # named here because dag.test keeps the params of this module's earlier runs
    assert dagbag.dags["training"].params.get_param("model").value == "fusion"
    run, states = run_dag(dagbag.dags["training"], None, _conf(
        lake, model="fusion", tune_trials=2, tune={"epochs": 1, "startup_trials": 1},
        model_gate=any_regression))
    assert run.state == "success", states
    study = json.loads((_run_folder(lake, run) / "tune" / "study.json").read_text())
    # three kinds of days, none shared: trials trained on train days, chose on validation
    days = study["days"]
    assert days["validation"] == [add_days(END, -1)] and days["test"] == [END]
    assert not set(days["train"]) & set(days["validation"] + days["test"])
    assert len(study["trials"]) == 2 and study["best"] is not None
    models = lake["root"] / "models"
    version = latest_version(models)
    assert version == 2
    manifest = read_manifest(models, version)
    assert manifest["model"] == "fusion" and manifest["artifacts"] == ["fusion"]
    record = manifest["study"]
    assert record["best_trial"] == study["best"]["number"]
    assert record["days"]["test"] == manifest["metrics"]["eval_days"] == [END]
    assert record["settings"]["max_steps"] == TINY["max_steps"]  # fixed in every trial
    trained = manifest["training_config"]
    best = study["best"]["settings"]
    assert trained["loop"]["learning_rate"] == pytest.approx(best["learning_rate"])
    component = trained["params"]["two_tower_settings"]  # fusion's two-tower, tuned
    assert component["embedding_dim"] == best["embedding_dim"]
    assert component["hidden_units"] == list(best["hidden_units"])
    assert manifest["metrics"]["model_name"] == "fusion"
    page = (models / "fusion" / str(version) / "report.html").read_text()
    assert "Tuning study" in page and "alt='study history'" in page
