"""Parity: the jobs on JVM Spark local (with delta-spark) equal those on Sail, row for row,
and a Delta lake is engine-neutral: any job of a day may run on either engine."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from features.catalog import (
    ALL_TABLES,
    ANCHOR_PROFILES,
    DAILY_ANCHOR_STATS,
    DAILY_USER_ANCHOR,
    DAILY_USER_STATS,
    LABELS,
    USER_PROFILES,
)
from features.days import days_between
from features.examples import CANDIDATES, TRAIN_EXAMPLES, VALIDATION_EXAMPLES
from features.manifest import run_folder
from jobs import training_set
from jobs.lake import Lake
from jobs.run_days import run_days
from jobs.simulator import make_landing
from tests.conftest import run_code_on_jvm, run_on_jvm
from tests.jobs import tiny_lake
from tests.jobs.tiny_lake import DAYS

pytestmark = pytest.mark.e2e

BUILT = (DAILY_USER_STATS, DAILY_ANCHOR_STATS, DAILY_USER_ANCHOR, USER_PROFILES,
         ANCHOR_PROFILES, LABELS)


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


def test_feature_jobs_match_on_jvm_spark(lake, jvm_lake):
    """Sail writes the ingested tables of both lakes; JVM Spark builds the features of one
    from them (Delta both ways), Sail those of the other."""
    tiny_lake.build(lake, seed=11)
    tiny_lake.build(jvm_lake, seed=11)
    steps = ["daily_stats", "profiles", "labels"]
    days = DAYS[:6]  # days 3..5 get full 3-day windows
    run_days(lake, days, steps, window=3, last_k=3, allow_partial=True)
    done = run_on_jvm("jobs.run_days", "--start", days[0], "--end", days[-1], "--steps",
                      ",".join(steps), "--window", "3", "--last-k", "3", "--allow-partial",
                      "--lake", str(jvm_lake.root))
    sail = {spec.name: _rows(lake, spec) for spec in BUILT}
    for spec in BUILT:
        assert _rows(jvm_lake, spec) == sail[spec.name], spec.name
    # Rows the inputs imply, so that two empty tables cannot pass as equal: a profile for
    # each entity known that day (12 users and 6 anchors from day 0, one more of each from
    # day 5), a daily anchor row for each anchor live that day, labels every day.
    assert len(sail["user_profiles"]) == 12 * 6 + 1
    assert len(sail["anchor_profiles"]) == 6 * 6 + 1
    assert len(sail["daily_anchor_stats"]) == 6 * 6 + 1
    assert {row[-1] for row in sail["labels"]} == set(days)
    # the JVM job's summary counts what it wrote, as the Sail tables hold it
    assert done.stdout.splitlines()[-1].endswith(
        f"user_profiles {len(sail['user_profiles'])} rows, "
        f"anchor_profiles {len(sail['anchor_profiles'])} rows, "
        f"labels {len(sail['labels'])} rows")


TINY_DAYS = days_between("2026-05-01", "2026-05-03")
FEATURES = ["daily_stats", "profiles", "labels"]
RUN_ID = "parity"


def _jvm_steps(lake: Path, steps: list[str], landing: Path) -> str:
    """Python source running `steps` over the tiny days on `lake` (in the JVM child)."""
    return (f"run_days(Lake({str(lake)!r}, spark), {TINY_DAYS!r}, {steps!r}, window=2, "
            f"last_k=3, allow_partial=True, landing={str(landing)!r})")


def _training_set(lake: Lake) -> dict:
    manifest = training_set.run(lake, TINY_DAYS[-1], len(TINY_DAYS), 2, RUN_ID, shards=2)
    return json.loads(manifest.model_dump_json())


def test_a_lake_is_engine_neutral(tmp_path, spark):
    """The same three tiny days built three ways, every table compared: all on Sail; ingest
    on Sail, features on JVM Spark, training set on Sail; and the reverse."""
    landing = make_landing(tmp_path, TINY_DAYS[0], len(TINY_DAYS), scale="tiny", seed=3)
    days = TINY_DAYS
    sail, sail_jvm_sail, jvm_sail_jvm = (Lake(tmp_path / name, spark)
                                         for name in ("sail", "sail_jvm_sail", "jvm_sail_jvm"))
    run_days(sail, days, ["ingest", *FEATURES], window=2, last_k=3, allow_partial=True,
             landing=str(landing))
    expected_manifest = _training_set(sail)
    run_days(sail_jvm_sail, days, ["ingest"], window=2, last_k=3, landing=str(landing))

    # one JVM child for both lakes' JVM steps before the Sail ones: starts cost seconds
    run_code_on_jvm(textwrap.dedent(f"""
        from jobs.engine import spark_session
        from jobs.lake import Lake
        from jobs.run_days import run_days
        spark = spark_session()
        {_jvm_steps(sail_jvm_sail.root, FEATURES, landing)}
        {_jvm_steps(jvm_sail_jvm.root, ["ingest"], landing)}
    """))
    run_days(jvm_sail_jvm, days, FEATURES, window=2, last_k=3, allow_partial=True)
    mixed_manifest = _training_set(sail_jvm_sail)
    done = run_on_jvm("jobs.training_set", "--end", days[-1], "--days", str(len(days)),
                      "--window", "2", "--run-id", RUN_ID, "--shards", "2",
                      "--validation-days", "0", "--lake", str(jvm_sail_jvm.root))

    expected = every_table(sail, RUN_ID)
    assert len(expected) == len([s for s in ALL_TABLES if sail.exists(s)]) + 3
    assert all(expected[name] for name in ("raw_watch_sessions", "user_profiles", "labels",
                                           f"{run_folder(RUN_ID)}/train"))
    for lake in (sail_jvm_sail, jvm_sail_jvm):
        found = every_table(lake, RUN_ID)
        assert sorted(found) == sorted(expected), lake.root.name
        for name, rows in expected.items():
            assert found[name] == rows, f"{lake.root.name}: {name}"
    # the manifests count the same examples (their versions and times differ)
    for manifest in (mixed_manifest, json.loads(
            (jvm_sail_jvm.root / run_folder(RUN_ID) / "manifest.json").read_text())):
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
