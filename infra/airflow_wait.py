"""Wait for Airflow runs to finish, printing state changes; used by infra/airflow.sh.

    python infra/airflow_wait.py backfill DAG_ID FROM TO [--timeout S]
    python infra/airflow_wait.py run DAG_ID RUN_ID [--timeout S]
    python infra/airflow_wait.py drop-backfill DAG_ID --since T

Reads the metadata database of $AIRFLOW_HOME directly (one process for the whole wait,
instead of a CLI start per poll). Exit status: 0 every run succeeded, 1 a run failed,
2 timeout or nothing to wait for.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta

FINISHED = {"success", "failed"}


def _runs(session, dag_id: str, run_id: str | None, start: datetime | None,
          end: datetime | None) -> list:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    query = select(DagRun).where(DagRun.dag_id == dag_id)
    if run_id:
        query = query.where(DagRun.run_id == run_id)
    else:
        query = query.where(DagRun.logical_date >= start, DagRun.logical_date <= end)
    return list(session.scalars(query.order_by(DagRun.logical_date)))


def _backfill_done(session, dag_id: str, since: datetime) -> bool:
    """True once the newest backfill of `dag_id` created after `since` has completed."""
    from airflow.models.backfill import Backfill
    from sqlalchemy import select

    latest = session.scalars(select(Backfill).where(Backfill.dag_id == dag_id,
                                                    Backfill.created_at >= since)
                             .order_by(Backfill.id.desc())).first()
    return latest is None or latest.completed_at is not None


def _failed_tasks(run, session) -> list[str]:
    return sorted(f"{ti.task_id} ({ti.state}, try {ti.try_number})"
                  for ti in run.get_task_instances(session=session)
                  if ti.state in ("failed", "upstream_failed"))


def _day(run) -> str:
    return run.logical_date.strftime("%Y-%m-%d") if run.logical_date else "-"


def wait(dag_id: str, run_id: str | None, start: datetime | None, end: datetime | None,
         timeout: float, since: datetime | None) -> int:
    from airflow import settings

    deadline, seen, started = time.monotonic() + timeout, {}, time.monotonic()
    while True:
        with settings.Session() as session:
            runs = _runs(session, dag_id, run_id, start, end)
            for run in runs:
                tasks = {ti.task_id: ti.state for ti in run.get_task_instances(session=session)}
                state = (run.state, tuple(sorted(tasks.items(), key=lambda kv: kv[0])))
                if seen.get(run.run_id) != state:
                    seen[run.run_id] = state
                    done = sum(1 for s in tasks.values() if s in ("success", "skipped"))
                    print(f"[{time.monotonic() - started:6.0f}s] {dag_id} {_day(run)} "
                          f"{run.state}: {done}/{len(tasks)} tasks done", flush=True)
            pending = [r for r in runs if r.state not in FINISHED]
            backfill_open = since is not None and not _backfill_done(session, dag_id, since)
            if runs and not pending and not backfill_open:
                return _summary(dag_id, runs, session)
        if time.monotonic() > deadline:
            print(f"timed out after {timeout:.0f}s with {len(pending)} unfinished runs",
                  file=sys.stderr)
            return 2
        time.sleep(3)


def _summary(dag_id: str, runs: list, session) -> int:
    print(f"\n{dag_id}: {len(runs)} runs")
    failed = 0
    for run in runs:
        took = (run.end_date - run.start_date).total_seconds() \
            if run.end_date and run.start_date else 0.0
        line = f"  {_day(run)}  {run.state:<8} {took:6.1f}s  {run.run_id}"
        if run.state != "success":
            failed += 1
            line += f"  failed: {', '.join(_failed_tasks(run, session)) or '?'}"
        print(line)
    if failed:
        print("task logs: $AIRFLOW_HOME/logs/dag_id=<dag>/run_id=<run>/task_id=<task>/")
    return 1 if failed else 0


def drop_backfill(dag_id: str, since: datetime) -> int:
    """Delete the unfinished backfills of `dag_id` created after `since`, with their runs.

    SQLite answers "database is locked" at once (no busy wait) when a reading transaction
    must become a writer while the scheduler writes; `airflow backfill create` can then die
    half-way, leaving a backfill that blocks the next one. The DAG is still paused then, so
    none of its runs has started: removing them makes the retry start clean."""
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    with create_session() as session:
        ids = list(session.scalars(select(Backfill.id).where(
            Backfill.dag_id == dag_id, Backfill.created_at >= since,
            Backfill.completed_at.is_(None))))
        if ids:
            session.execute(delete(BackfillDagRun).where(BackfillDagRun.backfill_id.in_(ids)))
            session.execute(delete(DagRun).where(DagRun.backfill_id.in_(ids)))
            session.execute(delete(Backfill).where(Backfill.id.in_(ids)))
    print(f"dropped {len(ids)} unfinished backfill(s) of {dag_id}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    backfill = sub.add_parser("backfill")
    backfill.add_argument("dag_id")
    backfill.add_argument("start", type=datetime.fromisoformat)
    backfill.add_argument("end", type=datetime.fromisoformat)
    backfill.add_argument("--since", type=datetime.fromisoformat,
                          help="only wait for backfills created after this UTC time")
    drop = sub.add_parser("drop-backfill")
    drop.add_argument("dag_id")
    drop.add_argument("--since", type=datetime.fromisoformat, required=True)
    run = sub.add_parser("run")
    run.add_argument("dag_id")
    run.add_argument("run_id")
    for p in (backfill, run):
        p.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args(argv)
    from datetime import UTC

    if args.what == "run":
        return wait(args.dag_id, args.run_id, None, None, args.timeout, None)
    if args.what == "drop-backfill":
        return drop_backfill(args.dag_id, args.since.replace(tzinfo=UTC))

    start = args.start.replace(tzinfo=UTC)
    end = args.end.replace(tzinfo=UTC) + timedelta(hours=23, minutes=59, seconds=59)
    since = args.since.replace(tzinfo=UTC) if args.since else None
    return wait(args.dag_id, None, start, end, args.timeout, since)


if __name__ == "__main__":
    sys.exit(main())
