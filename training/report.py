"""An HTML page about one training run, written beside each published version.

Plots (matplotlib on the Agg canvas, PNGs embedded as base64, so the page is one file):
training loss, recall/NDCG@K against the baselines, warm/cold slices, the positive rate per
label day and a few feature histograms from the training set; then the gate reports.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RANKING_METRICS = ("recall@10", "recall@50", "ndcg@10", "ndcg@50", "auc")
SLICES = ("warm_user", "cold_user", "warm_anchor", "cold_anchor")
FEATURES = ("user_sessions", "user_avg_watch_seconds", "anchor_sessions",
            "anchor_distinct_viewers")
_CSS = """body{font-family:sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;
font-size:13px;text-align:left}.fail{background:#fdd}.skip{background:#eee}
.pass{background:#dfd}img{max-width:100%}"""


def _figure(width: float = 7.0, height: float = 3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # no pyplot, no GUI: safe in workers and threads
    return figure


def png_base64(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def loss_figure(history: Sequence[Mapping[str, Any]]):
    figure = _figure()
    ax = figure.add_subplot()
    steps = [h["step"] for h in history]
    losses = np.asarray([h["loss"] for h in history], dtype=float)
    ax.plot(steps, losses, lw=0.8, alpha=0.5, label="loss")
    if len(losses) >= 10:  # a moving average shows the trend under batch noise
        k = max(len(losses) // 20, 2)
        ax.plot(steps[k - 1:], np.convolve(losses, np.ones(k) / k, mode="valid"),
                label=f"mean of {k} steps")
    ax.set(xlabel="step", ylabel="loss", title="training loss")
    ax.legend()
    return figure


def _number(value: Any) -> float:
    """A bar height: missing and NaN (a slice without users) draw as 0."""
    return 0.0 if value is None or value != value else float(value)


def _grouped_bars(ax: Any, groups: Sequence[str], series: Mapping[str, Mapping[str, Any]]):
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        heights = [_number(values.get(g)) for g in groups]
        ax.bar(x + i * width, heights, width, label=name)
    ax.set_xticks(x + width * (len(series) - 1) / 2, groups)
    ax.legend(fontsize=8)


def ranking_figure(metrics: Mapping[str, Any]):
    figure = _figure()
    series = {"model": metrics.get("model", {}), **metrics.get("baselines", {})}
    _grouped_bars(figure.add_subplot(), RANKING_METRICS, series)
    figure.axes[0].set(title=f"eval days {', '.join(metrics.get('eval_days', []))}")
    return figure


def slices_figure(metrics: Mapping[str, Any], metric: str = "recall@50"):
    """`metric` of the model and of each baseline in the warm and cold slices."""
    figure = _figure()
    scorers = {"model": metrics.get("slices", {}),
               **{name: values.get("slices", {})
                  for name, values in metrics.get("baselines", {}).items()}}
    series = {name: {s: slices.get(s, {}).get(metric) for s in SLICES}
              for name, slices in scorers.items()}
    _grouped_bars(figure.add_subplot(), SLICES, series)
    figure.axes[0].set(title=f"{metric} by warm / cold slice")
    return figure


def positive_rate_figure(days: np.ndarray, labels: np.ndarray, holdout: Sequence[str]):
    figure = _figure()
    ax = figure.add_subplot()
    unique = sorted(set(days.tolist()))
    rates = [float(labels[days == d].mean()) for d in unique]
    counts = [int((days == d).sum()) for d in unique]
    colors = ["tab:orange" if d in holdout else "tab:blue" for d in unique]
    ax.bar(range(len(unique)), rates, color=colors)
    ax.set_xticks(range(len(unique)), [d[5:] for d in unique], rotation=45, fontsize=8)
    ax.set(ylabel="positive rate", title="labels per day (orange: held out)")
    for i, n in enumerate(counts):
        ax.text(i, rates[i], f"{n}", ha="center", va="bottom", fontsize=7)
    return figure


def histograms_figure(columns: Mapping[str, np.ndarray]):
    names = [n for n in FEATURES if n in columns]
    figure = _figure(7.0, 2.2 * ((len(names) + 1) // 2))
    for i, name in enumerate(names):
        ax = figure.add_subplot((len(names) + 1) // 2, 2, i + 1)
        values = np.asarray(columns[name], dtype=float)
        ax.hist(np.log1p(np.clip(values[np.isfinite(values)], 0, None)), bins=40)
        ax.set_title(f"log1p({name})", fontsize=9)
    return figure


def load_examples(lake_root: Path, manifest: Mapping[str, Any],
                  max_feature_rows: int = 50_000) -> dict[str, np.ndarray]:
    """dt and label of every example (train + validation), and the FEATURES columns of up to
    `max_feature_rows` training rows (the train table is shuffled: its head is a sample)."""
    def read(name: str, columns: Sequence[str]):
        path = Path(lake_root) / manifest["tables"][name]
        if manifest.get("format", "delta") == "delta":
            from deltalake import DeltaTable

            return DeltaTable(str(path)).to_pyarrow_table(columns=list(columns))
        import pyarrow.parquet as pq

        return pq.read_table(path, columns=list(columns))

    parts = [read(n, ("dt", "label")) for n in ("train", "validation")]
    out = {"dt": np.concatenate([p.column("dt").to_numpy(zero_copy_only=False)
                                 for p in parts]),
           "label": np.concatenate([p.column("label").to_numpy() for p in parts])}
    features = read("train", FEATURES).slice(0, max_feature_rows)
    out.update({n: features.column(n).to_numpy(zero_copy_only=False) for n in FEATURES})
    return out


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        css = html.escape(str(row.get("status", "")))
        cells = "".join(f"<td>{html.escape(_short(row.get(c)))}</td>" for c in columns)
        body.append(f"<tr class='{css}'>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."


def _image(figure: Any, alt: str) -> str:
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{png_base64(figure)}'>"


def build_report(title: str, facts: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                 metrics: Mapping[str, Any] | None, gates: Mapping[str, Mapping[str, Any]],
                 examples: Mapping[str, np.ndarray] | None,
                 holdout_days: Sequence[str] = ()) -> str:
    """The page as one HTML string; sections whose input is missing say so."""
    parts = [f"<h1>{html.escape(title)}</h1>",
             _table([{"fact": k, "value": v} for k, v in facts.items()], ("fact", "value"))]
    parts.append("<h2>Training loss</h2>")
    parts.append(_image(loss_figure(history), "loss") if history else "<p>no history</p>")
    parts.append("<h2>Ranking on the held-out day</h2>")
    if metrics:
        parts.append(_image(ranking_figure(metrics), "ranking"))
        rows = [{"scorer": name, **values} for name, values in
                {"model": metrics.get("model", {}), **metrics.get("baselines", {})}.items()]
        parts.append(_table(rows, ("scorer", *RANKING_METRICS)))
        parts.append("<h2>Warm and cold slices</h2>" + _image(slices_figure(metrics), "slices"))
        rows = [{"slice": s, **metrics.get("slices", {}).get(s, {})} for s in SLICES]
        parts.append(_table(rows, ("slice", "users", *RANKING_METRICS[:-1])))
    else:
        parts.append("<p>no metrics</p>")
    if examples is not None and len(examples.get("label", [])):
        parts.append("<h2>Labels</h2>" + _image(positive_rate_figure(
            examples["dt"], examples["label"], holdout_days), "labels"))
        parts.append("<h2>Features (training sample)</h2>"
                     + _image(histograms_figure(examples), "features"))
    for name, report in gates.items():
        verdict = "passed" if report.get("passed") else "FAILED"
        parts.append(f"<h2>{html.escape(name)}: {verdict}</h2>")
        parts.append(_table(report.get("checks", []),
                            ("name", "status", "value", "threshold", "note")))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{_CSS}</style></head><body>{''.join(parts)}</body></html>")


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def write_run_report(out: Path, lake_root: Path, manifest: Mapping[str, Any],
                     model_dir: Path, metrics_path: Path,
                     gate_paths: Mapping[str, Path]) -> Path:
    """Gather a run's files (history.json, metrics.json, gate reports, training set) and
    write the page to `out`."""
    gates = {name: _json(p) for name, p in gate_paths.items() if p.is_file()}
    counts = manifest.get("counts", {})
    facts = {"run_id": manifest.get("run_id"), "end": manifest.get("end"),
             "label days (M)": manifest.get("days"), "window (N)": manifest.get("window"),
             "train days": ", ".join(manifest.get("train_days", [])),
             "holdout days": ", ".join(manifest.get("holdout_days", [])),
             "train rows": counts.get("train", {}).get("rows"),
             "validation rows": counts.get("validation", {}).get("rows"),
             "candidates": counts.get("candidates"),
             "source table versions": manifest.get("source_versions"),
             **{f"{n}": "passed" if g.get("passed") else "FAILED" for n, g in gates.items()}}
    page = build_report(f"Training run {manifest.get('run_id')}", facts,
                        _json(Path(model_dir) / "history.json") or [], _json(metrics_path),
                        gates, load_examples(lake_root, manifest),
                        manifest.get("holdout_days", []))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out
