"""The model gate: is an evaluated model fit to publish? Pure checks on plain values.

Floors on the model's metrics, lifts over the random baseline (overall and for cold
anchors, the case DropoutNet is for), a lift over named baselines whose bootstrap interval
(over the pooled user-days of training.evaluate) lies above a margin, no regression against
the published champion on the same held-out days, plus the model's own checks of its export
(for the two-tower model: finite embeddings and SavedModel reload parity), which the model
supplies through the seam.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from features.checks import FAIL, PASS, SKIP, at_least, at_most, check, gate_report

PARITY_ATOL = 1e-5  # reloaded SavedModel vs in-memory embeddings (float32 round-off)


class ModelGateConfig(BaseModel):
    """Thresholds of the model gate (metrics of training.evaluate's metrics.json)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Demo scale (2k anchors, ~700 live): the trained model scores AUC 0.85, recall@50 0.42,
    # cold-anchor recall@50 0.18; the random baseline 0.5, 0.034 and about the same.
    # `auc` ranks positives against sampled unwatched live anchors (training.evaluate); the
    # measurements above were of the labelled pairs' AUC, now `auc_labelled`
    min_auc: float = Field(0.6, ge=0, le=1)  # popularity scores 0.53 at demo scale
    min_recall_at_50: float = Field(0.05, ge=0, le=1)
    min_recall_lift: float = Field(0.02, ge=-1, le=1)  # recall@50 - random's recall@50
    min_cold_anchor_recall_at_50: float = Field(0.05, ge=0, le=1)
    min_cold_anchor_lift: float = Field(0.02, ge=-1, le=1)  # the same within cold anchors
    # allowed drop vs the champion; negative: the model must improve on it by that much
    max_regression: float = Field(0.01, ge=-1, le=1)
    regression_metrics: tuple[str, ...] = ("auc", "recall@50", "ndcg@50")
    # beats_baseline[<name>]: the lower end of the bootstrap interval of (model - baseline)
    # on gate_metric must be above min_lift_over_baseline. "best" stands for the baseline
    # with the highest gate_metric (references such as the simulator's oracles excluded).
    gate_baselines: tuple[str, ...] = ("best",)
    gate_metric: str = "recall@50"
    min_lift_over_baseline: float = Field(0.0, ge=-1, le=1)
    min_slice_users: int = Field(20, ge=0)  # a smaller slice is reported, not gated


def _metric(metrics: Mapping[str, Any] | None, *path: str) -> float | None:
    node: Any = metrics
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return None if node is None else float(node)


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


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
    """Absolute floors, and lifts over the random baseline at K = 50."""
    recall = _metric(metrics, "model", "recall@50")
    checks = [at_least("auc", _metric(metrics, "model", "auc"), config.min_auc),
              at_least("recall@50", recall, config.min_recall_at_50),
              _lift_check("recall@50_lift_over_random", recall,
                          _metric(metrics, "baselines", "random", "recall@50"),
                          config.min_recall_lift)]
    cold = _metric(metrics, "slices", "cold_anchor", "recall@50")
    support = _metric(metrics, "slices", "cold_anchor", "users")
    if support is not None and support < config.min_slice_users:  # too few to judge
        note = f"support {int(support)} < {config.min_slice_users}"
        return checks + [
            check("cold_anchor_recall@50", SKIP, cold, config.min_cold_anchor_recall_at_50,
                  note),
            check("cold_anchor_recall@50_lift_over_random", SKIP, None,
                  config.min_cold_anchor_lift, note)]
    if _missing(cold):  # no user watched a cold anchor that day
        return checks + [check("cold_anchor_recall@50", SKIP, cold,
                               config.min_cold_anchor_recall_at_50,
                               "no positive on a cold anchor on the eval day")]
    return checks + [
        at_least("cold_anchor_recall@50", cold, config.min_cold_anchor_recall_at_50),
        _lift_check("cold_anchor_recall@50_lift_over_random", cold,
                    _metric(metrics, "baselines", "random", "slices", "cold_anchor",
                            "recall@50"), config.min_cold_anchor_lift)]


def is_reference(name: str) -> bool:
    """A scorer shown for reference, not a baseline to beat (it knows the simulator's
    hidden truth)."""
    return "oracle" in name


def best_baseline(metrics: Mapping[str, Any], metric: str = "recall@50") -> str | None:
    """The baseline with the highest pooled `metric` (references excluded), or None."""
    scored = {name: _metric(metrics, "baselines", name, metric)
              for name in (metrics.get("baselines") or {}) if not is_reference(name)}
    scored = {name: value for name, value in scored.items() if not _missing(value)}
    return max(sorted(scored), key=scored.get) if scored else None


def baseline_checks(metrics: Mapping[str, Any], config: ModelGateConfig) -> list[dict]:
    """`beats_baseline[<name>]` for each of `config.gate_baselines` ("best": the strongest
    on the gate metric): the lower end of the bootstrap interval of the model's pooled gate
    metric minus the baseline's (training.evaluate's `comparisons`) above
    `min_lift_over_baseline`. A baseline the metrics lack (it did not apply) is skipped,
    saying so."""
    metric, minimum = config.gate_metric, config.min_lift_over_baseline
    level = (metrics.get("settings") or {}).get("confidence", 0.95)
    checks = []
    names = [best_baseline(metrics, metric) or "best" if name == "best" else name
             for name in config.gate_baselines]
    for name in dict.fromkeys(names):
        label, threshold = f"beats_baseline[{name}]", f"interval low > {minimum}"
        if name not in (metrics.get("baselines") or {}):
            checks.append(check(label, SKIP, None, threshold,
                                f"baseline {name!r} is not in the metrics"))
            continue
        ours, theirs = _metric(metrics, "model", metric), _metric(metrics, "baselines", name,
                                                                  metric)
        if not _missing(ours) and not _missing(theirs) and min(ours, theirs) >= 1.0 - 1e-9:
            checks.append(check(label, SKIP, None, threshold,
                                f"both {metric} are 1: fewer candidates than K"))
            continue
        compared = ((metrics.get("comparisons") or {}).get(name) or {}).get(metric) or {}
        low, high, diff = (_metric(compared, k) for k in ("low", "high", "diff"))
        if _missing(low) or _missing(high) or _missing(diff):
            checks.append(check(label, FAIL, None, threshold,
                                f"no bootstrap interval of {metric} against {name}"
                                + (f": {compared['note']}" if compared.get("note") else "")))
            continue
        checks.append(check(
            label, PASS if low > minimum else FAIL, round(low, 6), threshold,
            f"{metric} model - {name} = {diff:+.4f}, {level:.0%} interval "
            f"[{low:+.4f}, {high:+.4f}] over {compared.get('user_days')} user-days"))
    return checks


def regression_checks(metrics: Mapping[str, Any], champion: Mapping[str, Any] | None,
                      config: ModelGateConfig, champion_version: int | None = None,
                      champion_error: str | None = None) -> list[dict]:
    """No metric worse than the published model's on the same eval day (minus a margin).
    Skipped, saying why, when nothing is published or the champion could not be scored."""
    if champion is None:
        note = (f"champion v{champion_version} could not be evaluated: {champion_error}"
                if champion_error else "no published model yet")
        return [check("non_regression", SKIP, None, None, note)]
    checks = []
    for name in config.regression_metrics:
        ours, theirs = _metric(metrics, "model", name), _metric(champion, "model", name)
        if _missing(theirs):
            checks.append(check(f"non_regression[{name}]", SKIP, ours, None,
                                "champion has no such metric"))
            continue
        checks.append(at_least(f"non_regression[{name}]", ours,
                               round(theirs - config.max_regression, 6),
                               f"champion v{champion_version}: {theirs}"))
    return checks


def finite_check(name: str, values: Any) -> dict:
    """No NaN or infinity among `values` (any nested numeric array), and not empty."""
    array = np.asarray(values, dtype=np.float64)
    bad = int(array.size - np.isfinite(array).sum())
    return check(name, PASS if array.size and not bad else FAIL,
                 f"{bad} of {array.size} non-finite", "0 non-finite, not empty")


def parity_checks(stored: Mapping[str, Any], reloaded: Mapping[str, Any],
                  atol: float = PARITY_ATOL) -> list[dict]:
    """Outputs of reloaded artifacts vs those of the in-memory model, per artifact name."""
    checks = []
    for name in stored:
        a, b = np.asarray(stored[name], np.float64), np.asarray(reloaded[name], np.float64)
        if a.shape != b.shape:
            checks.append(check(f"reload_parity[{name}]", FAIL, f"shape {b.shape}",
                                f"shape {a.shape}"))
            continue
        diff = float(np.max(np.abs(a - b))) if a.size else math.nan
        checks.append(at_most(f"reload_parity[{name}]", diff, atol,
                              "max |reloaded - in-memory| difference"))
    return checks


def run_model_gate(metrics: Mapping[str, Any], champion: Mapping[str, Any] | None,
                   config: ModelGateConfig, artifact_checks: Sequence[dict] = (),
                   champion_version: int | None = None,
                   champion_error: str | None = None) -> dict:
    """The model gate's report: metric floors and lifts, lifts over the gated baselines,
    non-regression, and the model's own checks of its export (`Model.checks`)."""
    checks = (metric_checks(metrics, config) + baseline_checks(metrics, config)
              + regression_checks(metrics, champion, config, champion_version, champion_error)
              + list(artifact_checks))
    return gate_report("model_gate", checks, model=metrics.get("model_name"),
                       champion_version=champion_version, eval_days=metrics.get("eval_days"),
                       config=config.model_dump())
