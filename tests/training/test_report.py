"""The run report: one self-contained HTML page with a PNG per plot and the gate tables;
its top facts, validation curves, the model against every baseline, weak slices said in a
sentence, and the release summary's last line."""

from __future__ import annotations

import base64
import json
import re
import subprocess

import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from features.manifest import TrainingSetManifest
from training import release, report
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
    (None, "–"), (float("nan"), "–"), (0.123456, "0.123"), (0.7, "0.700"), (0.0, "0.000"),
    (-0.0004, "-4.00e-04"), (12.3456, "12.346"), (1234.56, "1234.560"), (-0.0216, "-0.022"),
    (1.5e-5, "1.50e-05"), (2e-4, "2.00e-04"), (np.float32(0.25), "0.250"), (3e15, "3.00e+15"),
    (123456789, "123456789"),  # counts stay exact
    (np.int64(7), "7"), (True, "true"), ("a<b", "a<b"),  # the template escapes, not cell
    (["2026-02-04", "2026-02-05"], "2026-02-04, 2026-02-05"),
    ({"lr": 0.00123456, "dims": [64, 32], "x": None}, "lr: 0.001, dims: [64, 32], x: –"),
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
    (model / "config.json").write_text(json.dumps(CONFIG))
    (model / "summary.json").write_text(json.dumps({"epochs_run": 1, "best_epoch": None}))
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
    assert "<td>training seconds</td><td>83.250</td>" in page
    assert "<td>source table versions</td><td>labels: 4, anchors: –</td>" in page
    # the run's own facts head it too: code version, day split, steps' time, settings
    top = page[:page.index("<h2>Settings</h2>")]
    assert f"<td>code version</td><td>{report.code_version()}</td>" in top
    assert "<td>test days</td><td>2026-02-06</td>" in top
    assert "<td>epochs run</td><td>1</td>" in top and "best epoch" not in top
    # 4 steps of 100 examples, 2 at 100/s and 2 at 110/s
    assert "<td>training seconds (steps, from the history)</td><td>3.818</td>" in top
    assert "<tr><td>loop</td><td>batch_size</td><td>100</td></tr>" in page
    assert "no validation metrics in the history" in page
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temp file left


# --- is this model good: top facts, curves, baselines, slices, the release line ----------

EVAL = {
    "model_name": "two_tower", "eval_days": ["2026-01-14"], "settings": {"confidence": 0.95},
    "support": {"user_days": 900, "users": 700, "positives": 1500,
                "days": {"2026-01-14": 900}, "candidates": {"2026-01-14": 650},
                "slices": {"warm_user": 886, "cold_user": 14, "warm_anchor": 850,
                           "cold_anchor": 312}},
    "model": {"users": 900, "recall@10": 0.2, "recall@50": 0.452345, "ndcg@10": 0.1789,
              "ndcg@50": 0.21, "auc": 0.85},
    "slices": {"warm_user": {"users": 886, "recall@50": 0.46, "ndcg@10": 0.18},
               "cold_user": {"users": 14, "recall@50": 0.3, "ndcg@10": 0.1},
               "warm_anchor": {"users": 850, "recall@50": 0.47, "ndcg@10": 0.19},
               "cold_anchor": {"users": 312, "recall@50": 0.08, "ndcg@10": 0.03}},
    "baselines": {
        "rewatch": {"recall@50": 0.431, "ndcg@10": 0.2,
                    "slices": {"cold_anchor": {"users": 312, "recall@50": 0.0}}},
        "recent_popularity": {"recall@50": 0.3, "ndcg@10": 0.1,
                              "slices": {"cold_anchor": {"users": 312, "recall@50": 0.12}}},
        "random": {"recall@50": 0.03, "ndcg@10": 0.01},
        "oracle": {"recall@50": 0.7, "ndcg@10": 0.4},
    },
    "comparisons": {
        "rewatch": {"recall@50": {"diff": 0.0213, "low": 0.0104, "high": 0.0331,
                                  "user_days": 900},
                    "ndcg@10": {"diff": -0.0211, "low": -0.03, "high": 0.004,
                                "user_days": 900}},
        "recent_popularity": {"recall@50": {"diff": 0.15, "low": 0.12, "high": 0.18,
                                            "user_days": 900},
                              "ndcg@10": {"diff": 0.08, "low": 0.05, "high": 0.1,
                                          "user_days": 900}},
        "random": {"recall@50": {"diff": 0.42, "low": 0.4, "high": 0.44, "user_days": 900},
                   "ndcg@10": {"diff": 0.17, "low": 0.16, "high": 0.18, "user_days": 900}},
        "oracle": {"recall@50": {"diff": -0.25, "low": -0.27, "high": -0.23,
                                 "user_days": 900}},
    },
}
CONFIG = {"model": "two_tower",
          "loop": {"batch_size": 100, "epochs": 3, "learning_rate": 0.002,
                   "monitor": "val_recall@50", "patience": 2},
          "params": {"embedding_dim": 64, "temperature": 0.05}}


