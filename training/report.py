"""An HTML page about one training run, written beside each published version.

The page is `templates/report.html.j2`, rendered by jinja2 with autoescape on: every fact,
metric name and gate note is text, never markup. Plots are matplotlib PNGs (Agg canvas, no
pyplot) embedded as base64, so the page is one file: training loss, recall/NDCG@K against
the baselines, warm/cold slices, the positive rate per label day and a few feature
histograms from the training set; then the gate reports.
"""

from __future__ import annotations

import base64
import io
import json
import math
import numbers
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np

from features.files import atomic_write_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from training.reader import TrainingSet

RANKING_METRICS = ("recall@10", "recall@50", "ndcg@10", "ndcg@50", "auc")
SLICES = ("warm_user", "cold_user", "warm_anchor", "cold_anchor")
FEATURES = ("user_sessions", "user_avg_watch_seconds", "anchor_sessions",
            "anchor_distinct_viewers")
GATE_COLUMNS = ("name", "status", "value", "threshold", "note")
MISSING = "–"
TEMPLATE = "report.html.j2"


def _figure(width: float = 7.0, height: float = 3.2) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)  # no pyplot, no GUI: safe in workers and threads
    return figure


def png_base64(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def loss_figure(history: Sequence[Mapping[str, Any]]) -> Figure:
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


def ranking_figure(metrics: Mapping[str, Any]) -> Figure:
    figure = _figure()
    series = {"model": metrics.get("model", {}), **metrics.get("baselines", {})}
    _grouped_bars(figure.add_subplot(), RANKING_METRICS, series)
    figure.axes[0].set(title=f"eval days {', '.join(metrics.get('eval_days', []))}")
    return figure


def _slices(metrics: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Slice metrics of the model and of each baseline: scorer -> slice -> metric -> value."""
    return {"model": metrics.get("slices", {}),
            **{name: values.get("slices", {})
               for name, values in metrics.get("baselines", {}).items()}}


def slices_figure(metrics: Mapping[str, Any], metric: str = "recall@50") -> Figure:
    """`metric` of the model and of each baseline in the warm and cold slices."""
    figure = _figure()
    series = {name: {s: slices.get(s, {}).get(metric) for s in SLICES}
              for name, slices in _slices(metrics).items()}
    _grouped_bars(figure.add_subplot(), SLICES, series)
    figure.axes[0].set(title=f"{metric} by warm / cold slice")
    return figure


def positive_rate_figure(days: np.ndarray, labels: np.ndarray,
                         holdout: Sequence[str]) -> Figure:
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


def histograms_figure(columns: Mapping[str, np.ndarray]) -> Figure:
    names = [n for n in FEATURES if n in columns]
    figure = _figure(7.0, 2.2 * ((len(names) + 1) // 2))
    for i, name in enumerate(names):
        ax = figure.add_subplot((len(names) + 1) // 2, 2, i + 1)
        values = np.asarray(columns[name], dtype=float)
        ax.hist(np.log1p(np.clip(values[np.isfinite(values)], 0, None)), bins=40)
        ax.set_title(f"log1p({name})", fontsize=9)
    return figure


def read_examples(data: TrainingSet, max_feature_rows: int = 50_000) -> dict[str, np.ndarray]:
    """dt and label of every example (train + validation), and the FEATURES columns of up to
    `max_feature_rows` training rows (the train table is shuffled: its head is a sample)."""
    parts = [data.read(split, ("dt", "label")) for split in ("train", "validation")]
    out = {c: np.concatenate([p[c] for p in parts]) for c in ("dt", "label")}
    out.update(data.read("train", FEATURES, limit=max_feature_rows))
    return out


def _round(x: float) -> str:
    """4 significant digits; whole numbers from 1000 up without an exponent."""
    if math.isnan(x):
        return MISSING
    if x == 0 or math.isinf(x):
        return "0" if x == 0 else str(x)  # "inf", "-inf"
    if abs(x) >= 1e15:
        return f"{x:.3e}"
    return f"{x:.0f}" if abs(x) >= 999.95 else f"{x:.4g}"  # 999.95 would print as 1e+03


def _text(value: Any, nested: bool = False) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):  # counts stay exact
        return str(int(value))
    if isinstance(value, numbers.Real):
        return _round(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        text = ", ".join(f"{k}: {_text(v, True)}" for k, v in value.items())
        return f"{{{text}}}" if nested else text
    if isinstance(value, list | tuple | np.ndarray):
        text = ", ".join(_text(v, True) for v in value)
        return f"[{text}]" if nested else text
    return str(value)


def cell(value: Any, limit: int = 160) -> str:
    """A table cell as plain text (the template escapes it): numbers to 4 significant digits,
    integers exact, None and NaN as "–", mappings as "k: v, ...", long text cut."""
    text = _text(value)
    return text if len(text) <= limit else text[:limit] + "..."


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("training", "templates"), autoescape=True,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["cell"] = cell
    return environment


def _columns(rows: Sequence[Mapping[str, Any]], known: Sequence[str]) -> list[str]:
    """`known` first, then every other scalar key of the rows in first-seen order."""
    columns = list(known)
    for row in rows:
        columns += [k for k, v in row.items() if k not in columns and not isinstance(v, Mapping)]
    return columns


def build_report(title: str, facts: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                 metrics: Mapping[str, Any] | None, gates: Mapping[str, Mapping[str, Any]],
                 examples: Mapping[str, np.ndarray] | None,
                 holdout_days: Sequence[str] = (),
                 training_set: Mapping[str, Any] | None = None) -> str:
    """The page as one HTML string; sections whose input is missing say so.

    `facts` is the table at the top; `training_set` the facts of the training set's manifest.
    """
    page: dict[str, Any] = {
        "title": title, "facts": facts, "training_set": training_set, "gates": gates,
        "loss": png_base64(loss_figure(history)) if history else None,
        "metrics": None, "labels": None, "features": None}
    if metrics:
        scorers = [{"scorer": name, **values} for name, values in
                   {"model": metrics.get("model", {}), **metrics.get("baselines", {})}.items()]
        slices = [{"slice": s, **metrics.get("slices", {}).get(s, {})} for s in SLICES]
        has_slices = any(_slices(metrics).values())
        page["metrics"] = {
            "ranking": png_base64(ranking_figure(metrics)),
            "scorers": scorers, "scorer_columns": _columns(scorers, ("scorer", *RANKING_METRICS)),
            "slices_plot": png_base64(slices_figure(metrics)) if has_slices else None,
            "slices": slices,
            "slice_columns": _columns(slices, ("slice", "users", *RANKING_METRICS[:-1]))}
    if examples is not None and len(examples.get("label", [])):
        page["labels"] = png_base64(positive_rate_figure(
            examples["dt"], examples["label"], holdout_days))
    if examples is not None and any(len(examples.get(n, [])) for n in FEATURES):
        page["features"] = png_base64(histograms_figure(examples))
    return _environment().get_template(TEMPLATE).render(page, gate_columns=GATE_COLUMNS)


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def training_set_facts(data: TrainingSet) -> dict[str, Any]:
    """The manifest of the training set as (fact, value) pairs for the page."""
    manifest = data.manifest
    return {"run_id": manifest.run_id, "end": manifest.end, "label days (M)": manifest.days,
            "window (N)": manifest.window, "train days": manifest.train_days,
            "holdout days": manifest.holdout_days,
            "train rows": manifest.counts.train.rows,
            "validation rows": manifest.counts.validation.rows,
            "candidates": manifest.counts.candidates,
            "source table versions": manifest.source_versions}


def write_run_report(out: Path, data: TrainingSet, model_dir: Path, metrics_path: Path,
                     gate_paths: Mapping[str, Path],
                     facts: Mapping[str, Any] | None = None) -> Path:
    """Gather a run's files (history.json, metrics.json, gate reports, training set) and
    write the page to `out` atomically.

    `facts` (model name and version, training time, code version, settings...) head the
    page, followed by each gate's verdict; gates whose report file is absent are left out.
    """
    gates = {name: _json(p) for name, p in gate_paths.items() if p.is_file()}
    top = {**(facts or {}),
           **{name: "passed" if g.get("passed") else "FAILED" for name, g in gates.items()}}
    page = build_report(f"Training run {data.run_id}", top,
                        _json(Path(model_dir) / "history.json") or [], _json(metrics_path),
                        gates, read_examples(data), data.manifest.holdout_days,
                        training_set=training_set_facts(data))
    return atomic_write_text(out, page)
