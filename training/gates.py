"""Gates before and after training: a data gate on the label days and a model gate on the
exported model (a TFX-style blessing). Each returns a JSON-able report listing every check
with its value, threshold and status; the workflow fails the run when `passed` is false.

The checks are pure functions of plain values (easy to test); `collect_*` and `run_*` do
the thin I/O around them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.lake import Lake

PASS, FAIL, SKIP = "pass", "fail", "skip"
TOWERS = ("user_tower", "anchor_tower")


@dataclass(frozen=True)
class DataGateConfig:
    """Thresholds of the data gate. Rates are fractions in [0, 1]."""

    trailing_days: int = 7  # label days before each day whose median row count it is held to
    min_count_ratio: float = 0.5  # a day's label rows / trailing median, lower bound
    max_count_ratio: float = 2.0  # ... upper bound
    min_positive_rate: float = 0.02
    max_positive_rate: float = 0.98
    max_key_null_rate: float = 0.0  # nulls in ids and labels are bugs, not noise
    max_quarantine_rate: float = 0.05  # quarantined session lines / all session lines
    min_join_coverage: float = 0.95  # training-set rows / label rows (labels without profiles)
    min_train_rows: int = 1
    min_validation_rows: int = 1


@dataclass(frozen=True)
class ModelGateConfig:
    """Thresholds of the model gate (metrics of training.evaluate's metrics.json)."""

    # Demo scale (2k anchors, ~700 live): the trained model scores AUC 0.85, recall@50 0.42,
    # cold-anchor recall@50 0.18; the random baseline 0.5, 0.034 and about the same.
    min_auc: float = 0.6  # popularity scores 0.53 at demo scale
    min_recall_at_50: float = 0.05
    min_recall_lift: float = 0.02  # recall@50 - the random baseline's recall@50
    min_cold_anchor_recall_at_50: float = 0.05
    min_cold_anchor_lift: float = 0.02  # the same lift within the cold-anchor slice
    max_regression: float = 0.01  # allowed drop of each regression metric vs the champion
    regression_metrics: tuple[str, ...] = ("auc", "recall@50", "ndcg@50")
    parity_atol: float = 1e-5  # reloaded SavedModel vs in-memory embeddings


def config_from(cls: type, overrides: Mapping[str, Any] | None = None):
    """`cls()` with `overrides` applied; unknown names and wrong types are clear errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides or {}) - set(fields))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} settings {unknown}; known: {sorted(fields)}")
    values = {}
    for name, value in (overrides or {}).items():
        default = getattr(cls(), name)
        try:
            values[name] = (tuple(value) if isinstance(default, tuple)
                            else type(default)(value))
        except (TypeError, ValueError):
            raise ValueError(f"{cls.__name__}.{name} must be {type(default).__name__}, "
                             f"got {value!r}") from None
    return dataclasses.replace(cls(), **values)


# --- checks -----------------------------------------------------------------------------

def check(name: str, status: str, value: Any = None, threshold: Any = None,
          note: str = "") -> dict:
    """One line of a gate report."""
    return {"name": name, "status": status, "value": value, "threshold": threshold,
            "note": note}


def at_least(name: str, value: float | None, minimum: float, note: str = "") -> dict:
    ok = value is not None and not math.isnan(value) and value >= minimum
    return check(name, PASS if ok else FAIL, value, f">= {minimum}", note)


def at_most(name: str, value: float | None, maximum: float, note: str = "") -> dict:
    ok = value is not None and not math.isnan(value) and value <= maximum
    return check(name, PASS if ok else FAIL, value, f"<= {maximum}", note)


def gate_report(gate: str, checks: Sequence[dict], **context: Any) -> dict:
    """The report of a gate: passed when no check failed (skipped checks say why)."""
    failed = [c["name"] for c in checks if c["status"] == FAIL]
    return {"gate": gate, "passed": not failed, "failed": failed, **context,
            "checks": list(checks)}


def failure_summary(report: Mapping[str, Any], limit: int = 10) -> str:
    """One line per failed check, for the task log and the exception message."""
    lines = [f"{c['name']}: value {c['value']} not {c['threshold']}"
             + (f" ({c['note']})" if c["note"] else "")
             for c in report["checks"] if c["status"] == FAIL]
    more = f"\n... and {len(lines) - limit} more" if len(lines) > limit else ""
    return (f"{report['gate']} failed {len(lines)} of {len(report['checks'])} checks:\n"
            + "\n".join(lines[:limit]) + more)


def write_report(report: Mapping[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(path)
    return path


# --- data gate --------------------------------------------------------------------------

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


def training_set_checks(manifest: Mapping[str, Any], label_rows: int,
                        config: DataGateConfig) -> list[dict]:
    """Counts of the assembled training set against the labels it came from."""
    train = manifest["counts"]["train"]["rows"]
    validation = manifest["counts"]["validation"]["rows"]
    coverage = (train + validation) / label_rows if label_rows else None
    return [
        at_least("train_rows", train, config.min_train_rows),
        at_least("validation_rows", validation, config.min_validation_rows),
        at_least("join_coverage", None if coverage is None else round(coverage, 6),
                 config.min_join_coverage, f"{train + validation} examples from "
                                           f"{label_rows} labels"),
    ]


# --- data gate I/O ----------------------------------------------------------------------

def present_days(lake: Lake) -> dict[str, set[str]]:
    """Partitions of the tables a training set needs, from table metadata (no scan)."""
    from features.tables import ANCHOR_PROFILES, LABELS, USER_PROFILES

    return {spec.name: lake.days(spec) for spec in (LABELS, USER_PROFILES, ANCHOR_PROFILES)}


def quarantine_rates(lake: Lake, days: Sequence[str]) -> dict[str, float | None]:
    """Quarantined session lines / all session lines of each day (None: nothing ingested)."""
    from pyspark.sql import functions as F

    from features.tables import QUARANTINE, RAW_WATCH_SESSIONS

    start, end = min(days), max(days)
    accepted = {r["dt"]: r["n"] for r in lake.read_days(RAW_WATCH_SESSIONS, start, end)
                .groupBy("dt").agg(F.count(F.lit(1)).alias("n")).collect()}
    rejected = {r["dt"]: r["n"] for r in lake.read_days(QUARANTINE, start, end)
                .where(F.col("source") == "watch_sessions")
                .groupBy("dt").agg(F.count(F.lit(1)).alias("n")).collect()}
    rates = {}
    for day in days:
        total = accepted.get(day, 0) + rejected.get(day, 0)
        rates[day] = rejected.get(day, 0) / total if total else None
    return rates


def collect_label_stats(lake: Lake, label_days: Sequence[str], trailing_days: int) -> dict:
    """Per-day label counts (with trailing days), positive rates and key null rates."""
    from pyspark.sql import functions as F

    from features.days import add_days
    from features.tables import LABELS

    first = add_days(min(label_days), -trailing_days)
    keys = ("user_id", "anchor_id", "label")
    rows = lake.read_days(LABELS, first, max(label_days)).groupBy("dt").agg(
        F.count(F.lit(1)).alias("rows"), F.avg("label").alias("positive_rate"),
        *[F.avg(F.col(k).isNull().cast("double")).alias(f"null_{k}") for k in keys],
    ).collect()
    by_day = {r["dt"]: r for r in rows}
    return {
        "label_days": list(label_days),
        "counts": {d: r["rows"] for d, r in by_day.items()},
        "positive_rates": {d: by_day[d]["positive_rate"] for d in label_days if d in by_day},
        "null_rates": {d: {k: by_day[d][f"null_{k}"] for k in keys}
                       for d in label_days if d in by_day},
        "quarantine_rates": quarantine_rates(lake, label_days),
    }


def run_data_gate(lake: Lake, label_days: Sequence[str], manifest: Mapping[str, Any] | None,
                  config: DataGateConfig) -> dict:
    """Every data check of the label days (and of the training set, when given)."""
    from jobs.leakage_audit import audit_day

    checks = presence_checks(label_days, present_days(lake))
    if all(c["status"] == PASS for c in checks):
        stats = collect_label_stats(lake, label_days, config.trailing_days)
        checks += leakage_checks({d: audit_day(lake, d) for d in label_days})
        checks += label_day_checks(stats, config)
        if manifest is not None:
            label_rows = sum(stats["counts"].get(d, 0) for d in label_days)
            checks += training_set_checks(manifest, label_rows, config)
    return gate_report("data_gate", checks, label_days=list(label_days),
                       config=dataclasses.asdict(config))


# --- model gate -------------------------------------------------------------------------

def _metric(metrics: Mapping[str, Any] | None, *path: str) -> float | None:
    node: Any = metrics
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return None if node is None else float(node)


def _lift_check(name: str, ours: float | None, random: float | None, minimum: float) -> dict:
    """`ours - random` at K = 50, skipped when K covers every candidate (both are 1)."""
    if random is None:
        return check(name, FAIL, None, f">= {minimum}", "metrics have no random baseline")
    if random >= 1.0 - 1e-9:
        return check(name, SKIP, None, f">= {minimum}",
                     "random recall@50 is 1: fewer candidates than K")
    lift = None if ours is None else round(ours - random, 6)
    return at_least(name, lift, minimum, f"random baseline: {random}")


def metric_checks(metrics: Mapping[str, Any], config: ModelGateConfig) -> list[dict]:
    """Absolute floors, and lifts over the random baseline at K = 50 (overall and for cold
    anchors, the case DropoutNet is for)."""
    recall = _metric(metrics, "model", "recall@50")
    checks = [at_least("auc", _metric(metrics, "model", "auc"), config.min_auc),
              at_least("recall@50", recall, config.min_recall_at_50),
              _lift_check("recall@50_lift_over_random", recall,
                          _metric(metrics, "baselines", "random", "recall@50"),
                          config.min_recall_lift)]
    cold = _metric(metrics, "slices", "cold_anchor", "recall@50")
    if cold is None or math.isnan(cold):  # NaN: no user watched a cold anchor that day
        return checks + [check("cold_anchor_recall@50", SKIP, cold,
                               config.min_cold_anchor_recall_at_50,
                               "no positive on a cold anchor on the eval day")]
    return checks + [
        at_least("cold_anchor_recall@50", cold, config.min_cold_anchor_recall_at_50),
        _lift_check("cold_anchor_recall@50_lift_over_random", cold,
                    _metric(metrics, "baselines", "random", "slices", "cold_anchor",
                            "recall@50"), config.min_cold_anchor_lift)]


def regression_checks(metrics: Mapping[str, Any], champion: Mapping[str, Any] | None,
                      config: ModelGateConfig, champion_version: int | None = None,
                      champion_error: str | None = None) -> list:
    """No metric worse than the published model's on the same eval day (minus a margin).
    Skipped, saying why, when nothing is published or the champion could not be scored."""
    if champion is None:
        note = (f"champion v{champion_version} could not be evaluated: {champion_error}"
                if champion_error else "no published model yet")
        return [check("non_regression", SKIP, None, None, note)]
    checks = []
    for name in config.regression_metrics:
        ours, theirs = _metric(metrics, "model", name), _metric(champion, "model", name)
        if theirs is None or math.isnan(theirs):
            checks.append(check(f"non_regression[{name}]", SKIP, ours, None,
                                "champion has no such metric"))
            continue
        checks.append(at_least(f"non_regression[{name}]", ours,
                               round(theirs - config.max_regression, 6),
                               f"champion v{champion_version}: {theirs}"))
    return checks


def finite_check(name: str, values: Any) -> dict:
    """No NaN or infinity among `values` (any nested numeric array)."""
    import numpy as np

    array = np.asarray(values, dtype=np.float64)
    bad = int(array.size - np.isfinite(array).sum())
    return check(name, PASS if array.size and not bad else FAIL, f"{bad} of {array.size} "
                 "non-finite", "0 non-finite, not empty")


def parity_checks(stored: Mapping[str, Any], reloaded: Mapping[str, Any],
                  atol: float) -> list[dict]:
    """Embeddings of the reloaded SavedModels vs those of the in-memory model, per tower."""
    import numpy as np

    checks = []
    for tower in TOWERS:
        key = tower.replace("_tower", "_embeddings")
        a, b = np.asarray(stored[key], np.float64), np.asarray(reloaded[key], np.float64)
        if a.shape != b.shape:
            checks.append(check(f"reload_parity[{tower}]", FAIL, f"shape {b.shape}",
                                f"shape {a.shape}"))
            continue
        diff = float(np.max(np.abs(a - b))) if a.size else math.nan
        checks.append(at_most(f"reload_parity[{tower}]", diff, atol,
                              "max |reloaded - in-memory| embedding difference"))
    return checks


# --- model gate I/O ---------------------------------------------------------------------

def reload_embeddings(tower_dir: Path, columns: Mapping[str, Sequence[Any]]) -> Any:
    """Embeddings of `columns` through the SavedModel at `tower_dir` ("serving_default")."""
    from training.export import LoadedTower, embed

    tower = LoadedTower(tower_dir)
    missing = sorted(set(tower.specs) - set(columns))
    if missing:
        raise ValueError(f"parity sample lacks serving inputs {missing}")
    return embed(tower, columns)


def run_model_gate(export_dir: Path, metrics: Mapping[str, Any],
                   champion: Mapping[str, Any] | None, config: ModelGateConfig,
                   champion_version: int | None = None, champion_error: str | None = None,
                   reload: Callable[[Path, Mapping], Any] = reload_embeddings) -> dict:
    """Every model check of an exported model: metrics, non-regression, finite embeddings,
    SavedModel reload parity. `export_dir` holds user_tower/, anchor_tower/,
    anchor_embeddings.parquet and parity_sample.json."""
    import pyarrow.parquet as pq

    sample = json.loads((export_dir / "parity_sample.json").read_text())
    embeddings = pq.read_table(export_dir / "anchor_embeddings.parquet",
                               columns=["embedding"]).column("embedding").to_pylist()
    reloaded = {
        "user_embeddings": reload(export_dir / "user_tower", sample["user_inputs"]),
        "anchor_embeddings": reload(export_dir / "anchor_tower", sample["anchor_inputs"]),
    }
    checks = (metric_checks(metrics, config)
              + regression_checks(metrics, champion, config, champion_version,
                                  champion_error)
              + [finite_check("finite[anchor_embeddings.parquet]", embeddings),
                 finite_check("finite[parity_sample.user]", sample["user_embeddings"]),
                 finite_check("finite[parity_sample.anchor]", sample["anchor_embeddings"]),
                 finite_check("finite[reloaded.user]", reloaded["user_embeddings"]),
                 finite_check("finite[reloaded.anchor]", reloaded["anchor_embeddings"])]
              + parity_checks(sample, reloaded, config.parity_atol))
    return gate_report("model_gate", checks, champion_version=champion_version,
                       eval_days=metrics.get("eval_days"), config=dataclasses.asdict(config))
