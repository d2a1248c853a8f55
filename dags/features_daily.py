"""Daily features: one run per logical day D, after D has ended.

check_landing(D) -> ingest(D) -> daily_stats(D) -> profiles(D, D+1) -> labels(D) -> data_checks
                                               +-> anchor_neighbours(D+1)

Profiles read the daily stats of the N days before their day, which other runs wrote, and
advance the running totals (one day on top of the day before: a chain) through D-1 and D:
`depends_on_past` on that task makes run D wait for run D-1's profiles, so by induction every
earlier day's ingest and daily stats are done, while ingest and daily stats of different
days still run in parallel. The task writes two partitions:
- profiles of D+1, from D+1-N .. D: the next label day's features, ready when D is done;
  entities that first appear on D+1 are not known yet, so they have no row in it;
- profiles of D again, now that D's new users and anchors are ingested: the final partition,
  with a cold-start row for each of them (the one the previous run wrote lacked them; when
  it is current, only those rows are added to it instead of building it again).
Anchor neighbours (item-CF) of D+1 read the daily pairs of D+1-W .. D, so they wait for
run D-1 the same way; those of D are built again only when missing or out of date (the
first day of history, or a window day re-run since).
Labels run after the profiles: labels of D mark users new on D only once every earlier
day is ingested, and a label day whose labels exist has its final profiles. At the start of
history the window is partial (recorded in the table); a gap inside the history fails.
Settings: $LAKE_ROOT, $LANDING_ROOT, $FEATURE_WINDOW_DAYS (7), $FEATURES_START_DATE
(2026-01-01), $FEATURES_END_DATE (none), or the params of a run.
"""

from __future__ import annotations

import json
import logging

from airflow.sdk import CronDataIntervalTimetable, Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from dags.common import (
    ASSETS,
    DEFAULT_ARGS,
    env_day,
    env_setting,
    fail_without_retry,
    int_param,
    open_lake,
    root_param,
    run_day,
    run_settings,
    spark_conn_param,
)

log = logging.getLogger(__name__)

WINDOW_DAYS = env_setting("window_days")
INGESTED = [ASSETS[t] for t in ("users", "anchors", "live_schedule", "raw_watch_sessions",
                                "quarantine")]
DAILY = [ASSETS[t] for t in ("daily_user_stats", "daily_anchor_stats", "daily_user_anchor")]
PROFILES = [ASSETS["user_profiles"], ASSETS["anchor_profiles"]]
# the profiles task also advances the running totals its window sums are differences of
TOTALS = [ASSETS["user_running_totals"], ASSETS["anchor_running_totals"]]
NEIGHBOURS = [ASSETS["anchor_neighbours"]]
# Missing inputs and bad arguments fail at once; a retry cannot make files appear.
NOT_RETRYABLE = (FileNotFoundError, ValueError)


def _mark(outlets: list, *days: str) -> None:
    """Record the partitions a task wrote on its asset events (lineage in the UI)."""
    events = get_current_context()["outlet_events"]
    for asset in outlets:
        events[asset].extra = {"dt": list(days)}