def _history(validation: bool = True) -> list[dict]:
    """Two logged steps per epoch over 3 epochs of 10 steps; validation at each epoch end,
    best at epoch 2 (val_recall@50 0.41)."""
    entries = []
    for epoch, (val_recall, val_loss) in enumerate(((0.3, 2.0), (0.41, 1.7), (0.39, 1.8)), 1):
        for k, loss in ((5, 3.0 / epoch), (10, 2.0 / epoch)):
            entry = {"step": (epoch - 1) * 10 + k, "epoch": epoch, "loss": loss,
                     "examples_per_sec": 500.0, "learning_rate": 0.002}
            if validation and k == 10:
                entry.update({"val_recall@10": val_recall / 2, "val_recall@50": val_recall,
                              "val_ndcg@10": val_recall / 3, "val_ndcg@50": val_recall / 2.5,
                              "val_auc": 0.8, "val_loss": val_loss})
            entries.append(entry)
    return entries


def _row(page: str, first_cell: str) -> str:
    """The <tr> of the first table row whose first cell is `first_cell`."""
    match = re.search(rf"<tr[^>]*><td>{re.escape(first_cell)}</td>.*?</tr>", page)
    assert match, f"no row {first_cell!r}"
    return match.group(0)


def _cells(row: str) -> list[str]:
    return re.findall(r"<td>(.*?)</td>", row)


class _Manifest:
    train_days = [f"2026-01-{d:02d}" for d in range(1, 13)]
    validation_days = ["2026-01-13"]
    holdout_days = ["2026-01-14"]


def test_the_top_has_model_version_training_time_settings_code_and_days(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(CONFIG))
    (model / "history.json").write_text(json.dumps(_history()))
    (model / "summary.json").write_text(json.dumps(
        {"model": "two_tower", "epochs_run": 3, "stopped_early": False, "best_epoch": 2,
         "best_val_recall@50": 0.41,
         "memory_scale": {"rule": "one_se", "scale": 3.0, "ndcg@10": 0.44, "recall@50": 0.76,
                          "table": []},
         "cold_anchor_offset": {"rule": "one_se", "logit": 0.6, "offset": 0.03,
                                "recall@50": 0.762, "cold_anchor_recall@50": 0.257, "table": [
             {"logit": 0.0, "recall@50": 0.764, "cold_anchor_recall@50": 0.049},
             {"logit": 0.6, "recall@50": 0.762, "cold_anchor_recall@50": 0.257}]}}))
    facts = report.run_facts(model, _Manifest(), version=3, code="abc1234")
    assert facts["cold-anchor offset"] == ("0.6 logit (one_se; validation recall@50 0.762, "
                                           "cold anchors 0.257)")
    assert facts["memory scale"] == "3 (one_se; validation NDCG@10 0.44)"
    # 30 steps of 100 examples at 500 examples/s: 6 seconds in training steps
    assert facts["training seconds (steps, from the history)"] == pytest.approx(6.0)
    assert facts["model"] == "two_tower" and facts["published version"] == 3
    assert (facts["epochs run"], facts["best epoch"], facts["stopped early"]) == (3, 2, False)
    assert facts["code version"] == "abc1234" and facts["trained at"].endswith("+00:00")
    assert facts["train days"] == "2026-01-01 to 2026-01-12 (12 days)"
    assert (facts["validation days"], facts["test days"]) == ("2026-01-13", "2026-01-14")
    (model / "summary.json").write_text(json.dumps({"model": "item_cf"}))  # no epochs
    facts = report.run_facts(model, code="abc1234")
    assert facts["published version"] == report.UNPUBLISHED and "epochs run" not in facts
    assert "test days" not in facts  # no manifest
    facts = report.run_facts(model, _Manifest(), version=3, code="abc1234")

    page = report.build_report("t", facts, _history(), EVAL, {}, None, config=CONFIG,
                               version=3)
    top = page[:page.index("<h2>Settings</h2>")]
    for fact, value in (("model", "two_tower"), ("published version", "3"),
                        ("training seconds (steps, from the history)", "6.000"),
                        ("code version", "abc1234"), ("test days", "2026-01-14")):
        assert f"<tr><td>{fact}</td><td>{value}</td></tr>" in top
    # loop and model settings, each a row, numbers rounded
    assert "<tr><td>loop</td><td>batch_size</td><td>100</td></tr>" in page
    assert "<tr><td>loop</td><td>learning_rate</td><td>0.002</td></tr>" in page
    assert "<tr><td>model</td><td>temperature</td><td>0.050</td></tr>" in page
    assert "<p>no settings (config.json)</p>" in report.build_report("t", {}, [], None, {},
                                                                     None)


