"""Wiring shared by the workflow files: tables as Assets, params, paths, a task's engine.

The scheduler imports this module on every parse, so it stays cheap: pyspark, tensorflow and
jobs.* are imported inside the functions that tasks call, never at module level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.sdk import Asset, Param
from airflow.sdk.exceptions import AirflowFailException

from features.catalog import TABLES
from features.days import DAY_PATTERN, parse_day
from features.manifest import check_run_id
from features.settings import ENVIRONMENT, Settings, load_settings

if TYPE_CHECKING:
    from jobs.lake import Lake

log = logging.getLogger(__name__)

# The lake tables as Assets, from the engine-free catalog (cheap to import at parse time).
ASSETS = {name: Asset(name=f"lake.{name}", uri=f"lake://{name}", group="lake")
          for name in TABLES}
MODELS_ASSET = Asset(name="models", uri="models://published", group="models")

# Retried with exponential back-off: a crashed engine or a busy disk heals by itself. Errors
# a retry cannot fix are raised through `fail_without_retry` instead.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "data-platform",
    "retries": 2,
    "retry_delay": timedelta(seconds=20),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def env_day(name: str, default: str | None) -> pendulum.DateTime | None:
    """Midnight UTC of the day in ${name} (or `default`); None when neither is set."""
    text = os.environ.get(name) or default
    if not text:
        return None
    day = parse_day(text, f"${name}")
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


def day_param(description: str) -> Param:
    """An optional day; the JSON schema rejects anything but a real `YYYY-MM-DD` day."""
    return Param(None, type=["null", "string"], pattern=DAY_PATTERN, format="date",
                 description=description)


ROOT_PARAMS = ("lake_root", "landing_root", "models_root", "runs_root")


def root_param(field: str, what: str) -> Param:
    """A root folder param; empty means the environment variable, else the default."""
    default = Settings.model_fields[field].default
    return Param(None, type=["null", "string"], minLength=1,
                 description=f"{what} (default: ${ENVIRONMENT[field]}, else {default})")


def env_setting(field: str) -> Any:
    """A setting from the environment at parse time (e.g. a param's default)."""
    return getattr(load_settings(), field)


def int_param(default: int, low: int, high: int, description: str) -> Param:
    return Param(default, type="integer", minimum=low, maximum=high, description=description)


def spark_conn_param() -> Param:
    return Param("spark_connect_default", type=["null", "string"],
                 description="Airflow connection of type spark_connect; when it exists the "
                             "tasks run on that cluster, else on the embedded engine")


def run_settings(params: Mapping[str, Any]) -> Settings:
    """The run's settings: its params over the environment over the defaults (one rule for
    every task, the same as the command-line jobs follow)."""
    return load_settings(**{key: params.get(key) for key in ROOT_PARAMS})


def run_day(context: Mapping[str, Any]) -> str:
    """The day D a run works on: its logical date, in UTC."""
    logical = context.get("logical_date")
    if logical is None:
        raise AirflowFailException("this run has no logical date; trigger it with one "
                                   "(the day to process, e.g. --logical-date 2026-01-05)")
    return pendulum.instance(logical).in_timezone("UTC").date().isoformat()


def safe_name(text: str) -> str:
    """`text` reduced to characters safe in a folder name."""
    return _UNSAFE.sub("-", text).strip("-.") or "run"


@contextlib.contextmanager
def fail_without_retry(*errors: type[BaseException]) -> Iterator[None]:
    """Fail the task at once, skipping retries, on errors a retry cannot fix (missing input,
    bad arguments); their message names what is wrong."""
    try:
        yield
    except errors as error:
        raise AirflowFailException(f"{type(error).__name__}: {error}") from error


def spark_remote(conn_id: str | None) -> str | None:
    """The `sc://` URL of Airflow connection `conn_id` (type spark_connect), or None when no
    such connection exists. Call it inside tasks only: it reads the connection store."""
    if not conn_id:
        return None
    from airflow.providers.apache.spark.hooks.spark_connect import SparkConnectHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    hook = SparkConnectHook(conn_id)
    try:
        conn = hook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    if conn.conn_type != SparkConnectHook.conn_type:
        raise AirflowFailException(f"connection {conn_id!r} has type {conn.conn_type!r}; the "
                                   f"engine needs one of type {SparkConnectHook.conn_type!r}")
    return hook.get_connection_url()


def open_lake(params: Mapping[str, Any]) -> Lake:
    """The lake of the run's params on its engine: the Spark Connect cluster of the
    configured connection, else embedded Sail (or $SPARK_REMOTE, as for the CLI jobs)."""
    from jobs.engine import quiet_engine_logs, spark_session
    from jobs.lake import Lake

    quiet_engine_logs("INFO")  # engines at WARNING: task logs show our lines, not Sail's
    remote = spark_remote(params.get("spark_conn_id"))
    log.info("engine: %s", f"Spark Connect {remote}" if remote else "default (embedded)")
    return Lake(run_settings(params).lake_root, spark_session(remote=remote))


def training_request(params: Mapping[str, Any], logical_date: datetime | None,
                     airflow_run_id: str, labelled_days: Sequence[str] = ()
                     ) -> dict[str, Any]:
    """The validated facts of one training run, from its params and its Airflow run.

    The end day is the `end` param, else the newest day of the labels asset events that
    triggered the run (data-aware schedule), else the day before the logical date (the last
    day whose features are complete when the daily schedule fires). The run id names the
    training set, the run folder and the published manifest, so a retry of the same
    Airflow run reuses them and publication stays a no-op.
    """
    if params.get("end"):
        end = parse_day(params["end"], "param 'end'")
    elif labelled_days:
        end = parse_day(max(labelled_days), "triggering labels day")
    elif logical_date is not None:
        end = pendulum.instance(logical_date).in_timezone("UTC").date() - timedelta(days=1)
    else:
        raise ValueError("no end day: set the 'end' param (YYYY-MM-DD) or trigger the run "
                         "with a logical date")
    days, holdout = int(params["days"]), int(params["holdout_days"])
    validation = int(params.get("validation_days") or 0)
    if not 1 <= holdout < days:
        raise ValueError(f"holdout_days must be in [1, days - 1] = [1, {days - 1}], "
                         f"got {holdout}")
    if not 0 <= validation < days - holdout:
        raise ValueError(f"validation_days must be in [0, days - holdout_days - 1] = "
                         f"[0, {days - holdout - 1}], got {validation}")
    label_days = [(end - timedelta(days=i)).isoformat() for i in reversed(range(days))]
    window = int(params["window"])
    run_id = check_run_id(
        f"{end.isoformat()}_M{days}_N{window}__{safe_name(airflow_run_id)}"[:200])
    return {"end": end.isoformat(), "days": days, "window": window, "holdout_days": holdout,
            "validation_days": validation,
            "label_days": label_days, "workers": int(params["workers"]),
            "epochs": params.get("epochs"), "model": params.get("model") or "two_tower",
            "run_id": run_id, "run_dir": str(run_settings(params).runs_root / run_id)}
