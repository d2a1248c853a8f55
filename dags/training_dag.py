"""Training: training_set -> data_gate -> train -> evaluate -> model_gate -> report -> publish.

Daily at 04:00 UTC on the label days ending the day before ($TRAINING_SCHEDULE: another
cron; "labels" runs whenever the labels asset is updated, on the label days ending at the
newest one; "none": triggered runs only), or triggered with params (end day, M days,
window N, model, workers, gate and trainer overrides, `tune_trials`: a tuning study on the
validation days first, whose best settings the training takes). Any registered model trains
through the same tasks (param `model`). A gate that fails writes its JSON report into the
run folder and fails its task without retries, so nothing downstream runs and the
published model stays. The default model is `fusion`: the two-tower model blended with the
recall baselines on the validation days (training.models.fusion). Run folder:
$TRAINING_RUNS_ROOT/<run_id>/; published models: $MODELS_ROOT/<artifact>/<version>/.
"""

from __future__ import annotations

import json
import logging
import os

from airflow.sdk import CronTriggerTimetable, Param, chain, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from dags.common import (
    ASSETS,
    DEFAULT_ARGS,
    MODELS_ASSET,
    day_param,
    env_day,
    env_setting,
    fail_without_retry,
    int_param,
    open_lake,
    root_param,
    run_settings,
    spark_conn_param,
    training_request,
)

log = logging.getLogger(__name__)

NOT_RETRYABLE = (FileNotFoundError, ValueError)
# the two-tower model blended with the baselines: on the simulator the only model that beats
# the rewatch list (docs/tuning.md); `model: two_tower` trains the two-tower model alone
PUBLISHED_MODEL = "fusion"


def _schedule(text: str):
    if text.lower() == "none":
        return None
    if text.lower() == "labels":
        return [ASSETS["labels"]]
    return CronTriggerTimetable(text, timezone="UTC")


def _gate(report: dict, path) -> dict:
    """Write a gate report; fail the task (no retries) with the failed checks if it failed."""
    from features.checks import failure_summary, write_report

    write_report(report, path)
    log.info("%s report written to %s", report["gate"], path)
    if not report["passed"]:
        raise AirflowFailException(f"{failure_summary(report)}\nfull report: {path}")
    return {"gate": report["gate"], "passed": True, "report": str(path)}


def _context(run: dict, params: dict):
    """(training set, run folder, settings) of a run."""
    from training.reader import TrainingSet
    from training.release import RunFolder

    settings = run_settings(params)
    return TrainingSet(settings.lake_root, run["run_id"]), RunFolder(run["run_dir"]), settings