def test_code_version_is_the_short_commit_else_the_package_version(tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t",
                               "-c", "user.email=t@t", *args], check=True, text=True,
                              capture_output=True).stdout.strip()

    git("init", "-q")
    (repo / "a.txt").write_text("a")
    git("add", "a.txt")
    git("commit", "-q", "-m", "a")
    short = git("rev-parse", "--short", "HEAD")
    assert report.code_version(repo) == short
    (repo / "a.txt").write_text("b")  # an uncommitted change to a tracked file
    assert report.code_version(repo) == f"{short}+dirty"
    # not a git checkout: the installed package's version, else "unknown"
    outside = report.code_version(tmp_path / "not-a-repo")
    assert re.fullmatch(r"livestream-recsys \S+|unknown", outside)

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(report.subprocess, "run", no_git)
    assert report.code_version(repo) == outside


def test_validation_curves_mark_the_best_epoch():
    rows = report.epoch_rows(_history())
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    # epoch 2's training loss: steps 11-15 at 1.5 and 16-20 at 1.0
    assert rows[1]["train loss"] == pytest.approx(1.25) and rows[1]["val_loss"] == 1.7
    assert report.best_epoch_of(rows) == 2
    page = report.build_report("t", {}, _history(), None, {}, None, config=CONFIG)
    assert len(_images(page)) == 2  # training loss, validation curves
    assert "<img alt='validation curves'" in page
    assert "<p>Best epoch by val_recall@50: 2 (the model keeps its weights).</p>" in page
    best = _row(page, "2")
    assert best.startswith("<tr class='pass'>")
    assert _cells(best)[:5] == ["2", "20", "1.250", "1.700", "0.205"]
    assert _cells(best)[-1] == "best: the model keeps its weights"
    assert "class='pass'" not in _row(page, "3")
    # the training summary's best epoch wins over the history's
    page = report.build_report("t", {}, _history(), None, {}, None, config=CONFIG,
                               best_epoch=3)
    assert "Best epoch by val_recall@50: 3" in page


def test_a_history_without_validation_entries_still_plots_the_loss():
    history = _history(validation=False)
    assert report.epoch_rows(history) == [] and report.best_epoch_of([]) is None
    page = report.build_report("t", {}, history, None, {}, None, config=CONFIG)
    assert len(_images(page)) == 1 and "<img alt='loss'" in page
    assert ("<p>no validation metrics in the history (an older run, or no validation "
            "days)</p>") in page
    assert "Best epoch" not in page


def test_the_model_is_compared_with_every_baseline_with_intervals():
    rows, references = report.comparison_rows(EVAL)
    # sorted by recall@50; the oracle apart, as a reference
    assert [r["scorer"] for r in rows] == ["model", "rewatch", "recent_popularity", "random"]
    assert [r["scorer"] for r in references] == ["oracle"]
    rewatch = rows[1]
    assert rewatch["model - scorer recall@50"] == "+0.021 [+0.010, +0.033]"
    assert rewatch["recall@50 verdict"] == "better"
    assert rewatch["model - scorer ndcg@10"] == "-0.021 [-0.030, +0.004]"
    assert rewatch["ndcg@10 verdict"] == "not distinguishable"
    assert references[0]["recall@50 verdict"] == "worse"
    assert report.verdict({"diff": 0.1, "user_days": 1}) == "no interval"
    assert report.verdict(None) == "–"

    page = report.build_report("t", {}, [], EVAL, {}, None)
    section = page[page.index("against the baselines"):page.index("<h3>All metrics</h3>")]
    assert "95% bootstrap interval" in section
    assert _cells(_row(section, "model"))[:3] == ["model", "0.452", "0.179"]
    assert _cells(_row(section, "rewatch")) == [
        "rewatch", "0.431", "0.200", "+0.021 [+0.010, +0.033]", "better",
        "-0.021 [-0.030, +0.004]", "not distinguishable", "900"]
    assert section.index("<td>rewatch</td>") < section.index("<td>recent_popularity</td>") \
        < section.index("<td>random</td>") < section.index("References (not baselines")
    refs = section[section.index("References (not baselines"):]
    assert _cells(_row(refs, "oracle"))[:5] == ["oracle", "0.700", "0.400",
                                                "-0.250 [-0.270, -0.230]", "worse"]
    assert "<tr><td>user_days</td><td>900</td></tr>" in section  # the test days' support


