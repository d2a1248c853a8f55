"""Parity: the jobs on JVM Spark local (with delta-spark) equal those on Sail, row for row,
and a Delta lake is engine-neutral: any job of a day may run on either engine. The JVM
work runs in the test session's one JVM child (tests/conftest.py: run_on_jvm)."""

from __future__ import annotations

import json
import textwrap

import pytest

from features.catalog import ALL_TABLES, ANCHOR_PROFILES, LABELS, USERS
from features.days import days_between
from features.examples import CANDIDATES, TRAIN_EXAMPLES, VALIDATION_EXAMPLES
from features.manifest import run_folder
from jobs import training_set
from jobs.lake import Lake
from jobs.run_days import run_days
from tests.conftest import run_code_on_jvm, run_on_jvm

pytestmark = pytest.mark.e2e

def _rows(lake: Lake, spec) -> list:
    def plain(value):
        if isinstance(value, dict):
            return sorted((k, plain(v)) for k, v in value.items())
        if isinstance(value, float):
            return round(value, 9)
        return [plain(v) for v in value] if isinstance(value, list) else value

    return sorted((tuple(plain(v) for v in row) for row in lake.read(spec).collect()),
                  key=repr)


def every_table(lake: Lake, run_id: str | None = None) -> dict[str, list]:
    """Rows of every table of the lake (and of the training set `run_id`), read by Sail."""
    specs = [spec for spec in ALL_TABLES if lake.exists(spec)]
    if run_id:
        base = run_folder(run_id)
        specs += [TRAIN_EXAMPLES.renamed(f"{base}/train"),
                  VALIDATION_EXAMPLES.renamed(f"{base}/validation"),
                  CANDIDATES.renamed(f"{base}/candidates")]
    return {spec.name: _rows(lake, spec) for spec in specs}


TINY_DAYS = days_between("2026-05-01", "2026-05-03")
FEATURES = ["daily_stats", "profiles", "labels"]
RUN_ID = "parity"
# jobs.training_set's command line for the tiny days (run on the JVM here and on the cluster)
TRAINING_SET_ARGS = ["--end", TINY_DAYS[-1], "--days", str(len(TINY_DAYS)), "--window", "2",
                     "--run-id", RUN_ID, "--shards", "2", "--validation-days", "0"]


def tiny_training_set(lake: Lake) -> dict:
    """The training set RUN_ID of the tiny days on `lake`; its manifest."""
    manifest = training_set.run(lake, TINY_DAYS[-1], len(TINY_DAYS), 2, RUN_ID, shards=2)
    return json.loads(manifest.model_dump_json())


