"""Model gate: each check on values worked out by hand, and the two-tower model's own
checks of an export on real SavedModels (reload parity, non-finite embeddings)."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.checks import config_from, failure_summary, gate_report
from training import model_gate as mg
from training.model_gate import ModelGateConfig
from training.models import model

pytestmark = pytest.mark.unit


def _status(checks: list[dict]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in checks}


def test_config_overrides_are_checked():
    assert config_from(ModelGateConfig, {"regression_metrics": ["auc"]}) \
        .regression_metrics == ("auc",)
    with pytest.raises(ValueError, match="regression_metrics"):  # not ('a', 'u', 'c')
        config_from(ModelGateConfig, {"regression_metrics": "auc"})
    with pytest.raises(ValueError, match="ModelGateConfig: min_auc"):
        config_from(ModelGateConfig, {"min_auc": "high"})
    with pytest.raises(ValueError, match="max_regression"):
        config_from(ModelGateConfig, {"max_regression": 2})
    with pytest.raises(ValueError, match="extra|not permitted"):
        config_from(ModelGateConfig, {"min_aucc": 0.5})


def _metrics(auc, recall, cold=0.3, random_recall=0.08):
    return {"model": {"auc": auc, "recall@50": recall, "ndcg@50": recall / 2},
            "slices": {"cold_anchor": {"recall@50": cold}},
            "baselines": {"random": {"auc": 0.5, "recall@50": random_recall,
                                     "slices": {"cold_anchor": {"recall@50": random_recall}}}}}


def test_a_useful_model_passes_and_a_random_one_fails():
    config = ModelGateConfig()
    good = gate_report("model_gate", mg.metric_checks(_metrics(0.75, 0.4), config))
    assert good["passed"], good
    # a random scorer: AUC 0.5 and the random baseline's own recall
    bad = gate_report("model_gate", mg.metric_checks(
        _metrics(0.5, 0.08, cold=0.08), config))
    assert bad["failed"] == ["auc", "recall@50_lift_over_random",
                             "cold_anchor_recall@50_lift_over_random"]
    assert "auc: value 0.5 not >= 0.6" in failure_summary(bad)


def test_lift_over_random_is_skipped_when_every_anchor_fits_in_the_top_k():
    status = _status(mg.metric_checks(_metrics(0.7, 1.0, cold=1.0, random_recall=1.0),
                                         ModelGateConfig()))
    assert status["recall@50_lift_over_random"] == "skip"
    assert status["cold_anchor_recall@50_lift_over_random"] == "skip"


def test_an_eval_day_without_cold_anchor_positives_skips_the_cold_checks():
    # evaluate writes NaN for a slice without any user (nothing to rank)
    status = _status(mg.metric_checks(_metrics(0.7, 0.4, cold=math.nan),
                                         ModelGateConfig()))
    assert status["cold_anchor_recall@50"] == "skip"
    assert "cold_anchor_recall@50_lift_over_random" not in status


def _versus(metrics, name, recall, low, high, users=500):
    """`metrics` with baseline `name` (recall@50 `recall`) and the model's bootstrap
    interval of recall@50 minus it."""
    diff = metrics["model"]["recall@50"] - recall
    return {**metrics,
            "baselines": {**metrics["baselines"], name: {"recall@50": recall}},
            "comparisons": {**metrics.get("comparisons", {}), name: {
                "recall@50": {"diff": diff, "low": low, "high": high, "user_days": users}}}}


def test_beats_baseline_needs_the_interval_above_the_margin():
    config = ModelGateConfig()
    assert config.gate_baselines == ("best",) and config.min_lift_over_baseline == 0.0
    # model 0.4 vs popularity 0.3: diff 0.1, interval [0.06, 0.14] above 0
    clear = mg.baseline_checks(_versus(_metrics(0.75, 0.4), "popularity", 0.3, 0.06, 0.14),
                               config)
    assert _status(clear) == {"beats_baseline[popularity]": "pass"}
    assert clear[0]["value"] == 0.06 and "[+0.0600, +0.1400] over 500 user-days" in \
        clear[0]["note"]
    # a higher mean whose interval reaches below 0 is not a win
    unsure = _versus(_metrics(0.75, 0.4), "popularity", 0.38, -0.01, 0.05)
    assert _status(mg.baseline_checks(unsure, config)) == {"beats_baseline[popularity]": "fail"}
    # a required margin: 0.06 is not above 0.1
    strict = ModelGateConfig(min_lift_over_baseline=0.1)
    assert mg.baseline_checks(_versus(_metrics(0.75, 0.4), "popularity", 0.3, 0.06, 0.14),
                              strict)[0]["status"] == "fail"


def test_best_stands_for_the_strongest_baseline_not_a_reference():
    metrics = _versus(_metrics(0.75, 0.4), "popularity", 0.3, 0.06, 0.14)
    metrics = _versus(metrics, "rewatch", 0.38, -0.03, 0.07)
    metrics = _versus(metrics, "oracle", 0.6, -0.25, -0.15)  # knows the truth: not to beat
    assert mg.best_baseline(metrics, "recall@50") == "rewatch"
    checks = mg.baseline_checks(metrics, ModelGateConfig())
    assert _status(checks) == {"beats_baseline[rewatch]": "fail"}
    both = ModelGateConfig(gate_baselines=("best", "popularity", "rewatch"))
    assert list(_status(mg.baseline_checks(metrics, both))) == [
        "beats_baseline[rewatch]", "beats_baseline[popularity]"]


def test_beats_baseline_skips_an_absent_baseline_and_fails_without_an_interval():
    config = ModelGateConfig(gate_baselines=("popularity", "rewatch"))
    metrics = _versus(_metrics(0.75, 0.4), "popularity", 0.3, 0.06, 0.14)
    checks = {c["name"]: c for c in mg.baseline_checks(metrics, config)}
    assert checks["beats_baseline[rewatch]"]["status"] == "skip"
    assert "'rewatch' is not in the metrics" in checks["beats_baseline[rewatch]"]["note"]
    no_interval = {**metrics, "comparisons": {}}  # metrics of an older evaluation
    assert mg.baseline_checks(no_interval, config)[0]["status"] == "fail"
    # fewer candidates than K: both recalls are 1, nothing to tell apart
    full = _versus(_metrics(0.75, 1.0), "popularity", 1.0, 0.0, 0.0)
    assert mg.baseline_checks(full, ModelGateConfig())[0]["status"] == "skip"


def test_a_slice_with_little_support_is_reported_not_gated():
    config = ModelGateConfig()
    small = _metrics(0.75, 0.4, cold=0.01)  # far below the cold-anchor floor...
    small["slices"]["cold_anchor"]["users"] = 7  # ...on 7 user-days only
    checks = {c["name"]: c for c in mg.metric_checks(small, config)}
    assert checks["cold_anchor_recall@50"]["status"] == "skip"
    assert checks["cold_anchor_recall@50"]["note"] == "support 7 < 20"
    assert checks["cold_anchor_recall@50_lift_over_random"]["status"] == "skip"
    small["slices"]["cold_anchor"]["users"] = 20  # enough: gated, and it fails
    assert _status(mg.metric_checks(small, config))["cold_anchor_recall@50"] == "fail"


def test_the_gate_report_holds_the_baseline_checks():
    report = mg.run_model_gate(_versus(_metrics(0.75, 0.4), "popularity", 0.35, -0.02, 0.12),
                               None, ModelGateConfig())
    assert report["failed"] == ["beats_baseline[popularity]"]
    assert "beats_baseline[popularity]: value -0.02 not interval low > 0.0" in \
        failure_summary(report)


def test_non_regression_against_the_champion():
    config = ModelGateConfig(max_regression=0.01)
    assert _status(mg.regression_checks(_metrics(0.7, 0.4), None, config)) == \
        {"non_regression": "skip"}
    # auc 0.7 vs champion 0.705: within 0.01; recall 0.4 vs 0.45: a drop of 0.05
    status = _status(mg.regression_checks(_metrics(0.7, 0.4), _metrics(0.705, 0.45),
                                             config, champion_version=3))
    assert status == {"non_regression[auc]": "pass", "non_regression[recall@50]": "fail",
                      "non_regression[ndcg@50]": "fail"}
    # a champion whose inputs no longer exist cannot block every later release
    unscored = mg.regression_checks(_metrics(0.7, 0.4), None, config, 3, "KeyError: 'x'")
    assert unscored[0]["status"] == "skip" and "v3 could not be evaluated" in \
        unscored[0]["note"]


def test_finite_and_parity_checks():
    assert mg.finite_check("e", [[0.1, 0.2]])["status"] == "pass"
    assert mg.finite_check("e", [[0.1, math.nan]])["value"] == "1 of 2 non-finite"
    assert mg.finite_check("e", [])["status"] == "fail"  # nothing to check is not a pass
    stored = {"user_tower": [[1.0, 0.0]], "anchor_tower": [[0.0, 1.0]]}
    close = {"user_tower": [[1.0 + 5e-6, 0.0]], "anchor_tower": [[0.0, 1.0]]}
    far = {"user_tower": [[1.0, 0.0]], "anchor_tower": [[0.0, 1.001]]}
    assert _status(mg.parity_checks(stored, close, 1e-5)) == {
        "reload_parity[user_tower]": "pass", "reload_parity[anchor_tower]": "pass"}
    assert _status(mg.parity_checks(stored, far, 1e-5))["reload_parity[anchor_tower]"] \
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
                   out / "anchor_tower" / "anchor_embeddings.parquet")


def _gate(export_dir):
    metrics = _versus(_metrics(0.7, 0.4), "popularity", 0.3, 0.06, 0.14)
    return mg.run_model_gate(metrics, None, ModelGateConfig(),
                             model("two_tower").checks(export_dir))


@pytest.mark.engine
def test_model_gate_reloads_the_saved_models(export):
    report = _gate(export)
    assert report["passed"], failure_summary(report)
    parity = [c for c in report["checks"] if c["name"].startswith("reload_parity")]
    assert len(parity) == 2 and all(c["value"] <= 1e-6 for c in parity)


@pytest.mark.engine
def test_model_gate_catches_drifted_or_non_finite_embeddings(export, tmp_path):
    import shutil

    broken = tmp_path / "export"
    shutil.copytree(export, broken)
    sample = json.loads((broken / "parity_sample.json").read_text())
    sample["user_embeddings"][0][0] += 1e-3  # what the in-memory model "said" differs
    (broken / "parity_sample.json").write_text(json.dumps(sample))
    _embeddings(broken, [[math.nan, 0.0, 0.0, 0.0]])
    report = _gate(broken)
    assert report["failed"] == ["finite[anchor_embeddings.parquet]",
                                "reload_parity[user_tower]"]