def test_weak_slices_are_said_in_a_sentence_with_their_support():
    rows = {r["slice"]: r for r in report.slice_rows(EVAL)}
    assert rows["cold_anchor"]["note"] == (
        "Cold anchors: recall@50 0.080 on 312 user-days, below recent popularity's 0.120.")
    assert rows["cold_user"]["note"] == "Cold users: only 14 user-days, too few to judge."
    assert rows["warm_user"]["note"] == rows["warm_anchor"]["note"] == ""
    assert rows["cold_anchor"]["best baseline (recall@50)"] == "recent_popularity"
    half = {**EVAL, "baselines": {}, "slices": {
        "warm_user": {"users": 50, "recall@50": 0.2}, "cold_user": {"users": 0}}}
    rows = {r["slice"]: r for r in report.slice_rows(half)}
    assert rows["warm_user"]["note"] == (
        "Warm users: recall@50 0.200 on 50 user-days, under half the model's overall 0.452.")
    assert rows["cold_user"]["note"] == "Cold users: no user-day with a positive in this slice."

    page = report.build_report("t", {}, [], EVAL, {}, None)
    slices = page[page.index("<h2>Warm and cold slices</h2>"):]
    assert ("<p class='weak'>Cold anchors: recall@50 0.080 on 312 user-days, below recent "
            "popularity&#39;s 0.120.</p>") in slices
    assert _row(slices, "cold_anchor").startswith("<tr class='fail'>")
    assert _cells(_row(slices, "warm_user"))[:2] == ["warm_user", "886"]  # the support
    assert "<th>user-days</th>" in slices


def test_every_number_on_the_page_has_3_decimals_and_the_headline_heads_it():
    page = report.build_report("t", {"seconds": 83.25}, _history(), EVAL, GATES, None,
                               config=CONFIG, version=3)
    # up to the gate reports, whose thresholds are the gates' own text (">= 0.55")
    text = re.sub(r"base64,[A-Za-z0-9+/=]+", "", page[:page.index("<h2>model gate")])
    assert "0.452" in text and "0.4523" not in text and "83.250" in text
    # every decimal number in a cell has exactly 3 decimals (scientific for tiny ones)
    decimals = re.findall(r"<td>[^<]*?(-?\d+\.(\d+))", text)
    assert decimals and all(len(d) == 3 for _, d in decimals)
    line = ("two_tower v3: recall@50 0.452 on test days 2026-01-14 vs best baseline "
            "rewatch 0.431 (+0.021 [+0.010, +0.033])")
    assert f"<p class='headline'>{line}</p>" in page
    assert page.index("class='headline'") < page.index("<table>")


@pytest.mark.parametrize(("metrics", "line"), [
    (EVAL, "two_tower v3: recall@50 0.452 on test days 2026-01-14 vs best baseline rewatch "
           "0.431 (+0.021 [+0.010, +0.033])"),
    ({**EVAL, "comparisons": {}}, "two_tower v3: recall@50 0.452 on test days 2026-01-14 vs "
                                  "best baseline rewatch 0.431 (–)"),
    ({**EVAL, "baselines": {"oracle": {"recall@50": 0.9}}},
     "two_tower v3: recall@50 0.452 on test days 2026-01-14; no baseline to compare with"),
    ({**EVAL, "eval_days": ["2026-01-11", "2026-01-12", "2026-01-13", "2026-01-14"],
      "comparisons": {"rewatch": {"recall@50": {"diff": 0.02, "user_days": 1}}}},
     "two_tower v3: recall@50 0.452 on test days 2026-01-11 to 2026-01-14 (4 days) vs best "
     "baseline rewatch 0.431 (+0.020 (no interval))"),
])
def test_the_headline_puts_the_model_beside_the_best_baseline(metrics, line):
    assert report.headline(metrics, "two_tower", 3) == line