@dag(
    dag_id="features_daily",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=env_day("FEATURES_START_DATE", "2026-01-01"),
    end_date=env_day("FEATURES_END_DATE", None),
    catchup=True,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    params={
        "lake_root": root_param("lake_root", "lake root folder"),
        "landing_root": root_param("landing_root", "landing root folder"),
        "window_days": int_param(WINDOW_DAYS, 1, 365, "N: days of daily stats per profile"),
        "max_quarantine_rate": Param(0.05, type="number", minimum=0, maximum=1,
                                     description="largest share of the day's session lines "
                                                 "that may go to quarantine"),
        "time_format": Param("iso", type="string", enum=["iso", "epoch_s", "epoch_ms"],
                             description="how start_time is written in the landing files: "
                                         "ISO-8601 with a zone, epoch seconds or epoch "
                                         "milliseconds"),
        "spark_conn_id": spark_conn_param(),
    },
    tags=["features"],
    doc_md=__doc__,
)
def features_daily():
    @task(retries=0)
    def check_landing(params=None) -> None:
        """Fail naming every missing landing folder of D, and every entry of its folders
        that is not a data file, before any table is touched."""
        from jobs.ingest import SOURCES, day_folder, require_landing
        from jobs.landing import list_day_files

        day = run_day(get_current_context())
        landing = run_settings(params).landing_root
        with fail_without_retry(FileNotFoundError, ValueError):
            require_landing(landing, day)
            for source in SOURCES:
                list_day_files(day_folder(landing, source, day))

    @task(outlets=INGESTED)
    def ingest(params=None) -> dict:
        from jobs.ingest import ingest_day

        day = run_day(get_current_context())
        with fail_without_retry(*NOT_RETRYABLE):
            summary = ingest_day(open_lake(params), run_settings(params).landing_root, day,
                                 params.get("time_format") or "iso")
        _mark(INGESTED, day)
        return summary

    @task(outlets=DAILY)
    def daily_stats(params=None) -> None:
        from jobs import daily_stats as job

        day = run_day(get_current_context())
        with fail_without_retry(*NOT_RETRYABLE):
            job.run(open_lake(params), day)
        _mark(DAILY, day)

    @task(outlets=PROFILES + TOTALS, depends_on_past=True)
    def profiles(params=None) -> list[str]:
        """Profiles as of D (final) and as of D+1 (the next label day), see the module doc."""
        from features.days import add_days
        from jobs import profiles as job

        day = run_day(get_current_context())
        lake, built = open_lake(params), [day, add_days(day, 1)]
        settings = run_settings(params)
        with fail_without_retry(*NOT_RETRYABLE):
            for profile_day in built:  # D: its new entities added, if D's run built D
                job.run(lake, profile_day, params["window_days"], settings.last_k,
                        allow_partial=True, history_days=settings.history_days,
                        history_k=settings.history_k, reuse=profile_day == day)
        _mark(PROFILES, *built)
        _mark(TOTALS, day)
        return built

    @task(outlets=NEIGHBOURS, depends_on_past=True)
    def anchor_neighbours(params=None) -> list[str]:
        """Item-CF neighbours as of D+1, and as of D when missing or out of date."""
        from features.days import add_days
        from jobs import anchor_neighbours as job

        day = run_day(get_current_context())
        lake = open_lake(params)
        built = [d for d in (day, add_days(day, 1))
                 if d != day or lake.ledger().token(job.JOB, day) is None]
        with fail_without_retry(*NOT_RETRYABLE):
            for neighbours_day in built:
                job.run(lake, neighbours_day)
        _mark(NEIGHBOURS, *built)
        return built

    @task(outlets=[ASSETS["labels"]])
    def labels(params=None) -> None:
        from jobs import labels as job

        day = run_day(get_current_context())
        with fail_without_retry(*NOT_RETRYABLE):
            job.run(open_lake(params), day)
        _mark([ASSETS["labels"]], day)

    @task(retries=0)
    def data_checks(profile_days: list[str], params=None) -> dict:
        """Leakage audit of the profiles just built; quarantine rate of D under a threshold."""
        from jobs.data_gate import quarantine_rates
        from jobs.leakage_audit import audit_day

        day = run_day(get_current_context())
        lake = open_lake(params)
        # only D's final profiles: those of D+1 are rebuilt, and audited, by run D+1, which
        # may be writing them right now (its day record is absent meanwhile)
        audits = {d: audit_day(lake, d) for d in profile_days if d == day}
        rate = quarantine_rates(lake, [day])[day]
        report = {"day": day, "leakage_audits": audits, "quarantine_rate": rate,
                  "max_quarantine_rate": params["max_quarantine_rate"]}
        log.info("data checks: %s", json.dumps(report, indent=2, default=str))
        problems = [f"leakage audit of profiles {d} failed: "
                    f"{json.dumps(a['tables'], default=str)}"
                    for d, a in audits.items() if not a["ok"]]
        # None: the day had no session lines at all, a valid empty day (its ingest record
        # says so; the training data gate judges label volumes)
        if rate is not None and rate > params["max_quarantine_rate"]:
            problems.append(f"quarantine rate of {day} is {rate}, above the allowed "
                            f"{params['max_quarantine_rate']}")
        if problems:
            raise AirflowFailException("; ".join(problems))
        return report

    stats, built, labelled = daily_stats(), profiles(), labels()
    check_landing() >> ingest() >> stats >> built >> labelled
    stats >> anchor_neighbours()
    data_checks(built) << labelled

features_daily()
