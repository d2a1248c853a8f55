"""The data gate: each check on values worked out by hand, the report on a real tiny lake.

Moved from tests/training/test_gates.py with jobs.data_gate; every assertion kept (the
config errors now read as pydantic's, through features.checks.config_from).
"""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from features.checks import config_from, failure_summary
from features.days import add_days, days_between
from features.manifest import TrainingSetManifest
from jobs import data_gate
from jobs.data_gate import DataGateConfig

START, DAYS = "2026-02-01", 6
END = add_days(START, DAYS - 1)


def _status(checks: list[dict]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in checks}


@pytest.mark.unit
def test_config_overrides_are_checked():
    config = config_from(DataGateConfig, {"max_quarantine_rate": "0.1", "trailing_days": 3})
    assert (config.max_quarantine_rate, config.trailing_days) == (0.1, 3)
    with pytest.raises(ValueError, match="DataGateConfig: max_null_rate: Extra inputs"):
        config_from(DataGateConfig, {"max_null_rate": 0.1})
    with pytest.raises(ValueError, match="min_positive_rate: Input should be a valid number"):
        config_from(DataGateConfig, {"min_positive_rate": "high"})
    with pytest.raises(ValidationError, match="frozen"):
        config.trailing_days = 1


@pytest.mark.parametrize("overrides, fragment", [
    ({"trailing_days": 0}, "trailing_days: Input should be greater than or equal to 1"),
    ({"trailing_days": 2.5}, "trailing_days: Input should be a valid integer"),
    ({"max_quarantine_rate": 1.5}, "max_quarantine_rate: Input should be less than or equal "
                                   "to 1"),
    ({"min_join_coverage": -0.1}, "min_join_coverage: Input should be greater than or equal"),
    ({"min_positive_rate": 0.9, "max_positive_rate": 0.1},
     r"min_positive_rate \(0.9\) is above max_positive_rate \(0.1\)"),
    ({"min_count_ratio": 4.0}, r"min_count_ratio \(4.0\) is above max_count_ratio"),
    ({"max_count_ratio": "inf"}, "max_count_ratio: Input should be a finite number"),
    ({"min_rows_for_rate": 0}, "min_rows_for_rate: Input should be greater than or equal to 1"),
])
@pytest.mark.unit
def test_config_bounds(overrides, fragment):
    with pytest.raises(ValueError, match=fragment):
        config_from(DataGateConfig, overrides)


@pytest.mark.unit
def test_presence_names_every_missing_day():
    checks = data_gate.presence_checks(["d1", "d2", "d3"], {"labels": {"d1", "d2", "d3"},
                                                            "user_profiles": {"d1"}})
    assert _status(checks) == {"present[labels]": "pass", "present[user_profiles]": "fail"}
    assert checks[1]["note"] == "missing d2, d3" and checks[1]["value"] == "1/3 days"


STATS = {
    "label_days": ["2026-01-01", "2026-01-04", "2026-01-05"],
    # trailing median before 01-04 is 100 (01-01..01-03); before 01-05 it is 100 too
    "counts": {"2026-01-01": 100, "2026-01-02": 90, "2026-01-03": 110, "2026-01-04": 100,
               "2026-01-05": 40},
    "positive_rates": {"2026-01-01": 0.5, "2026-01-04": 0.5, "2026-01-05": 0.001},
    "null_rates": {"2026-01-01": {"user_id": 0.0}, "2026-01-04": {"user_id": 0.01},
                   "2026-01-05": {"user_id": 0.0}},
    "quarantine_rates": {"2026-01-01": 0.01, "2026-01-04": 0.2, "2026-01-05": None},
}