@dag(
    dag_id="training",
    schedule=_schedule(os.environ.get("TRAINING_SCHEDULE", "0 4 * * *")),
    start_date=env_day("TRAINING_START_DATE", "2026-01-01"),
    catchup=False,
    max_active_runs=1,  # one publisher; the champion cannot change under a run
    default_args=DEFAULT_ARGS,
    params={
        "end": day_param("last label day, YYYY-MM-DD (default: the day before the run)"),
        "days": int_param(7, 2, 365, "M: label days, the last holdout_days held out"),
        "window": int_param(env_setting("window_days"), 1, 365,
                            "N: the window the profiles were built with"),
        "holdout_days": int_param(1, 1, 364, "test days: the last label days, held out for "
                                             "evaluation and the gate"),
        "validation_days": int_param(1, 0, 363, "validation days before the test days: "
                                                "early stopping (0: none)"),
        "model": Param(PUBLISHED_MODEL, type="string", pattern=r"^[a-z][a-z0-9_]*$",
                       description="registered model to train (training.models; default: "
                                   "the fusion of the two-tower model with the baselines)"),
        "workers": int_param(1, 1, 16, "training workers (tf.distribute)"),
        "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=1000,
                        description="epochs (default: the trainer's)"),
        "train_overrides": Param({}, type="object",
                                 description="training settings (loop or model fields)"),
        "tune_trials": int_param(0, 0, 1000, "trials of a tuning study on the validation "
                                             "days before training, which then takes the "
                                             "best trial's settings (0: no study)"),
        "tune": Param({}, type="object", description="the study's settings "
                                                     "(training.tune.StudySettings: epochs, "
                                                     "sample_users, timeout, pruner, ...)"),
        "data_gate": Param({}, type="object", description="DataGateConfig overrides"),
        "model_gate": Param({}, type="object", description="ModelGateConfig overrides"),
        "force_publish": Param(None, type=["null", "string"], minLength=10,
                               description="publish even if the model gate fails: the "
                                           "reason, recorded in the manifest"),
        "lake_root": root_param("lake_root", "lake root folder"),
        "landing_root": root_param("landing_root", "landing root (the oracle's ground truth)"),
        "models_root": root_param("models_root", "published models"),
        "runs_root": root_param("runs_root", "run folders"),
        "spark_conn_id": spark_conn_param(),
    },
    tags=["training"],
    doc_md=__doc__,
)
def training():
    @task
    def training_set(params=None) -> dict:
        """Validate the request, check every label day is there, assemble the set."""
        from features.checks import gate_report
        from jobs import training_set as job
        from jobs.data_gate import presence_checks, present_days

        context = get_current_context()
        events = context.get("triggering_asset_events") or {}
        labelled = [day for event in events.get(ASSETS["labels"], [])
                    for day in (event.extra or {}).get("dt", [])]
        with fail_without_retry(ValueError):
            run = training_request(params, context.get("logical_date"),
                                   context["dag_run"].run_id, labelled)
        lake = open_lake(params)
        presence = gate_report("data_gate", presence_checks(run["label_days"],
                                                            present_days(lake)))
        if not presence["passed"]:  # the same report the data gate writes, then stop
            from training.release import RunFolder

            _gate(presence, RunFolder(run["run_dir"]).data_gate)
        with fail_without_retry(*NOT_RETRYABLE):
            manifest = job.run(lake, run["end"], run["days"], run["window"], run["run_id"],
                               run["holdout_days"],
                               validation_days=run["validation_days"])
        log.info("training set %s: %s", run["run_id"], manifest.counts.model_dump_json())
        return run

    @task(retries=0)
    def data_gate(run: dict, params=None) -> dict:
        from features.checks import config_from
        from features.manifest import load_manifest
        from jobs.data_gate import DataGateConfig, run_data_gate
        from training.release import RunFolder

        with fail_without_retry(ValueError):
            config = config_from(DataGateConfig, params["data_gate"])
        lake = open_lake(params)
        report = run_data_gate(lake, run["label_days"], load_manifest(lake.root, run["run_id"]),
                               config)
        return _gate(report, RunFolder(run["run_dir"]).data_gate)

    @task
    def train(run: dict, params=None) -> str:
        """Train; with `tune_trials`, first a study on the validation days (resumed by a
        retry) whose best trial's settings the training takes."""
        from training.train import train_run

        data, folder, settings = _context(run, params)
        overrides = dict(params["train_overrides"])
        with fail_without_retry(*NOT_RETRYABLE):  # bad settings, too little data
            if params.get("tune_trials"):
                from features.checks import config_from
                from training.tune import StudySettings, tuned_overrides

                overrides = tuned_overrides(settings.lake_root, run["run_id"], folder.tune,
                                            params["tune_trials"], overrides,
                                            config_from(StudySettings, params["tune"]),
                                            run["model"], print_fn=log.info)
            train_run(settings.lake_root, run["run_id"], folder.model, workers=run["workers"],
                      epochs=run["epochs"], model_name=run["model"], **overrides)
        return str(folder.model)

    @task
    def evaluate(run: dict, params=None) -> dict:
        """Metrics of the new model and, on the same days, of the published champion."""
        from training.evaluate import evaluate_model
        from training.models import model
        from training.release import evaluate_champion

        data, folder, settings = _context(run, params)
        landing = settings.landing_root if settings.landing_root.is_dir() else None
        with fail_without_retry(FileNotFoundError):
            metrics = evaluate_model(data, run["model"],
                                     model(run["model"]).export_dir(folder.model), landing,
                                     out=folder.model)
        champion = evaluate_champion(data, settings.models_root, folder, landing)
        return {"model": metrics["model"], "champion": champion}

    @task(retries=0)
    def model_gate(run: dict, params=None) -> dict:
        from features.checks import config_from
        from training.model_gate import ModelGateConfig, run_model_gate
        from training.models import model
        from training.release import champion_facts

        _, folder, _ = _context(run, params)
        with fail_without_retry(ValueError):
            config = config_from(ModelGateConfig, params["model_gate"])
        kind = model(run["model"])
        champion, version, error = champion_facts(folder)
        report = run_model_gate(json.loads(folder.metrics.read_text()), champion, config,
                                kind.checks(kind.export_dir(folder.model)), version, error)
        if not report["passed"] and params.get("force_publish"):
            # publish_run records the reason; the failed checks stay in the report
            from features.checks import failure_summary, write_report

            write_report(report, folder.model_gate)
            log.warning("model gate failed, publishing anyway (%s):\n%s",
                        params["force_publish"], failure_summary(report))
            return {"gate": "model_gate", "passed": False, "forced": params["force_publish"]}
        return _gate(report, folder.model_gate)

    @task
    def report(run: dict, params=None) -> str:
        from training.report import write_run_report

        data, folder, _ = _context(run, params)
        facts = {"model": run["model"], "airflow run": get_current_context()["dag_run"].run_id}
        return str(write_run_report(folder.report, data, folder.model, folder.metrics,
                                    {"data gate": folder.data_gate,
                                     "model gate": folder.model_gate}, facts,
                                    study_path=folder.study))

    @task(outlets=[MODELS_ASSET])
    def publish(run: dict, params=None) -> int:
        from training.models import model
        from training.release import publish_record, publish_run, read_json

        context = get_current_context()
        data, folder, settings = _context(run, params)
        record = publish_record(data, folder, run["model"], {"airflow": {
            "dag_id": context["dag"].dag_id, "run_id": context["dag_run"].run_id}})
        published_at = context["ti"].start_date.isoformat()  # recorded, never used for data
        with fail_without_retry(ValueError):
            result = publish_run(settings.models_root, run["model"],
                                 model(run["model"]).export_dir(folder.model), run["run_id"],
                                 record, published_at, folder.report,
                                 read_json(folder.model_gate), params.get("force_publish"))
        context["outlet_events"][MODELS_ASSET].extra = {"version": result.version,
                                                        "run_id": run["run_id"],
                                                        "model": run["model"]}
        return result.version

    run = training_set()
    chain(data_gate(run), train(run), evaluate(run), model_gate(run), report(run), publish(run))


TRAINING = training()
