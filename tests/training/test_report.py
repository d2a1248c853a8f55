"""The run report: one self-contained HTML page with a PNG per plot and the gate tables."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from features.manifest import TrainingSetManifest
from training import report
from training.reader import TrainingSet

pytestmark = pytest.mark.unit

METRICS = {
    "eval_days": ["2026-02-06"],
    "model": {"recall@10": 0.3, "recall@50": 0.6, "ndcg@10": 0.2, "ndcg@50": 0.3, "auc": 0.7},
    "slices": {s: {"recall@10": 0.2, "recall@50": 0.5, "auc": 0.6} for s in report.SLICES},
    "baselines": {"popularity": {"recall@10": 0.2, "recall@50": 0.5, "auc": 0.6},
                  "random": {"recall@10": 0.05, "recall@50": 0.1, "auc": 0.5}},
}
GATES = {"model gate": {"gate": "model_gate", "passed": False, "checks": [
    {"name": "auc", "status": "fail", "value": 0.5, "threshold": ">= 0.55", "note": ""},
    {"name": "non_regression", "status": "skip", "value": None, "threshold": None,
     "note": "no published model yet"}]}}
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)'", page)]


def _examples(rows: int, day: str, rng: np.random.Generator) -> pa.Table:
    return pa.table({"dt": [day] * rows, "label": rng.integers(0, 2, rows).astype(np.int32),
                     "shard": np.arange(rows, dtype=np.int32) % 2,
                     **{name: rng.exponential(10, rows) for name in report.FEATURES}})


@pytest.fixture()
def tiny_set(tmp_path) -> TrainingSet:
    """Train: 4 rows on each of 02-04 and 02-05 (sharded); validation: 3 rows on 02-06."""
    rng = np.random.default_rng(0)
    lake, base = tmp_path / "lake", "training_sets/tiny"
    train = pa.concat_tables([_examples(4, d, rng) for d in ("2026-02-04", "2026-02-05")])
    write_deltalake(str(lake / base / "train"), train, partition_by=["shard"])
    write_deltalake(str(lake / base / "validation"), _examples(3, "2026-02-06", rng))
    write_deltalake(str(lake / base / "candidates"),
                    pa.table({"anchor_id": [1, 2], "dt": ["2026-02-06"] * 2}))
    TrainingSetManifest(
        run_id="tiny", end="2026-02-06", days=3, window=2, seed=7, shards=2,
        train_days=["2026-02-04", "2026-02-05"], holdout_days=["2026-02-06"],
        tables={s: f"{base}/{s}" for s in ("train", "validation", "candidates")},
        format="delta", counts={"train": {"rows": 8}, "validation": {"rows": 3},
                                "candidates": 2},
        source_versions={"labels": 4, "anchors": None}, vocabularies={}).save(lake)
    return TrainingSet(lake, "tiny")


def test_the_page_embeds_every_plot_and_the_gate_tables():
    rng = np.random.default_rng(0)
    history = [{"step": s, "epoch": 1, "loss": 2.0 / s, "examples_per_sec": 1e4}
               for s in range(1, 41)]
    examples = {"dt": np.repeat(["2026-02-04", "2026-02-05", "2026-02-06"], 50),
                "label": rng.integers(0, 2, 150),
                **{name: rng.exponential(10, 150) for name in report.FEATURES}}
    page = report.build_report("run <a&b>", {"run_id": "a&b"}, history, METRICS, GATES,
                               examples, holdout_days=["2026-02-06"])
    images = _images(page)
    assert len(images) == 5  # loss, ranking, slices, labels, features
    assert all(image.startswith(b"\x89PNG") for image in images)
    assert "<h1>run &lt;a&amp;b&gt;</h1>" in page  # text is escaped
    assert "model gate: FAILED" in page and "<tr class='fail'><td>auc</td>" in page
    assert "no published model yet" in page
    # the skipped check has neither value nor threshold: both cells show the dash
    assert "<td>non_regression</td><td>skip</td><td>–</td><td>–</td>" in page


def test_missing_inputs_are_said_not_crashed_on():
    page = report.build_report("empty", {}, [], None, {}, None)
    assert "no history" in page and "no metrics" in page and not _images(page)
    for line in ("no facts", "no training set manifest", "no labelled examples",
                 "no training rows", "no gate reports"):
        assert f"<p>{line}</p>" in page


def test_missing_slices_and_checks_are_said():
    metrics = {"eval_days": ["2026-02-06"], "model": {"auc": 0.7}}
    page = report.build_report("t", {}, [], metrics, {"data gate": {"passed": True}}, None)
    assert len(_images(page)) == 1  # ranking only: no slice plot without slice metrics
    assert "<p>no slice metrics</p>" in page
    assert "data gate: passed</h2>\n<p>no checks</p>" in page


def test_facts_gate_notes_and_metric_names_are_escaped():
    metrics = {**METRICS, "model": {**METRICS["model"], SCRIPT: 0.5}}
    gates = {"model gate": {"passed": False, "checks": [
        {"name": "auc", "status": "fail", "value": 0.5, "threshold": 0.55, "note": SCRIPT}]}}
    page = report.build_report("t", {"model name": SCRIPT, SCRIPT: 1}, [], metrics, gates, None)
    assert "<script" not in page
    # once as a fact value, once as a fact name, once as a metric column, once as a note
    assert page.count(ESCAPED) == 4
    assert f"<th>{ESCAPED}</th>" in page and f"<td>{ESCAPED}</td>" in page


@pytest.mark.parametrize(("value", "text"), [
    (None, "–"), (float("nan"), "–"), (0.123456, "0.1235"), (0.7, "0.7"),
    (12.3456, "12.35"), (1234.56, "1235"), (999.97, "1000"),  # not "1e+03"
    (123456.7, "123457"), (1.5e-5, "1.5e-05"), (np.float32(0.25), "0.25"),
    (123456789, "123456789"),  # counts stay exact
    (np.int64(7), "7"), (True, "true"), ("a<b", "a<b"),  # the template escapes, not cell
    (["2026-02-04", "2026-02-05"], "2026-02-04, 2026-02-05"),
    ({"lr": 0.00123456, "dims": [64, 32], "x": None}, "lr: 0.001235, dims: [64, 32], x: –"),
])
def test_cells_round_numbers_and_dash_missing_values(value, text):
    assert report.cell(value) == text


def test_examples_are_read_through_the_training_set(tiny_set):
    examples = report.read_examples(tiny_set, max_feature_rows=5)
    # dt and label of all 8 train + 3 validation rows; features of the first 5 train rows
    assert len(examples["dt"]) == len(examples["label"]) == 11
    assert sorted(set(examples["dt"])) == ["2026-02-04", "2026-02-05", "2026-02-06"]
    assert (examples["dt"] == "2026-02-06").sum() == 3
    assert all(len(examples[name]) == 5 for name in report.FEATURES)


def test_a_run_report_reads_the_run_files(tiny_set, tmp_path):
    manifest = tiny_set.manifest
    model = tmp_path / "model"
    model.mkdir()
    (model / "history.json").write_text(json.dumps(
        [{"step": 2, "epoch": 1, "loss": 1.5, "examples_per_sec": 100.0},
         {"step": 4, "epoch": 1, "loss": 1.2, "examples_per_sec": 110.0}]))
    (model / "metrics.json").write_text(json.dumps(METRICS))
    gate = tmp_path / "data_gate.json"
    gate.write_text(json.dumps({"gate": "data_gate", "passed": True, "checks": []}))
    out = report.write_run_report(tmp_path / "out" / "report.html", tiny_set, model,
                                  model / "metrics.json",
                                  {"data gate": gate, "model gate": tmp_path / "absent.json"},
                                  facts={"model name": "two_tower", "training seconds": 83.25})
    page = out.read_text()
    assert len(_images(page)) == 5
    assert f"<td>{manifest.counts.train.rows}</td>" in page
    assert "data gate: passed" in page and "model gate" not in page
    # the given facts head the page, before the training set's own table
    assert page.index("<td>two_tower</td>") < page.index("<h2>Training set</h2>")
    assert "<td>training seconds</td><td>83.25</td>" in page
    assert "<td>source table versions</td><td>labels: 4, anchors: –</td>" in page
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left