@pytest.mark.unit
def test_label_day_checks_hold_each_day_to_its_thresholds():
    config = DataGateConfig(trailing_days=3, min_count_ratio=0.5, min_rows_for_rate=10)
    status = _status(data_gate.label_day_checks(STATS, config))
    assert status == {
        "label_rows_vs_median[2026-01-01]": "skip",  # nothing before the first day
        "positive_rate[2026-01-01]": "pass",
        "null_rate[2026-01-01][user_id]": "pass",
        "quarantine_rate[2026-01-01]": "pass",
        "label_rows_vs_median[2026-01-04]": "pass",  # 100 / 100
        "positive_rate[2026-01-04]": "pass",
        "null_rate[2026-01-04][user_id]": "fail",  # 1% null ids, none allowed
        "quarantine_rate[2026-01-04]": "fail",  # 20% > 5%
        "quarantine_jump[2026-01-04]": "warn",  # 20% against a trailing median of 1%
        "label_rows_vs_median[2026-01-05]": "fail",  # 40 / median(90, 110, 100) = 0.4 < 0.5
        "positive_rate[2026-01-05]": "fail",  # 0.1% < 2%
        "null_rate[2026-01-05][user_id]": "pass",
        "quarantine_rate[2026-01-05]": "skip",  # no session lines: an empty day
        "positive_rate[all]": "pass",  # (50 + 50 + 0.04) / 240
    }


def _days(counts: list[int], positives: list[int], quarantine=None) -> dict:
    """Stats of consecutive label days from 2026-01-01 (every day a label day)."""
    days = days_between("2026-01-01", add_days("2026-01-01", len(counts) - 1))
    return {"label_days": days, "counts": dict(zip(days, counts, strict=True)),
            "positive_rates": {d: p / n if n else None
                               for d, n, p in zip(days, counts, positives, strict=True)},
            "negatives": {d: n - p for d, n, p in zip(days, counts, positives, strict=True)},
            "null_rates": {}, "quarantine_rates": dict(zip(days, quarantine or
                                                           [0.01] * len(days), strict=True))}


def _failed(stats: dict, config: DataGateConfig | None = None) -> list[str]:
    return [c["name"] for c in data_gate.label_day_checks(stats, config or DataGateConfig())
            if c["status"] == "fail"]


@pytest.mark.unit
def test_default_gate_passes_a_sparse_real_log():
    # ~50 label rows a day swinging 10..90, a handful of rows at rate 1.0 on one day:
    # nothing has the support to be judged on its own, the pooled rate is normal.
    counts = [50, 12, 90, 45, 5, 60, 30, 75, 40, 55]
    positives = [20, 5, 30, 20, 5, 25, 10, 30, 15, 20]
    assert _failed(_days(counts, positives)) == []


@pytest.mark.unit
def test_default_gate_passes_a_positives_only_log():
    counts = [400, 380, 420, 390, 410, 405, 395, 400]
    checks = data_gate.label_day_checks(_days(counts, counts), DataGateConfig())
    assert [c["name"] for c in checks if c["status"] == "fail"] == []
    negatives = next(c for c in checks if c["name"] == "negatives")
    assert negatives["status"] == "pass" and "in-batch and sampled negatives" in negatives["note"]


@pytest.mark.unit
def test_default_gate_fails_a_broken_day_at_normal_volume():
    counts = [1000] * 8
    positives = [300] * 8
    drop = _days(counts[:-1] + [100], positives[:-1] + [30])  # tenfold volume drop
    assert _failed(drop) == ["label_rows_vs_median[2026-01-08]"]
    none = _days(counts, positives[:-1] + [0])  # normal volume, not one positive
    assert _failed(none) == ["positive_rate[2026-01-08]"]
    # a log with negatives whose last day lost them all is not a positives-only log
    all_pos = _days(counts, positives[:-1] + [1000])
    assert _failed(all_pos) == ["positive_rate[2026-01-08]"]


@pytest.mark.unit
def test_a_quarantine_jump_is_flagged_not_failed():
    stats = _days([1000] * 8, [300] * 8, quarantine=[0.001] * 7 + [0.04])
    checks = {c["name"]: c for c in data_gate.label_day_checks(stats, DataGateConfig())}
    assert checks["quarantine_jump[2026-01-08]"]["status"] == "warn"
    assert checks["quarantine_rate[2026-01-08]"]["status"] == "pass"  # 4% <= 5%
    from features.checks import gate_report

    report = gate_report("data_gate", list(checks.values()))
    assert report["passed"] and report["warned"] == ["quarantine_jump[2026-01-08]"]


