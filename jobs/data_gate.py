"""The data gate: checks on the label days (and their training set) before training.

Every label day must have labels and both profiles; then each day's label count is held to
the trailing median, its positive rate, key null rates and quarantine rate to thresholds;
the leakage audit must pass; and the training set must keep (nearly) every label. The
checks are pure functions of plain values; `present_days`, `quarantine_rates` and
`collect_label_stats` do the Spark I/O, `run_data_gate` puts them together. The report
format is `features.checks`'s, shared with the model gate.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features.catalog import ANCHOR_PROFILES, LABELS, QUARANTINE, RAW_WATCH_SESSIONS, USER_PROFILES
from features.checks import FAIL, PASS, SKIP, at_least, at_most, check, gate_report
from features.days import add_days
from features.manifest import TrainingSetManifest
from jobs.ingest import SESSIONS_SOURCE
from jobs.lake import Lake
from jobs.leakage_audit import audit_day

REQUIRED_TABLES = (LABELS, USER_PROFILES, ANCHOR_PROFILES)
LABEL_KEYS = ("user_id", "anchor_id", "label")


class DataGateConfig(BaseModel):
    """Thresholds of the data gate. Rates are fractions in [0, 1]; build it from overrides
    with `features.checks.config_from(DataGateConfig, overrides)`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # label days before each day whose median row count it is held to
    trailing_days: int = Field(7, ge=1, le=365)
    min_count_ratio: float = Field(0.5, ge=0.0)  # a day's label rows / trailing median
    max_count_ratio: float = Field(2.0, ge=0.0)
    min_positive_rate: float = Field(0.02, ge=0.0, le=1.0)
    max_positive_rate: float = Field(0.98, ge=0.0, le=1.0)
    max_key_null_rate: float = Field(0.0, ge=0.0, le=1.0)  # null ids or labels are bugs
    max_quarantine_rate: float = Field(0.05, ge=0.0, le=1.0)  # of the day's session lines
    min_join_coverage: float = Field(0.95, ge=0.0, le=1.0)  # examples / label rows
    min_train_rows: int = Field(1, ge=0)
    min_validation_rows: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> DataGateConfig:
        for low, high in (("min_count_ratio", "max_count_ratio"),
                          ("min_positive_rate", "max_positive_rate")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low)}) is above {high} "
                                 f"({getattr(self, high)})")
        return self


# --- checks -----------------------------------------------------------------------------

def presence_checks(label_days: Sequence[str], present: Mapping[str, Iterable[str]]) -> list:
    """Every label day has a partition in each table of `present` (table -> days)."""
    checks = []
    for table, days in present.items():
        missing = sorted(set(label_days) - set(days))
        checks.append(check(f"present[{table}]", FAIL if missing else PASS,
                            f"{len(label_days) - len(missing)}/{len(label_days)} days",
                            "all label days", f"missing {', '.join(missing)}" if missing else ""))
    return checks


def _trailing_median(counts: Mapping[str, int], day: str, n: int) -> float | None:
    before = sorted(d for d in counts if d < day)[-n:]
    return statistics.median(counts[d] for d in before) if before else None


def label_day_checks(stats: Mapping[str, Any], config: DataGateConfig) -> list[dict]:
    """Row count vs the trailing median, positive rate, key nulls and quarantine rate of
    each label day. `stats`: label_days, counts (day -> rows, trailing days included),
    positive_rates, null_rates (day -> column -> rate), quarantine_rates (day -> rate)."""
    checks = []
    for day in stats["label_days"]:
        rows = stats["counts"].get(day, 0)
        median = _trailing_median(stats["counts"], day, config.trailing_days)
        if median is None:
            checks.append(check(f"label_rows_vs_median[{day}]", SKIP, rows, None,
                                "no earlier label day to compare with"))
        else:
            ratio = rows / median if median else math.inf
            ok = config.min_count_ratio <= ratio <= config.max_count_ratio
            checks.append(check(f"label_rows_vs_median[{day}]", PASS if ok else FAIL,
                                round(ratio, 4),
                                f"in [{config.min_count_ratio}, {config.max_count_ratio}]",
                                f"{rows} rows, trailing median {median}"))
        rate = stats["positive_rates"].get(day)
        ok = rate is not None and config.min_positive_rate <= rate <= config.max_positive_rate
        checks.append(check(f"positive_rate[{day}]", PASS if ok else FAIL, rate,
                            f"in [{config.min_positive_rate}, {config.max_positive_rate}]"))
        for column, null_rate in sorted(stats["null_rates"].get(day, {}).items()):
            checks.append(at_most(f"null_rate[{day}][{column}]", null_rate,
                                  config.max_key_null_rate))
        checks.append(at_most(f"quarantine_rate[{day}]", stats["quarantine_rates"].get(day),
                              config.max_quarantine_rate))
    return checks


