"""A tiny simulated lake with a training set, built once through the real jobs."""

from __future__ import annotations

import pytest

from features.days import add_days

START, DAYS = "2026-02-01", 6
END = add_days(START, DAYS - 1)
RUN = "tiny"


@pytest.fixture(scope="session")
def tiny_training_set(tmp_path_factory, spark):
    from jobs.lake import Lake
    from jobs.run_days import run_days
    from jobs.simulator import make_landing
    from jobs.training_set import run

    root = tmp_path_factory.mktemp("tiny")
    landing = make_landing(root, START, DAYS, seed=3)
    lake = Lake(root / "lake", spark)
    from features.days import days_between

    run_days(lake, days_between(START, END), ["ingest", "daily_stats", "profiles", "labels"],
             window=2, last_k=5, allow_partial=True, landing=str(landing))
    # label days END-3 .. END: two training days, one validation day, one test day
    manifest = run(lake, END, days=4, window=2, run_id=RUN, shards=3, validation_days=1)
    return {"lake": lake.root, "landing": landing, "run_id": RUN, "manifest": manifest}
