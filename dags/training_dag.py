"""Training: training_set -> data_gate -> train -> evaluate -> model_gate -> report -> publish.

Daily at 04:00 UTC (after the previous day's features run; catchup off) on the label days
ending the day before, or triggered with params (end day, M days, window N, workers, gate
and trainer overrides). A gate that fails writes its JSON report into the run folder and
fails its task without retries, so nothing downstream runs and the published model stays.
Run folder: $TRAINING_RUNS_ROOT/<run_id>/ (model/, champion/, data_gate.json,
model_gate.json, report.html); published models: $MODELS_ROOT/<tower>/<version>/.
$TRAINING_SCHEDULE sets another cron ("none": triggered runs only).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from airflow.sdk import CronTriggerTimetable, Param, chain, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from dags.common import (
    DEFAULT_ARGS,
    MODELS_ASSET,
    day_param,
    env_day,
    env_int,
    fail_without_retry,
    int_param,
    models_root,
    open_lake,
    root_param,
    spark_conn_param,
    training_request,
)

log = logging.getLogger(__name__)

SCHEDULE = os.environ.get("TRAINING_SCHEDULE", "0 4 * * *")
NOT_RETRYABLE = (FileNotFoundError, ValueError)


def _gate(report: dict, path: Path) -> dict:
    """Write a gate report; fail the task (no retries) with the failed checks if it failed."""
    from training.gates import failure_summary, write_report

    write_report(report, path)
    log.info("%s report written to %s", report["gate"], path)
    if not report["passed"]:
        raise AirflowFailException(f"{failure_summary(report)}\nfull report: {path}")
    return {"gate": report["gate"], "passed": True, "report": str(path)}


def _paths(run: dict) -> dict[str, Path]:
    root = Path(run["run_dir"])
    return {"root": root, "model": root / "model", "export": root / "model" / "export",
            "metrics": root / "model" / "metrics.json", "champion": root / "champion",
            "data_gate": root / "data_gate.json", "model_gate": root / "model_gate.json",
            "report": root / "report.html"}


@dag(
    dag_id="training",
    schedule=None if SCHEDULE.lower() == "none" else CronTriggerTimetable(SCHEDULE,
                                                                           timezone="UTC"),
    start_date=env_day("TRAINING_START_DATE", "2026-01-01"),
    catchup=False,
    max_active_runs=1,  # one publisher; the champion cannot change under a run
    default_args=DEFAULT_ARGS,
    params={
        "end": day_param("last label day, YYYY-MM-DD (default: the day before the run)"),
        "days": int_param(7, 2, 365, "M: label days, the last holdout_days held out"),
        "window": int_param(env_int("FEATURE_WINDOW_DAYS", 7, 1, 365), 1, 365,
                            "N: the window the profiles were built with"),
        "holdout_days": int_param(1, 1, 364, "label days held out for evaluation"),
        "workers": int_param(1, 1, 16, "training workers (tf.distribute)"),
        "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=1000,
                        description="epochs (default: the trainer's)"),
        "train_overrides": Param({}, type="object",
                                 description="extra keyword arguments of train_run"),
        "data_gate": Param({}, type="object", description="DataGateConfig overrides"),
        "model_gate": Param({}, type="object", description="ModelGateConfig overrides"),
        "lake_root": root_param("LAKE_ROOT", "./lake", "lake root folder"),
        "landing_root": root_param("LANDING_ROOT", "./landing",
                                   "landing root (ground truth for the oracle baseline)"),
        "models_root": root_param("MODELS_ROOT", "./models", "published models"),
        "runs_root": root_param("TRAINING_RUNS_ROOT", "./training_runs", "run folders"),
        "spark_conn_id": spark_conn_param(),
    },
    tags=["training"],
    doc_md=__doc__,
)
def training():
    @task
    def training_set(params=None) -> dict:
        """Validate the request, check every label day is there, assemble the set."""
        from jobs import training_set as job
        from training.gates import gate_report, presence_checks, present_days

        context = get_current_context()
        with fail_without_retry(ValueError):
            run = training_request(params, context.get("logical_date"),
                                   context["dag_run"].run_id)
        lake = open_lake(params)
        presence = gate_report("data_gate", presence_checks(run["label_days"],
                                                            present_days(lake)))
        if not presence["passed"]:  # the same report the data gate writes, then stop
            _gate(presence, _paths(run)["data_gate"])
        with fail_without_retry(*NOT_RETRYABLE):
            manifest = job.run(lake, run["end"], run["days"], run["window"], run["run_id"],
                               run["holdout_days"])
        log.info("training set %s: %s", run["run_id"], json.dumps(manifest["counts"]))
        return run

    @task(retries=0)
    def data_gate(run: dict, params=None) -> dict:
        from jobs.training_set import load_manifest
        from training.gates import DataGateConfig, config_from, run_data_gate

        with fail_without_retry(ValueError):
            config = config_from(DataGateConfig, params["data_gate"])
        lake = open_lake(params)
        report = run_data_gate(lake, run["label_days"], load_manifest(lake.root, run["run_id"]),
                               config)
        return _gate(report, _paths(run)["data_gate"])

    @task
    def train(run: dict, params=None) -> str:
        from jobs.lake import lake_root
        from training.train import train_run

        out = _paths(run)["model"]
        with fail_without_retry(*NOT_RETRYABLE):  # bad settings, too little data
            train_run(lake_root(params["lake_root"]), run["run_id"], out,
                      workers=run["workers"], epochs=run["epochs"],
                      **params["train_overrides"])
        return str(out)

    @task
    def evaluate(run: dict, params=None) -> dict:
        """Metrics of the new model and, on the same day, of the published champion."""
        from jobs.ingest import landing_root
        from jobs.lake import lake_root
        from training.evaluate import evaluate_run
        from training.publish import champion_view, latest_version

        paths, lake = _paths(run), lake_root(params["lake_root"])
        landing = landing_root(params["landing_root"])
        landing = landing if landing.is_dir() else None
        with fail_without_retry(FileNotFoundError):
            metrics = evaluate_run(lake, run["run_id"], paths["model"], landing=landing,
                                   model_dir=paths["export"])
        champion, problem = latest_version(models_root(params)), None
        if champion is not None:
            try:
                with champion_view(models_root(params), champion, paths["champion"]) as view:
                    evaluate_run(lake, run["run_id"], paths["champion"], landing=landing,
                                 model_dir=view)
            except Exception as error:  # e.g. its inputs are gone from the features
                # the gate records the skipped comparison instead of blocking every release
                log.exception("champion v%d cannot be evaluated on this run", champion)
                problem = f"{type(error).__name__}: {error}"
            (paths["champion"] / "champion.json").write_text(
                json.dumps({"version": champion, "error": problem}))
        return {"model": metrics.get("model"), "champion_version": champion,
                "champion_error": problem}

    @task(retries=0)
    def model_gate(run: dict, params=None) -> dict:
        from training.gates import ModelGateConfig, config_from, run_model_gate

        paths = _paths(run)
        with fail_without_retry(ValueError):
            config = config_from(ModelGateConfig, params["model_gate"])
        champion_file = paths["champion"] / "champion.json"
        about = json.loads(champion_file.read_text()) if champion_file.is_file() else {}
        champion = (json.loads((paths["champion"] / "metrics.json").read_text())
                    if about and not about["error"] else None)
        report = run_model_gate(paths["export"], json.loads(paths["metrics"].read_text()),
                                champion, config, about.get("version"), about.get("error"))
        return _gate(report, paths["model_gate"])

    @task
    def report(run: dict, params=None) -> str:
        from jobs.lake import lake_root
        from jobs.training_set import load_manifest
        from training.report import write_run_report

        paths, lake = _paths(run), lake_root(params["lake_root"])
        return str(write_run_report(
            paths["report"], lake, load_manifest(lake, run["run_id"]), paths["model"],
            paths["metrics"], {"data gate": paths["data_gate"],
                               "model gate": paths["model_gate"]}))

    @task(outlets=[MODELS_ASSET])
    def publish(run: dict, params=None) -> int:
        from jobs.lake import lake_root
        from jobs.training_set import load_manifest
        from training.publish import publish as publish_model

        context = get_current_context()
        paths = _paths(run)
        manifest = load_manifest(lake_root(params["lake_root"]), run["run_id"])

        def load(path: Path):
            return json.loads(path.read_text()) if path.is_file() else None

        record = {
            "training_set": {k: manifest.get(k) for k in (
                "run_id", "end", "days", "window", "seed", "train_days", "holdout_days",
                "counts", "format")},
            "source_versions": manifest.get("source_versions"),
            "training_config": load(paths["model"] / "config.json"),
            "metrics": load(paths["metrics"]),
            "champion_metrics": load(paths["champion"] / "metrics.json"),
            "gates": {"data_gate": load(paths["data_gate"]),
                      "model_gate": load(paths["model_gate"])},
            "airflow": {"dag_id": context["dag"].dag_id,
                        "run_id": context["dag_run"].run_id},
        }
        published_at = context["ti"].start_date.isoformat()  # recorded, never used for data
        result = publish_model(models_root(params), paths["export"], run["run_id"], record,
                               published_at, paths["report"])
        context["outlet_events"][MODELS_ASSET].extra = {"version": result.version,
                                                        "run_id": run["run_id"]}
        return result.version

    run = training_set()
    chain(data_gate(run), train(run), evaluate(run), model_gate(run), report(run), publish(run))


training()