def test_a_lake_is_engine_neutral(tmp_path, spark, tiny_reference):
    """The same three tiny days built all on Sail (the session's reference) and mixed: Sail
    builds the first two days and the third day's ingest, JVM Spark local the third day's
    features (profiles from the running totals Sail wrote) and the training set of all three
    days (the jobs' command lines, jobs.run_days and jobs.training_set); every table read
    back on Sail and compared. The JVM reads what Sail wrote and Sail what the JVM wrote;
    ingest runs on JVM Spark in tests/jobs/test_cluster.py and test_ingest.py."""
    landing, sail, expected, expected_manifest = tiny_reference
    *before, last = TINY_DAYS
    mixed = Lake(tmp_path / "sail_sail_jvm", spark)
    run_days(mixed, before, ["ingest", *FEATURES], window=2, last_k=3, allow_partial=True,
             landing=str(landing))
    run_days(mixed, [last], ["ingest"], window=2, last_k=3, landing=str(landing))
    features = run_on_jvm("jobs.run_days", "--start", last, "--end", last, "--window", "2",
                          "--last-k", "3", "--steps", ",".join(FEATURES), "--allow-partial",
                          "--lake", str(mixed.root))
    done = run_on_jvm("jobs.training_set", *TRAINING_SET_ARGS, "--lake", str(mixed.root))

    assert len(expected) == len([s for s in ALL_TABLES if sail.exists(s)]) + 3
    # rows the inputs imply, so that two empty tables cannot pass as equal: a profile for
    # each user known that day (new users arrive every day), labels every day
    known = [sail.read(USERS).where(f"dt <= '{day}'").count() for day in TINY_DAYS]
    assert known[0] < known[-1]
    assert len(expected["user_profiles"]) == sum(known)
    assert {row[-1] for row in expected["labels"]} == set(TINY_DAYS)
    assert all(expected[name] for name in ("raw_watch_sessions", "daily_user_anchor",
                                           f"{run_folder(RUN_ID)}/train"))
    found = every_table(mixed, RUN_ID)
    assert sorted(found) == sorted(expected)
    for name, rows in expected.items():
        assert found[name] == rows, name
    # the JVM job's summary counts what it wrote, as the Sail tables hold it
    on_last = {name: sail.read(spec).where(f"dt = '{last}'").count()
               for name, spec in (("anchor_profiles", ANCHOR_PROFILES), ("labels", LABELS))}
    assert features.stdout.splitlines()[-1].endswith(
        f"user_profiles {known[-1]:,} rows, anchor_profiles {on_last['anchor_profiles']:,} "
        f"rows, labels {on_last['labels']:,} rows")
    # the manifest counts the same examples (its version and times differ)
    manifest = json.loads((mixed.root / run_folder(RUN_ID) / "manifest.json").read_text())
    assert manifest["counts"] == expected_manifest["counts"]
    assert manifest["format"] == "delta"
    assert done.stdout.strip()


def test_partition_writer_guarantees_hold_on_jvm_spark(tmp_path):
    """On JVM Spark with Delta: a row outside the day is refused and nothing commits; two
    writers replacing the same day at once both land, conflicts retried."""
    done = run_code_on_jvm(textwrap.dedent(f"""
        import json, logging
        from concurrent.futures import ThreadPoolExecutor
        from features.catalog import LABELS
        from jobs.engine import spark_session
        from jobs.lake import Lake
        from jobs.schemas import spark_schema
        retries = []
        logging.getLogger("jobs.lake").addHandler(logging.Handler())
        logging.getLogger("jobs.lake").handlers[-1].emit = lambda r: retries.append(
            r.getMessage())
        logging.getLogger("jobs.lake").setLevel(logging.WARNING)
        spark = spark_session()
        lake = Lake({str(tmp_path / "lake")!r}, spark)
        def frame(user, day):
            row = {{f.name: None for f in spark_schema(LABELS)}}
            row.update(user_id=user, anchor_id=1, dt=day)
            return spark.createDataFrame([tuple(row.values())], spark_schema(LABELS))
        lake.write_partition(frame(1, "2026-01-01"), LABELS, "2026-01-01")
        version = lake.version(LABELS)
        try:
            lake.write_partition(frame(2, "2026-01-02"), LABELS, "2026-01-01")
            refused = None
        except Exception as error:
            refused = str(error)[:3000]
        same = lake.version(LABELS) == version
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda u: lake.write_partition(frame(u, "2026-01-03"), LABELS,
                                                         "2026-01-03"), [10, 11, 12, 13]))
        rows = sorted(tuple(r) for r in lake.read(LABELS).select("user_id", "dt").collect())
        print(json.dumps({{"format": lake.format, "refused": refused, "unchanged": same,
                          "rows": rows, "retries": retries}}))
    """))
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["format"] == "delta"
    assert "refusing row outside partition dt=2026-01-01: dt=2026-01-02" in report["refused"]
    assert report["unchanged"]
    # day 1 kept, the refused row nowhere, day 3 holds exactly one writer's row
    assert report["rows"][0] == [1, "2026-01-01"]
    assert len(report["rows"]) == 2 and report["rows"][1][1] == "2026-01-03"
    assert all("commit conflict" in line for line in report["retries"])
