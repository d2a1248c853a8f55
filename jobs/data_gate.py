"""The data gate: checks on the label days (and their training set) before training.

Every label day must have labels and both profiles; then each day's label count is held to
the trailing median, its positive rate, key null rates and quarantine rate to thresholds;
the leakage audit must pass; and the training set must keep (nearly) every label. The
checks are pure functions of plain values; `present_days`, `quarantine_rates` and
`collect_label_stats` do the Spark I/O, `run_data_gate` puts them together. The report
format is `features.checks`'s, shared with the model gate.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from features.catalog import ANCHOR_PROFILES, LABELS, QUARANTINE, RAW_WATCH_SESSIONS, USER_PROFILES
from features.checks import FAIL, PASS, SKIP, WARN, at_least, at_most, check, gate_report
from features.days import add_days
from features.manifest import TrainingSetManifest
from jobs.ingest import SESSIONS_SOURCE
from jobs.lake import Lake
from jobs.leakage_audit import audit_day

REQUIRED_TABLES = (LABELS, USER_PROFILES, ANCHOR_PROFILES)
LABEL_KEYS = ("user_id", "anchor_id", "label")


class DataGateConfig(BaseModel):
    """Thresholds of the data gate. Rates are fractions in [0, 1]; build it from overrides
    with `features.checks.config_from(DataGateConfig, overrides)`.

    The defaults pass a sparse real log (tens of label rows a day), a positives-only log
    and the simulator, and still fail a broken day: a tenfold volume drop on a day whose
    trailing median has enough rows to judge, or a day with no positives at that volume.
    A ratio or a rate is only judged with enough rows behind it (`min_rows_*`); below that
    the check is skipped and says so, and the pooled rate over all label days is judged.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # label days before each day whose median row count it is held to
    trailing_days: int = Field(7, ge=1, le=365)
    min_count_ratio: float = Field(0.3, ge=0.0, allow_inf_nan=False)  # rows / trailing median
    max_count_ratio: float = Field(3.0, ge=0.0, allow_inf_nan=False)
    # the volume ratio is judged only when the trailing median has this many rows
    min_rows_for_ratio: int = Field(100, ge=1)
    min_positive_rate: float = Field(0.02, ge=0.0, le=1.0)
    # not applied to a positives-only log (no negative label in the range and its trailing
    # days): such a log relies on in-batch and sampled negatives
    max_positive_rate: float = Field(0.98, ge=0.0, le=1.0)
    # a day's positive rate is judged only with this many label rows
    min_rows_for_rate: int = Field(100, ge=1)
    max_key_null_rate: float = Field(0.0, ge=0.0, le=1.0)  # null ids or labels are bugs
    max_quarantine_rate: float = Field(0.05, ge=0.0, le=1.0)  # of the day's session lines
    # warn when a day's quarantine rate is this much above its trailing median
    max_quarantine_jump: float = Field(0.01, ge=0.0, le=1.0)
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
    """Every label day is complete in each table of `present` (table -> days)."""
    checks = []
    for table, days in present.items():
        missing = sorted(set(label_days) - set(days))
        checks.append(check(f"present[{table}]", FAIL if missing else PASS,
                            f"{len(label_days) - len(missing)}/{len(label_days)} days",
                            "all label days", f"missing {', '.join(missing)}" if missing else ""))
    return checks


def _trailing(values: Mapping[str, Any], day: str, n: int) -> list:
    return [values[d] for d in sorted(d for d in values if d < day)[-n:]
            if values[d] is not None]


def _trailing_median(counts: Mapping[str, int], day: str, n: int) -> float | None:
    before = _trailing(counts, day, n)
    return statistics.median(before) if before else None


def positives_only(stats: Mapping[str, Any]) -> bool:
    """True when no label day (trailing days included) has a negative label and some have
    rows: a log of positives only (what most real logs record)."""
    negatives = stats.get("negatives")
    return bool(negatives) and sum(stats["counts"].values()) > 0 \
        and not any(negatives.values())


def _rate_check(name: str, rate: float | None, rows: int, config: DataGateConfig,
                only_positives: bool) -> dict:
    if rows < config.min_rows_for_rate:
        return check(name, SKIP, rate, f">= {config.min_rows_for_rate} rows to judge",
                     f"{rows} label rows: too few to judge a rate")
    high = 1.0 if only_positives else config.max_positive_rate
    ok = rate is not None and config.min_positive_rate <= rate <= high
    note = "positives-only log: no upper bound" if only_positives else ""
    return check(name, PASS if ok else FAIL, rate, f"in [{config.min_positive_rate}, {high}]",
                 note)