def _publish_version(models, version: int, metrics: dict) -> None:
    manifest = {"model": "two_tower", "version": version, "metrics": metrics,
                "artifacts": ["user_tower", "anchor_tower"]}
    for artifact in manifest["artifacts"]:
        folder = models / artifact / str(version)
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps(manifest))


def test_the_release_summary_ends_with_the_model_beside_the_best_baseline(tmp_path, capsys):
    models = tmp_path / "models"
    _publish_version(models, 2, {**EVAL, "model": {"recall@50": 0.4}})
    _publish_version(models, 3, EVAL)
    lines = release.describe_version(models).splitlines()
    assert lines[-1] == ("two_tower v3: recall@50 0.452 on test days 2026-01-14 vs best "
                         "baseline rewatch 0.431 (+0.021 [+0.010, +0.033])")
    # the oracle scores highest but is a reference, not the best baseline
    assert [line for line in lines if "<- best baseline" in line][0].startswith("rewatch ")
    assert [line for line in lines if line.startswith("oracle ")][0].endswith("(reference)")
    assert release.describe_version(models, 2).splitlines()[-1].startswith(
        "two_tower v2: recall@50 0.400 ")
    assert release.main(["--models", str(models)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == lines[-1]


STUDY = {  # training.tune's study.json, cut to what the page and the manifest read
    "study": "study", "model": "two_tower", "run_id": "tiny",
    "days": {"train": ["2026-02-04", "2026-02-05"], "validation": ["2026-02-05"],
             "test": ["2026-02-06"], "tuning_train": ["2026-02-04"]},
    "sample": {"users_fraction": 0.5},
    "best": {"number": 2, "value": 0.7, "params": {"learning_rate": 0.003},
             "settings": {"learning_rate": 0.003, "batch_size": 64}},
    "trials": [{"number": 0, "state": "complete", "value": 0.5, "epochs_run": 4,
                "seconds": 40.0},
               {"number": 1, "state": "pruned", "value": None, "epochs_run": 1,
                "seconds": 10.0},
               {"number": 2, "state": "complete", "value": 0.7, "epochs_run": 2,
                "seconds": 20.0}],
    "history": [{"number": 0, "state": "complete", "value": 0.5, "best_so_far": 0.5},
                {"number": 1, "state": "pruned", "value": 0.2, "best_so_far": 0.5},
                {"number": 2, "state": "complete", "value": 0.7, "best_so_far": 0.7}],
    "importances": {"learning_rate": 0.8, "gamma": 0.2},
    "timings": {"trials": 3, "complete": 2, "pruned": 1, "other": 0, "trials_per_hour": 90.0},
}


def test_a_run_from_a_study_shows_its_history_and_importances_and_publishes_them(tiny_set,
                                                                                   tmp_path):
    run = release.RunFolder(tmp_path / "run")
    run.model.mkdir(parents=True)
    (run.model / "metrics.json").write_text(json.dumps(METRICS))
    plain = report.write_run_report(tmp_path / "plain.html", tiny_set, run.model, run.metrics,
                                    {}).read_text()
    assert "Tuning study" not in plain
    assert release.publish_record(tiny_set, run, "two_tower")["study"] is None
    run.tune.mkdir()
    run.study.write_text(json.dumps(STUDY))
    page = report.write_run_report(tmp_path / "tuned.html", tiny_set, run.model, run.metrics,
                                   {}, study_path=run.study).read_text()
    assert len(_images(page)) == len(_images(plain)) + 2  # history and importances
    assert "alt='study history'" in page and "alt='parameter importances'" in page
    assert "<td>test days (never seen by a trial)</td><td>2026-02-06</td>" in page
    assert "<tr class='pass'><td>2</td><td>complete</td><td>0.700</td>" in page  # best trial
    record = release.publish_record(tiny_set, run, "two_tower")
    assert record["study"]["best_trial"] == 2 and record["study"]["best_value"] == 0.7
    assert record["study"]["settings"] == {"learning_rate": 0.003, "batch_size": 64}
    assert record["study"]["days"]["test"] == ["2026-02-06"]
    assert record["training_set"]["holdout_days"] == ["2026-02-06"]


def test_a_study_without_importances_says_why():
    page = report.build_report("t", {}, [], None, {}, None,
                               study={**STUDY, "importances": None,
                                      "note": "importances need at least 3 complete trials"})
    assert "alt='study history'" in page and "alt='parameter importances'" not in page
    assert "no parameter importances (importances need at least 3 complete trials)" in page
