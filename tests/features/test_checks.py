"""Gate report framework: checks, verdicts, summaries and typed configs."""

from __future__ import annotations

import json
import math

import pytest
from pydantic import BaseModel, ConfigDict, Field

from features.checks import (
    FAIL,
    PASS,
    SKIP,
    at_least,
    at_most,
    check,
    config_from,
    failure_summary,
    gate_report,
    write_report,
)

pytestmark = pytest.mark.unit


class Thresholds(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    min_rows: int = Field(1, ge=0)
    max_rate: float = Field(0.5, ge=0.0, le=1.0)


def test_config_from_applies_overrides_and_defaults():
    assert config_from(Thresholds) == Thresholds()
    assert config_from(Thresholds, {"max_rate": "0.25"}).max_rate == 0.25


@pytest.mark.parametrize("overrides, fragment", [
    ({"max_rows": 3}, "Thresholds: max_rows: Extra inputs are not permitted"),
    ({"min_rows": "many"}, "Thresholds: min_rows: Input should be a valid integer"),
    ({"max_rate": [0.1]}, "max_rate: Input should be a valid number"),
    ({"max_rate": 2}, "max_rate: Input should be less than or equal to 1"),
])
def test_config_from_refuses_unknown_fields_and_wrong_types(overrides, fragment):
    with pytest.raises(ValueError, match=fragment) as error:
        config_from(Thresholds, overrides)
    assert "\n" not in str(error.value)


def test_bounds_fail_on_missing_values():
    assert at_least("n", 3, 3)["status"] == PASS
    assert at_least("n", 2.99, 3)["status"] == FAIL
    assert at_most("r", 0.5, 0.5)["status"] == PASS
    for missing in (None, math.nan):  # no value is never a pass
        assert at_least("n", missing, 0)["status"] == FAIL
        assert at_most("r", missing, 1)["status"] == FAIL


def test_report_verdict_and_summary(tmp_path):
    checks = [at_least("rows", 0, 1, "no rows"), check("cold", SKIP, note="none"),
              at_most("rate", 0.1, 0.5)]
    report = gate_report("data_gate", checks, day="2026-01-01")
    assert (report["passed"], report["failed"], report["day"]) == (False, ["rows"],
                                                                   "2026-01-01")
    assert failure_summary(report) == ("data_gate failed 1 of 3 checks:\n"
                                       "rows: value 0 not >= 1 (no rows)")
    assert gate_report("g", [check("cold", SKIP)])["passed"]  # skipped is not failed
    many = gate_report("g", [at_least(f"c{i}", 0, 1) for i in range(12)])
    assert failure_summary(many, limit=10).endswith("... and 2 more")
    path = write_report({**report, "nan": math.nan}, tmp_path / "r" / "report.json")
    assert json.loads(path.read_text())["nan"] is None  # strict JSON