def label_day_checks(stats: Mapping[str, Any], config: DataGateConfig) -> list[dict]:
    """Row count vs the trailing median, positive rate, key nulls and quarantine rate of
    each label day, then the pooled positive rate. `stats`: label_days, counts (day -> rows,
    trailing days included), positive_rates, null_rates (day -> column -> rate),
    quarantine_rates (day -> rate, None when the day had no session lines, trailing days
    included), optional negatives (day -> negative labels)."""
    checks = []
    only_positives = positives_only(stats)
    if only_positives:
        checks.append(check("negatives", PASS, 0, None,
                            "positives-only log: no negative labels; training relies on "
                            "in-batch and sampled negatives"))
    q_rates = stats["quarantine_rates"]
    for day in stats["label_days"]:
        rows = stats["counts"].get(day, 0)
        median = _trailing_median(stats["counts"], day, config.trailing_days)
        if median is None:
            checks.append(check(f"label_rows_vs_median[{day}]", SKIP, rows, None,
                                "no earlier label day to compare with"))
        elif median < config.min_rows_for_ratio:
            checks.append(check(f"label_rows_vs_median[{day}]", SKIP, rows,
                                f"median >= {config.min_rows_for_ratio} rows to judge",
                                f"trailing median {median} rows: too few to judge a ratio"))
        else:
            ratio = rows / median
            ok = config.min_count_ratio <= ratio <= config.max_count_ratio
            checks.append(check(f"label_rows_vs_median[{day}]", PASS if ok else FAIL,
                                round(ratio, 4),
                                f"in [{config.min_count_ratio}, {config.max_count_ratio}]",
                                f"{rows} rows, trailing median {median}"))
        checks.append(_rate_check(f"positive_rate[{day}]", stats["positive_rates"].get(day),
                                  rows, config, only_positives))
        for column, null_rate in sorted(stats["null_rates"].get(day, {}).items()):
            checks.append(at_most(f"null_rate[{day}][{column}]", null_rate,
                                  config.max_key_null_rate))
        rate = q_rates.get(day)
        if rate is None:
            checks.append(check(f"quarantine_rate[{day}]", SKIP, None,
                                f"<= {config.max_quarantine_rate}",
                                "no session lines that day (an empty day)"))
            continue
        checks.append(at_most(f"quarantine_rate[{day}]", rate, config.max_quarantine_rate))
        before = _trailing(q_rates, day, config.trailing_days)
        if before:
            jump = rate - statistics.median(before)
            checks.append(check(f"quarantine_jump[{day}]",
                                WARN if jump > config.max_quarantine_jump else PASS,
                                round(jump, 6), f"<= {config.max_quarantine_jump}",
                                f"quarantine rate {rate:.4f} vs trailing median "
                                f"{statistics.median(before):.4f}"))
    days = stats["label_days"]
    total = sum(stats["counts"].get(d, 0) for d in days)
    positives = sum(stats["positive_rates"].get(d, 0) * stats["counts"].get(d, 0)
                    for d in days if stats["positive_rates"].get(d) is not None)
    checks.append(_rate_check("positive_rate[all]", positives / total if total else None,
                              total, config, only_positives))
    return checks


def leakage_checks(audits: Mapping[str, Mapping[str, Any]]) -> list[dict]:
    """One check per label day from jobs.leakage_audit.audit_day reports."""
    checks = []
    for day, audit in sorted(audits.items()):
        bad = {table: {k: t.get(k) for k in ("rows", "rows_reading_day_or_later",
                                             "rows_before_window", "problem")}
               for table, t in audit["tables"].items() if not t["ok"]}
        if audit.get("problem"):
            bad["day"] = audit["problem"]
        checks.append(check(f"leakage_audit[{day}]", PASS if audit["ok"] else FAIL,
                            "ok" if audit["ok"] else bad, "no row reads day >= D or "
                            "before its window; the rows its day record counted"))
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
    """Complete days (features.day_status) of the tables a training set needs: an empty
    label day is present, an interrupted or out-of-date one is not."""
    ledger = lake.ledger()
    labels, profiles = ledger.complete_days("labels"), ledger.complete_days("profiles")
    return {LABELS.name: labels, USER_PROFILES.name: profiles, ANCHOR_PROFILES.name: profiles}


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
        F.sum((F.col("label") == 0).cast("long")).alias("negatives"),
        *[F.avg(F.col(k).isNull().cast("double")).alias(f"null_{k}") for k in LABEL_KEYS],
    ).collect()
    by_day = {r["dt"]: r for r in rows}
    # complete label days without rows count as zero (an empty day is a day)
    complete = {d for d in lake.ledger().complete_days("labels") if first <= d <= max(label_days)}
    trailing = sorted(complete | set(by_day))
    return {
        "label_days": list(label_days),
        "counts": {d: by_day[d]["rows"] if d in by_day else 0 for d in trailing},
        "negatives": {d: by_day[d]["negatives"] if d in by_day else 0 for d in trailing},
        "positive_rates": {d: by_day[d]["positive_rate"] for d in label_days if d in by_day},
        "null_rates": {d: {k: by_day[d][f"null_{k}"] for k in LABEL_KEYS}
                       for d in label_days if d in by_day},
        "quarantine_rates": quarantine_rates(lake, sorted(set(label_days) | set(trailing))),
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
