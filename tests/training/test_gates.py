"""Data and model gates: each check on values worked out by hand, the reports on a real tiny
lake and on real SavedModels (reload parity, non-finite embeddings)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from training import gates
from training.gates import DataGateConfig, ModelGateConfig


def _status(checks: list[dict]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in checks}


def test_config_overrides_are_checked():
    config = gates.config_from(DataGateConfig, {"max_quarantine_rate": "0.1", "trailing_days": 3})
    assert (config.max_quarantine_rate, config.trailing_days) == (0.1, 3)
    assert gates.config_from(ModelGateConfig, {"regression_metrics": ["auc"]}) \
        .regression_metrics == ("auc",)
    with pytest.raises(ValueError, match="unknown DataGateConfig settings.*known"):
        gates.config_from(DataGateConfig, {"max_null_rate": 0.1})
    with pytest.raises(ValueError, match="min_auc must be float"):
        gates.config_from(ModelGateConfig, {"min_auc": "high"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.trailing_days = 1


def test_presence_names_every_missing_day():
    checks = gates.presence_checks(["d1", "d2", "d3"], {"labels": {"d1", "d2", "d3"},
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


def test_label_day_checks_hold_each_day_to_its_thresholds():
    status = _status(gates.label_day_checks(STATS, DataGateConfig(trailing_days=3)))
    assert status == {
        "label_rows_vs_median[2026-01-01]": "skip",  # nothing before the first day
        "positive_rate[2026-01-01]": "pass",
        "null_rate[2026-01-01][user_id]": "pass",
        "quarantine_rate[2026-01-01]": "pass",
        "label_rows_vs_median[2026-01-04]": "pass",  # 100 / 100
        "positive_rate[2026-01-04]": "pass",
        "null_rate[2026-01-04][user_id]": "fail",  # 1% null ids, none allowed
        "quarantine_rate[2026-01-04]": "fail",  # 20% > 5%
        "label_rows_vs_median[2026-01-05]": "fail",  # 40 / median(90, 110, 100) = 0.4 < 0.5
        "positive_rate[2026-01-05]": "fail",  # 0.1% < 2%
        "null_rate[2026-01-05][user_id]": "pass",
        "quarantine_rate[2026-01-05]": "fail",  # nothing ingested: no rate is a failure
    }


def test_training_set_checks_count_labels_lost_in_the_join():
    manifest = {"counts": {"train": {"rows": 90}, "validation": {"rows": 0}}}
    status = _status(gates.training_set_checks(manifest, 100, DataGateConfig()))
    assert status == {"train_rows": "pass", "validation_rows": "fail",
                      "join_coverage": "fail"}  # 90 of 100 labels < 95%


def test_leakage_checks_report_the_offending_tables():
    ok = {"ok": True, "tables": {"user_profiles": {"ok": True}}}
    bad = {"ok": False, "tables": {"user_profiles": {
        "ok": False, "rows": 10, "rows_reading_day_or_later": 10, "rows_before_window": 0}}}
    checks = gates.leakage_checks({"d1": ok, "d2": bad})
    assert _status(checks) == {"leakage_audit[d1]": "pass", "leakage_audit[d2]": "fail"}
    assert checks[1]["value"]["user_profiles"]["rows_reading_day_or_later"] == 10


def _metrics(auc, recall, cold=0.3, random_recall=0.08):
    return {"model": {"auc": auc, "recall@50": recall, "ndcg@50": recall / 2},
            "slices": {"cold_anchor": {"recall@50": cold}},
            "baselines": {"random": {"auc": 0.5, "recall@50": random_recall,
                                     "slices": {"cold_anchor": {"recall@50": random_recall}}}}}


def test_a_useful_model_passes_and_a_random_one_fails():
    config = ModelGateConfig()
    good = gates.gate_report("model_gate", gates.metric_checks(_metrics(0.75, 0.4), config))
    assert good["passed"], good
    # a random scorer: AUC 0.5 and the random baseline's own recall
    bad = gates.gate_report("model_gate", gates.metric_checks(
        _metrics(0.5, 0.08, cold=0.08), config))
    assert bad["failed"] == ["auc", "recall@50_lift_over_random",
                             "cold_anchor_recall@50_lift_over_random"]
    assert "auc: value 0.5 not >= 0.6" in gates.failure_summary(bad)


def test_lift_over_random_is_skipped_when_every_anchor_fits_in_the_top_k():
    status = _status(gates.metric_checks(_metrics(0.7, 1.0, cold=1.0, random_recall=1.0),
                                         ModelGateConfig()))
    assert status["recall@50_lift_over_random"] == "skip"
    assert status["cold_anchor_recall@50_lift_over_random"] == "skip"


def test_an_eval_day_without_cold_anchor_positives_skips_the_cold_checks():
    # evaluate writes NaN for a slice without any user (nothing to rank)
    status = _status(gates.metric_checks(_metrics(0.7, 0.4, cold=math.nan),
                                         ModelGateConfig()))
    assert status["cold_anchor_recall@50"] == "skip"
    assert "cold_anchor_recall@50_lift_over_random" not in status


def test_non_regression_against_the_champion():
    config = ModelGateConfig(max_regression=0.01)
    assert _status(gates.regression_checks(_metrics(0.7, 0.4), None, config)) == \
        {"non_regression": "skip"}
    # auc 0.7 vs champion 0.705: within 0.01; recall 0.4 vs 0.45: a drop of 0.05
    status = _status(gates.regression_checks(_metrics(0.7, 0.4), _metrics(0.705, 0.45),
                                             config, champion_version=3))
    assert status == {"non_regression[auc]": "pass", "non_regression[recall@50]": "fail",
                      "non_regression[ndcg@50]": "fail"}
    # a champion whose inputs no longer exist cannot block every later release
    unscored = gates.regression_checks(_metrics(0.7, 0.4), None, config, 3, "KeyError: 'x'")
    assert unscored[0]["status"] == "skip" and "v3 could not be evaluated" in \
        unscored[0]["note"]


def test_finite_and_parity_checks():
    assert gates.finite_check("e", [[0.1, 0.2]])["status"] == "pass"
    assert gates.finite_check("e", [[0.1, math.nan]])["value"] == "1 of 2 non-finite"
    assert gates.finite_check("e", [])["status"] == "fail"  # nothing to check is not a pass
    stored = {"user_embeddings": [[1.0, 0.0]], "anchor_embeddings": [[0.0, 1.0]]}
    close = {"user_embeddings": [[1.0 + 5e-6, 0.0]], "anchor_embeddings": [[0.0, 1.0]]}
    far = {"user_embeddings": [[1.0, 0.0]], "anchor_embeddings": [[0.0, 1.001]]}
    assert _status(gates.parity_checks(stored, close, 1e-5)) == {
        "reload_parity[user_tower]": "pass", "reload_parity[anchor_tower]": "pass"}
    assert _status(gates.parity_checks(stored, far, 1e-5))["reload_parity[anchor_tower]"] \
        == "fail"


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """Two tiny SavedModels with a raw-column serving signature, as training.export writes,
    plus the parity sample and anchor embeddings of the in-memory modules."""
    import tensorflow as tf

    class Tower(tf.Module):
        def __init__(self, seed: int):
            super().__init__()
            self.w = tf.Variable(tf.random.stateless_normal([3, 4], seed=[seed, 0]))
            self.serve = tf.function(self._serve, input_signature=[{
                "x": tf.TensorSpec([None, 2], tf.float32, name="x"),
                "c": tf.TensorSpec([None], tf.string, name="c"),
            }])

        def _serve(self, raw):
            flag = tf.cast(tf.equal(raw["c"], "a"), tf.float32)[:, None]
            return {"embedding": tf.math.l2_normalize(
                tf.concat([raw["x"], flag], axis=1) @ self.w, axis=1)}

    out = tmp_path_factory.mktemp("export")
    inputs = {"x": [[0.5, 1.0], [2.0, -1.0], [0.0, 3.0]], "c": ["a", "b", "a"]}
    sample = {}
    for name, seed in (("user", 1), ("anchor", 2)):
        module = Tower(seed)
        tf.saved_model.save(module, str(out / f"{name}_tower"),
                            signatures={"serving_default": module.serve.get_concrete_function()})
        raw = {"x": tf.constant(inputs["x"]), "c": tf.constant(inputs["c"])}
        sample[f"{name}_inputs"] = inputs
        sample[f"{name}_embeddings"] = module.serve(raw)["embedding"].numpy().tolist()
    (out / "parity_sample.json").write_text(json.dumps(sample))
    _embeddings(out, sample["anchor_embeddings"])
    return out


def _embeddings(out, vectors) -> None:
    pq.write_table(pa.table({"anchor_id": list(range(len(vectors))),
                             "embedding": [np.asarray(v, np.float32) for v in vectors]}),
                   out / "anchor_embeddings.parquet")


def test_model_gate_reloads_the_saved_models(export):
    report = gates.run_model_gate(export, _metrics(0.7, 0.4), None, ModelGateConfig())
    assert report["passed"], gates.failure_summary(report)
    parity = [c for c in report["checks"] if c["name"].startswith("reload_parity")]
    assert len(parity) == 2 and all(c["value"] <= 1e-6 for c in parity)


def test_model_gate_catches_drifted_or_non_finite_embeddings(export, tmp_path):
    import shutil

    broken = tmp_path / "export"
    shutil.copytree(export, broken)
    sample = json.loads((broken / "parity_sample.json").read_text())
    sample["user_embeddings"][0][0] += 1e-3  # what the in-memory model "said" differs
    (broken / "parity_sample.json").write_text(json.dumps(sample))
    _embeddings(broken, [[math.nan, 0.0, 0.0, 0.0]])
    report = gates.run_model_gate(broken, _metrics(0.7, 0.4), None, ModelGateConfig())
    assert report["failed"] == ["finite[anchor_embeddings.parquet]",
                                "reload_parity[user_tower]"]


def test_data_gate_on_a_tiny_lake(tiny_training_set, spark):
    from features.days import add_days, days_between
    from jobs.lake import Lake

    lake = Lake(tiny_training_set["lake"], spark)
    manifest = tiny_training_set["manifest"]
    days = days_between(add_days(manifest["end"], -(manifest["days"] - 1)), manifest["end"])
    report = gates.run_data_gate(lake, days, manifest, DataGateConfig())
    assert report["passed"], gates.failure_summary(report)
    names = _status(report["checks"])
    assert {f"leakage_audit[{d}]" for d in days} <= set(names)
    assert names["join_coverage"] == "pass"

    strict = gates.run_data_gate(lake, days, manifest, DataGateConfig(min_positive_rate=0.99))
    assert strict["failed"] == [f"positive_rate[{d}]" for d in days]

    early = days_between("2026-01-29", "2026-02-01")  # before the simulated history
    absent = gates.run_data_gate(lake, early, None, DataGateConfig())
    assert set(absent["failed"]) == {"present[labels]", "present[user_profiles]",
                                     "present[anchor_profiles]"}
    assert len(absent["checks"]) == 3  # nothing else is read when days are missing
