"""The run report: one self-contained HTML page with a PNG per plot and the gate tables."""

from __future__ import annotations

import base64
import json
import re

import numpy as np

from training import report

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


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)'", page)]


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


def test_missing_inputs_are_said_not_crashed_on():
    page = report.build_report("empty", {}, [], None, {}, None)
    assert "no history" in page and "no metrics" in page and not _images(page)


def test_a_run_report_reads_the_run_files(tiny_training_set, tmp_path):
    manifest = tiny_training_set["manifest"]
    model = tmp_path / "model"
    model.mkdir()
    (model / "history.json").write_text(json.dumps(
        [{"step": 2, "epoch": 1, "loss": 1.5, "examples_per_sec": 100.0},
         {"step": 4, "epoch": 1, "loss": 1.2, "examples_per_sec": 110.0}]))
    (model / "metrics.json").write_text(json.dumps(METRICS))
    gate = tmp_path / "data_gate.json"
    gate.write_text(json.dumps({"gate": "data_gate", "passed": True, "checks": []}))
    out = report.write_run_report(tmp_path / "report.html", tiny_training_set["lake"],
                                  manifest, model, model / "metrics.json",
                                  {"data gate": gate, "model gate": tmp_path / "absent.json"})
    page = out.read_text()
    assert len(_images(page)) == 5
    assert f"<td>{manifest['counts']['train']['rows']}</td>" in page
    assert "data gate: passed" in page and "model gate" not in page