def _manifest(train_rows: int, validation_rows: int) -> TrainingSetManifest:
    return TrainingSetManifest.model_validate({
        "run_id": "r", "end": "2026-01-05", "days": 2, "window": 7, "seed": 7, "shards": 1,
        "train_days": ["2026-01-04"], "holdout_days": ["2026-01-05"],
        "tables": {"train": "t", "validation": "v", "candidates": "c"}, "format": "delta",
        "counts": {"train": {"rows": train_rows}, "validation": {"rows": validation_rows},
                   "candidates": 0},
        "source_versions": {}, "vocabularies": {}})


@pytest.mark.unit
def test_training_set_checks_count_labels_lost_in_the_join():
    status = _status(data_gate.training_set_checks(_manifest(90, 0), 100, DataGateConfig()))
    assert status == {"train_rows": "pass", "validation_rows": "fail",
                      "join_coverage": "fail"}  # 90 of 100 labels < 95%


@pytest.mark.unit
def test_leakage_checks_report_the_offending_tables():
    ok = {"ok": True, "tables": {"user_profiles": {"ok": True}}}
    bad = {"ok": False, "tables": {"user_profiles": {
        "ok": False, "rows": 10, "rows_reading_day_or_later": 10, "rows_before_window": 0}}}
    checks = data_gate.leakage_checks({"d1": ok, "d2": bad})
    assert _status(checks) == {"leakage_audit[d1]": "pass", "leakage_audit[d2]": "fail"}
    assert checks[1]["value"]["user_profiles"]["rows_reading_day_or_later"] == 10


@pytest.fixture(scope="module")
def tiny_training_set(tmp_path_factory, spark):
    """A simulated tiny lake with a training set, through the real jobs (as the training
    tests build theirs)."""
    from jobs.lake import Lake
    from jobs.run_days import run_days
    from jobs.simulate import SimParams, simulate
    from jobs.training_set import run

    root = tmp_path_factory.mktemp("gate")
    landing = root / "landing"
    simulate(SimParams(start=date.fromisoformat(START), days=DAYS, scale="tiny", seed=3),
             landing, progress=None)
    lake = Lake(root / "lake", spark)
    run_days(lake, days_between(START, END), ["ingest", "daily_stats", "profiles", "labels"],
             window=2, last_k=5, allow_partial=True, landing=str(landing))
    return {"lake": lake.root, "manifest": run(lake, END, days=3, window=2, run_id="tiny",
                                               shards=3)}


@pytest.mark.engine
def test_data_gate_on_a_tiny_lake(tiny_training_set, spark):
    from jobs.lake import Lake

    lake = Lake(tiny_training_set["lake"], spark)
    manifest = tiny_training_set["manifest"]
    days = days_between(add_days(manifest.end, -(manifest.days - 1)), manifest.end)
    report = data_gate.run_data_gate(lake, days, manifest, DataGateConfig())
    assert report["passed"], failure_summary(report)
    names = _status(report["checks"])
    assert {f"leakage_audit[{d}]" for d in days} <= set(names)
    assert names["join_coverage"] == "pass"
    assert report["config"] == DataGateConfig().model_dump()

    # (min above the default max 0.98 is refused as a config error: raise both)
    strict = data_gate.run_data_gate(lake, days, manifest, DataGateConfig(
        min_positive_rate=0.99, max_positive_rate=1.0))
    assert strict["failed"] == [f"positive_rate[{d}]" for d in days] + ["positive_rate[all]"]

    early = days_between("2026-01-29", "2026-02-01")  # before the simulated history
    absent = data_gate.run_data_gate(lake, early, None, DataGateConfig())
    assert set(absent["failed"]) == {"present[labels]", "present[user_profiles]",
                                     "present[anchor_profiles]"}
    assert len(absent["checks"]) == 3  # nothing else is read when days are missing