def leakage_checks(audits: Mapping[str, Mapping[str, Any]]) -> list[dict]:
    """One check per label day from jobs.leakage_audit.audit_day reports."""
    checks = []
    for day, audit in sorted(audits.items()):
        bad = {table: {k: t[k] for k in ("rows", "rows_reading_day_or_later",
                                         "rows_before_window")}
               for table, t in audit["tables"].items() if not t["ok"]}
        checks.append(check(f"leakage_audit[{day}]", PASS if audit["ok"] else FAIL,
                            "ok" if audit["ok"] else bad, "no row reads day >= D or "
                            "before its window, every table has rows"))
    return checks


def training_set_checks(manifest: TrainingSetManifest, label_rows: int,
                        config: DataGateConfig) -> list[dict]:
    """Counts of the assembled training set against the labels it came from."""
    train, validation = manifest.counts.train.rows, manifest.counts.validation.rows
    coverage = (train + validation) / label_rows if label_rows else None
    return [
        at_least("train_rows", train, config.min_train_rows),
        at_least("validation_rows", validation, config.min_validation_rows),
        at_least("join_coverage", None if coverage is None else round(coverage, 6),
                 config.min_join_coverage, f"{train + validation} examples from "
                                           f"{label_rows} labels"),
    ]


# --- I/O --------------------------------------------------------------------------------

def present_days(lake: Lake) -> dict[str, set[str]]:
    """Partitions of the tables a training set needs, from table metadata (no scan)."""
    return {spec.name: lake.days(spec) for spec in REQUIRED_TABLES}


def _rows_per_day(df: DataFrame) -> dict[str, int]:
    return {r["dt"]: r["n"] for r in df.groupBy("dt").agg(F.count(F.lit(1)).alias("n"))
            .collect()}


def quarantine_rates(lake: Lake, days: Sequence[str]) -> dict[str, float | None]:
    """Quarantined session lines / all session lines of each day (None: nothing ingested)."""
    start, end = min(days), max(days)
    accepted = _rows_per_day(lake.read_days(RAW_WATCH_SESSIONS, start, end))
    rejected = _rows_per_day(lake.read_days(QUARANTINE, start, end)
                             .where(F.col("source") == SESSIONS_SOURCE))
    rates = {}
    for day in days:
        total = accepted.get(day, 0) + rejected.get(day, 0)
        rates[day] = rejected.get(day, 0) / total if total else None
    return rates


def collect_label_stats(lake: Lake, label_days: Sequence[str], trailing_days: int) -> dict:
    """Per-day label counts (with trailing days), positive rates and key null rates."""
    first = add_days(min(label_days), -trailing_days)
    rows = lake.read_days(LABELS, first, max(label_days)).groupBy("dt").agg(
        F.count(F.lit(1)).alias("rows"), F.avg("label").alias("positive_rate"),
        *[F.avg(F.col(k).isNull().cast("double")).alias(f"null_{k}") for k in LABEL_KEYS],
    ).collect()
    by_day = {r["dt"]: r for r in rows}
    return {
        "label_days": list(label_days),
        "counts": {d: r["rows"] for d, r in by_day.items()},
        "positive_rates": {d: by_day[d]["positive_rate"] for d in label_days if d in by_day},
        "null_rates": {d: {k: by_day[d][f"null_{k}"] for k in LABEL_KEYS}
                       for d in label_days if d in by_day},
        "quarantine_rates": quarantine_rates(lake, label_days),
    }


def run_data_gate(lake: Lake, label_days: Sequence[str], manifest: TrainingSetManifest | None,
                  config: DataGateConfig) -> dict:
    """Every data check of the label days (and of the training set, when given); nothing
    else is read when a label day is missing."""
    checks = presence_checks(label_days, present_days(lake))
    if all(c["status"] == PASS for c in checks):
        stats = collect_label_stats(lake, label_days, config.trailing_days)
        checks += leakage_checks({d: audit_day(lake, d) for d in label_days})
        checks += label_day_checks(stats, config)
        if manifest is not None:
            label_rows = sum(stats["counts"].get(d, 0) for d in label_days)
            checks += training_set_checks(manifest, label_rows, config)
    return gate_report("data_gate", checks, label_days=list(label_days),
                       config=config.model_dump())
