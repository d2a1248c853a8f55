"""An HTML page about one training run, written beside each published version: is this model
good?

The page is `templates/report.html.j2`, rendered by jinja2 with autoescape on: every fact,
metric name and gate note is text, never markup. Plots are matplotlib PNGs (Agg canvas, no
pyplot) embedded as base64, so the page is one file. From the top: a one-line verdict (the
model's recall@50 beside the best baseline's), the run's facts (model, version, training
time, code version, train / validation / test days) and settings; the training loss and the
per-epoch validation curves with the best epoch marked; the model against every baseline on
the test days with the difference's interval and a verdict word (oracles apart, as
references); warm/cold slices with their support and a sentence where one is weak; labels
per day, a few feature histograms and the gate reports. Numbers show 3 decimals.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import math
import numbers
import subprocess
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import numpy as np

from features.files import atomic_write_text
from training.model_gate import best_baseline, is_reference

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
HEADLINE_METRIC = "recall@50"  # the gate's metric: the headline and the table's order
COMPARED = ("recall@50", "ndcg@10")  # the metrics the evaluation compares with intervals
MONITOR = "val_recall@50"  # early stopping's default (training.config.LoopConfig.monitor)
COLD_ANCHOR_CURVE = "val_cold_anchor_recall@50"  # can fall while val_recall@50 rises
VALIDATION_CURVES = ("val_recall@10", "val_recall@50", "val_ndcg@10", "val_ndcg@50", "val_auc",
                     COLD_ANCHOR_CURVE)
UNPUBLISHED = "set at publication (manifest.json beside this page)"
MIN_SLICE_SUPPORT = 20  # user-days: fewer is too few to judge (the model gate's default)
EPOCH_COLUMNS = ("epoch", "step", "train loss", "val_loss", *VALIDATION_CURVES,
                 "learning_rate", "note")


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


def _best_step(history: Sequence[Mapping[str, Any]], best_epoch: int | None) -> int | None:
    """The step that ended `best_epoch` (its validation entry), if the history has it."""
    steps = [h["step"] for h in history if h.get("epoch") == best_epoch and "step" in h]
    return max(steps) if best_epoch is not None and steps else None


def loss_figure(history: Sequence[Mapping[str, Any]], best_epoch: int | None = None) -> Figure:
    figure = _figure()
    ax = figure.add_subplot()
    steps = [h["step"] for h in history]
    losses = np.asarray([h["loss"] for h in history], dtype=float)
    ax.plot(steps, losses, lw=0.8, alpha=0.5, label="loss")
    if len(losses) >= 10:  # a moving average shows the trend under batch noise
        k = max(len(losses) // 20, 2)
        ax.plot(steps[k - 1:], np.convolve(losses, np.ones(k) / k, mode="valid"),
                label=f"mean of {k} steps")
    best = _best_step(history, best_epoch)
    if best is not None:
        ax.axvline(best, color="tab:green", ls="--", lw=1, label=f"end of best epoch {best_epoch}")
    ax.set(xlabel="step", ylabel="loss", title="training loss")
    ax.legend()
    return figure


def _value(value: Any) -> float | None:
    """A finite float, or None (missing, NaN, not a number)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def epoch_rows(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per epoch that has validation metrics (`val_*`): the epoch, its last step,
    the mean training loss over its steps (weighted by the steps each history entry covers),
    every `val_*` value and the learning rate. Empty for a history without validation (an
    older run, or a training set without validation days)."""
    train: dict[int, list[tuple[float, float]]] = {}
    validation: dict[int, Mapping[str, Any]] = {}
    previous = 0
    for entry in sorted((h for h in history if "step" in h), key=lambda h: h["step"]):
        epoch, loss = entry.get("epoch"), _value(entry.get("loss"))
        if epoch is not None and loss is not None:
            train.setdefault(epoch, []).append((loss, max(entry["step"] - previous, 1)))
        previous = entry["step"]
        if epoch is not None and any(k.startswith("val_") for k in entry):
            validation[epoch] = entry  # the last one, should an epoch hold two
    rows = []
    for epoch in sorted(validation):
        entry, losses = validation[epoch], train.get(epoch, [])
        weight = sum(w for _, w in losses)
        rows.append({"epoch": epoch, "step": entry["step"],
                     "train loss": sum(v * w for v, w in losses) / weight if weight else None,
                     **{k: v for k, v in entry.items() if k.startswith("val_")},
                     "learning_rate": entry.get("learning_rate")})
    return rows


def best_epoch_of(rows: Sequence[Mapping[str, Any]], monitor: str = MONITOR) -> int | None:
    """The epoch early stopping keeps: the first with the highest `monitor`."""
    scored = [(r["epoch"], _value(r.get(monitor))) for r in rows]
    scored = [(epoch, value) for epoch, value in scored if value is not None]
    if not scored:
        return None
    top = max(value for _, value in scored)
    return next(epoch for epoch, value in scored if value >= top - 1e-6)


def validation_figure(rows: Sequence[Mapping[str, Any]], best_epoch: int | None,
                      monitor: str = MONITOR) -> Figure:
    """Per epoch: training and validation loss (left), validation ranking metrics (right),
    the best epoch marked on both."""
    from matplotlib.ticker import MaxNLocator

    figure = _figure()
    epochs = [r["epoch"] for r in rows]

    def plot(ax: Any, key: str, **style: Any) -> None:
        values = [_value(r.get(key)) for r in rows]
        if any(v is not None for v in values):
            ax.plot(epochs, [np.nan if v is None else v for v in values], "o-", ms=3,
                    label=key, **style)

    losses, ranking = figure.add_subplot(1, 2, 1), figure.add_subplot(1, 2, 2)
    plot(losses, "train loss")
    plot(losses, "val_loss")
    for key in dict.fromkeys((monitor, "val_recall@50", "val_ndcg@10", COLD_ANCHOR_CURVE)):
        plot(ranking, key)
    for ax in (losses, ranking):
        if best_epoch is not None:
            ax.axvline(best_epoch, color="tab:green", ls="--", lw=1,
                       label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=8)
    losses.set_title("loss per epoch")
    ranking.set_title("validation days")
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
    """3 decimals; a nonzero value that would print as 0.000 (a learning rate, say) in
    3 significant digits, and so would a huge one."""
    if math.isnan(x):
        return MISSING
    if math.isinf(x):
        return str(x)  # "inf", "-inf"
    if x == 0:
        return "0.000"
    if abs(x) < 0.0005 or abs(x) >= 1e15:
        return f"{x:.2e}"
    return f"{x:.3f}"


def _signed(x: float | None) -> str:
    return MISSING if x is None else ("+" if x >= 0 else "") + _round(x)


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
    """A table cell as plain text (the template escapes it): numbers to 3 decimals,
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


def _interval(compared: Mapping[str, Any] | None) -> str:
    """"+0.021 [+0.010, +0.033]"; the difference alone when there is no interval."""
    compared = compared or {}
    diff, low, high = (_value(compared.get(k)) for k in ("diff", "low", "high"))
    if diff is None:
        return MISSING
    if low is None or high is None:
        return f"{_signed(diff)} (no interval)"
    return f"{_signed(diff)} [{_signed(low)}, {_signed(high)}]"


def verdict(compared: Mapping[str, Any] | None) -> str:
    """The model against a baseline from the interval of their difference: "better" when it
    lies above 0, "worse" below, "not distinguishable" when it holds 0."""
    compared = compared or {}
    low, high = _value(compared.get("low")), _value(compared.get("high"))
    if low is None or high is None:
        return "no interval" if _value(compared.get("diff")) is not None else MISSING
    return "better" if low > 0 else "worse" if high < 0 else "not distinguishable"


def _days(days: Sequence[str] | None) -> str:
    days = list(days or [])
    if len(days) <= 3:
        return ", ".join(days) or "none"
    return f"{days[0]} to {days[-1]} ({len(days)} days)"


def headline(metrics: Mapping[str, Any] | None, model: str | None = None,
             version: int | None = None) -> str:
    """One line: the model's recall@50 on the test days beside the best baseline's, with
    the difference and its interval, e.g. `two_tower v3: recall@50 0.452 on test days
    2026-01-14 vs best baseline rewatch 0.431 (+0.021 [+0.010, +0.033])`."""
    metrics = metrics or {}
    name = model or metrics.get("model_name") or "model"
    who = f"{name} v{version}" if version is not None else name
    ours = _value((metrics.get("model") or {}).get(HEADLINE_METRIC))
    line = (f"{who}: {HEADLINE_METRIC} {cell(ours)} on test days "
            f"{_days(metrics.get('eval_days'))}")
    best = best_baseline(metrics)
    if best is None:
        return f"{line}; no baseline to compare with"
    theirs = metrics["baselines"][best].get(HEADLINE_METRIC)
    compared = ((metrics.get("comparisons") or {}).get(best) or {}).get(HEADLINE_METRIC)
    return (f"{line} vs best baseline {best} {cell(theirs)} "
            f"({_interval(compared)})")


def comparison_rows(metrics: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
    """(scorers, references): the model and every baseline with their recall@50 and
    NDCG@10 and, for each baseline, the model's difference from it with its interval and a
    verdict, sorted by recall@50 (best first); oracles go to `references`."""
    comparisons = metrics.get("comparisons") or {}
    rows: list[dict] = [{"scorer": "model", "status": "pass",
                         **{m: (metrics.get("model") or {}).get(m) for m in COMPARED}}]
    for name, values in (metrics.get("baselines") or {}).items():
        row: dict[str, Any] = {"scorer": name, **{m: (values or {}).get(m) for m in COMPARED}}
        for m in COMPARED:
            compared = (comparisons.get(name) or {}).get(m)
            row[f"model - scorer {m}"] = _interval(compared)
            row[f"{m} verdict"] = verdict(compared)
            if compared and compared.get("user_days") is not None:
                row["user-days"] = compared["user_days"]
        rows.append(row)

    def order(row: Mapping[str, Any]) -> tuple[bool, float]:
        value = _value(row.get(HEADLINE_METRIC))
        return value is None, -(value or 0.0)

    rows.sort(key=order)
    return ([r for r in rows if not is_reference(r["scorer"])],
            [r for r in rows if is_reference(r["scorer"])])


def comparison_columns(metrics: Mapping[str, Any]) -> tuple[list[str], str]:
    """The comparison table's columns and its intervals' confidence level ("95%")."""
    level = (metrics.get("settings") or {}).get("confidence", 0.95)
    return ["scorer", *COMPARED,
            *[c for m in COMPARED for c in (f"model - scorer {m}", f"{m} verdict")],
            "user-days"], f"{level:.0%}"


def _slice_name(name: str) -> str:
    """"cold_anchor" -> "Cold anchors"."""
    words = name.split("_")
    return " ".join([words[0].capitalize(), *words[1:-1], words[-1] + "s"])


def slice_rows(metrics: Mapping[str, Any], metric: str = HEADLINE_METRIC,
               min_support: int = MIN_SLICE_SUPPORT) -> list[dict[str, Any]]:
    """Per slice: its support (user-days with a positive in it), the model's metrics, the
    best baseline in that slice and a plain sentence where the slice is weak: too little
    support to judge, no positive at all, below the best baseline there, or under half the
    model's own overall `metric`."""
    model = metrics.get("slices") or {}
    support = (metrics.get("support") or {}).get("slices") or {}
    overall = _value((metrics.get("model") or {}).get(metric))
    rows = []
    for name in SLICES:
        values = model.get(name) or {}
        users = values.get("users", support.get(name))
        ours = _value(values.get(metric))
        theirs = {b: _value(((v or {}).get("slices") or {}).get(name, {}).get(metric))
                  for b, v in (metrics.get("baselines") or {}).items() if not is_reference(b)}
        theirs = {b: v for b, v in theirs.items() if v is not None}
        best = max(sorted(theirs), key=theirs.get) if theirs else None
        label = _slice_name(name)
        if users is None and ours is None:
            note = ""  # the metrics have nothing on this slice
        elif not users:
            note = f"{label}: no user-day with a positive in this slice."
        elif users < min_support:
            note = f"{label}: only {users} user-days, too few to judge."
        elif ours is None:
            note = f"{label}: {metric} undefined on {users} user-days."
        elif best is not None and ours < theirs[best]:
            note = (f"{label}: {metric} {cell(ours)} on {users} user-days, below "
                    f"{best.replace('_', ' ')}'s {cell(theirs[best])}.")
        elif overall is not None and ours < overall / 2:
            note = (f"{label}: {metric} {cell(ours)} on {users} user-days, under half the "
                    f"model's overall {cell(overall)}.")
        else:
            note = ""
        rows.append({"slice": name, "user-days": users,
                     **{m: values.get(m) for m in RANKING_METRICS[:-1]},
                     f"best baseline ({metric})": best,
                     f"its {metric}": theirs.get(best) if best else None,
                     "note": note, "status": "fail" if note else ""})
    return rows


def settings_rows(config: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The loop's and the model's settings of a run's config.json, one row each."""
    config = config or {}
    return [{"part": part, "setting": name, "value": value}
            for part, section in (("loop", "loop"), ("model", "params"))
            for name, value in (config.get(section) or {}).items()]


def code_version(repo: Path | None = None) -> str:
    """The short git commit of the code ("+dirty" with uncommitted changes to tracked
    files); the installed package's version outside a git checkout; else "unknown"."""
    repo = repo or Path(__file__).resolve().parents[1]
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", str(repo), *args], text=True,
                                  capture_output=True, timeout=10, check=True).stdout.strip()

        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        from importlib.metadata import PackageNotFoundError, version

        return f"livestream-recsys {version('livestream-recsys')}"
    except PackageNotFoundError:
        return "unknown"


def training_seconds(history: Sequence[Mapping[str, Any]], batch_size: int | None
                     ) -> float | None:
    """Seconds spent in training steps, from the history: each entry covers the steps since
    the one before at its `examples_per_sec` (validation and start-up are not counted)."""
    if not batch_size:
        return None
    total, previous = 0.0, 0
    for entry in sorted((h for h in history if "step" in h), key=lambda h: h["step"]):
        rate = _value(entry.get("examples_per_sec"))
        if rate:
            total += (entry["step"] - previous) * batch_size / rate
        previous = entry["step"]
    return total or None


def run_facts(model_dir: Path, manifest: Any = None, version: int | None = None,
              code: str | None = None) -> dict[str, Any]:
    """The facts that head the page, from a run's model folder (config.json, summary.json,
    history.json) and its training set's manifest: model, published version, when and how
    long it trained, its epochs, the code version and the day split."""
    model_dir = Path(model_dir)
    config = _json(model_dir / "config.json") or {}
    summary = _json(model_dir / "summary.json") or {}
    history = _json(model_dir / "history.json") or []
    ended = next((p for p in (model_dir / "summary.json", model_dir / "history.json")
                  if p.is_file()), None)
    seconds = summary.get("training_seconds")
    if seconds is None:
        seconds = training_seconds(history, (config.get("loop") or {}).get("batch_size"))
    facts: dict[str, Any] = {
        "model": config.get("model") or summary.get("model"),
        # the DAG writes the page before publishing: the number is in manifest.json
        "published version": version if version is not None else UNPUBLISHED,
        "trained at": dt.datetime.fromtimestamp(ended.stat().st_mtime, dt.UTC)
        .isoformat(timespec="seconds") if ended else None,
        "training seconds (steps, from the history)": seconds,
        **{fact: summary[key] for fact, key in (("epochs run", "epochs_run"),
                                                 ("best epoch", "best_epoch"),
                                                 ("stopped early", "stopped_early"))
           if summary.get(key) is not None},  # a model trained without epochs has none
        "code version": code or code_version()}
    offset = summary.get("cold_anchor_offset")
    if offset:
        facts["cold-anchor offset"] = (
            f"{offset['logit']:g} logit ({offset['rule']}; validation recall@50 "
            f"{offset.get('recall@50')}, cold anchors {offset.get('cold_anchor_recall@50')})")
    scale = summary.get("memory_scale")
    if scale:
        facts["memory scale"] = (f"{scale['scale']:g} ({scale['rule']}; validation NDCG@10 "
                                 f"{scale.get('ndcg@10')})")
    if manifest is not None:
        facts.update({"train days": _days(manifest.train_days),
                      "validation days": _days(manifest.validation_days),
                      "test days": _days(manifest.holdout_days)})
    return facts


def build_report(title: str, facts: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                 metrics: Mapping[str, Any] | None, gates: Mapping[str, Mapping[str, Any]],
                 examples: Mapping[str, np.ndarray] | None,
                 holdout_days: Sequence[str] = (),
                 training_set: Mapping[str, Any] | None = None,
                 config: Mapping[str, Any] | None = None,
                 best_epoch: int | None = None, version: int | None = None,
                 study: Mapping[str, Any] | None = None) -> str:
    """The page as one HTML string; sections whose input is missing say so.

    `facts` is the table at the top; `training_set` the facts of the training set's
    manifest; `config` the run's config.json (its settings are listed and its monitor marks
    the best epoch); `best_epoch` the training summary's (else the history's best by the
    monitor); `version` the published version, when known; `study` the tuning study the
    settings came from (`training.tune`'s study.json), when they did.
    """
    monitor = ((config or {}).get("loop") or {}).get("monitor", MONITOR)
    epochs = epoch_rows(history)
    if best_epoch is None:
        best_epoch = best_epoch_of(epochs, monitor)
    for row in epochs:
        if row["epoch"] == best_epoch:
            row.update(status="pass", note="best: the model keeps its weights")
    page: dict[str, Any] = {
        "title": title, "facts": facts, "training_set": training_set, "gates": gates,
        "settings": settings_rows(config),
        "loss": png_base64(loss_figure(history, best_epoch)) if history else None,
        "epochs": epochs, "best_epoch": best_epoch, "monitor": monitor,
        "epoch_columns": [c for c in EPOCH_COLUMNS if any(r.get(c) is not None for r in epochs)],
        "curves": png_base64(validation_figure(epochs, best_epoch, monitor)) if epochs else None,
        "headline": None, "metrics": None, "labels": None, "features": None,
        "study": study_section(study)}
    if metrics:
        model_name = metrics.get("model_name") or (config or {}).get("model") \
            or facts.get("model")
        scorers = [{"scorer": name, **values} for name, values in
                   {"model": metrics.get("model", {}), **metrics.get("baselines", {})}.items()]
        slices = slice_rows(metrics)
        has_slices = any(_slices(metrics).values())
        compared, references = comparison_rows(metrics)
        columns, level = comparison_columns(metrics)
        page["headline"] = headline(metrics, model_name, version)
        page["metrics"] = {
            "eval_days": _days(metrics.get("eval_days")),
            "support": {k: v for k, v in (metrics.get("support") or {}).items()
                        if k != "slices"},
            "compared": compared, "references": references, "level": level,
            "compared_columns": [c for c in columns
                                 if any(r.get(c) is not None for r in compared)],
            "reference_columns": [c for c in columns if c != "user-days"],
            "ranking": png_base64(ranking_figure(metrics)),
            "scorers": scorers, "scorer_columns": _columns(scorers, ("scorer", *RANKING_METRICS)),
            "slices_plot": png_base64(slices_figure(metrics)) if has_slices else None,
            "slices": slices,
            "slice_notes": [r["note"] for r in slices if r["note"]],
            "slice_columns": [c for c in _columns(slices, ("slice", "user-days",
                                                           *RANKING_METRICS[:-1]))
                              if c != "status"]}
    if examples is not None and len(examples.get("label", [])):
        page["labels"] = png_base64(positive_rate_figure(
            examples["dt"], examples["label"], holdout_days))
    if examples is not None and any(len(examples.get(n, [])) for n in FEATURES):
        page["features"] = png_base64(histograms_figure(examples))
    return _environment().get_template(TEMPLATE).render(page, gate_columns=GATE_COLUMNS)


def study_history_figure(history: Sequence[Mapping[str, Any]], monitor: str = MONITOR
                         ) -> Figure:
    """Each finished trial's value in the order trials finished (pruned ones at their last
    reported value, hollow) and the best so far: Optuna's optimisation history."""
    figure = _figure()
    ax = figure.add_subplot()
    for state, style in (("complete", {"marker": "o"}),
                         ("pruned", {"marker": "o", "facecolors": "none",
                                     "edgecolors": "tab:gray"})):
        points = [(i, _value(h.get("value"))) for i, h in enumerate(history)
                  if h.get("state") == state and _value(h.get("value")) is not None]
        if points:
            ax.scatter(*zip(*points, strict=True), label=state, **style)
    best = [(i, _value(h.get("best_so_far"))) for i, h in enumerate(history)
            if _value(h.get("best_so_far")) is not None]
    if best:
        ax.step(*zip(*best, strict=True), where="post", color="tab:red", label="best so far")
    ax.set(xlabel="trial (in the order they finished)", ylabel=monitor,
           title="study history (validation days)")
    ax.legend()
    return figure


def importances_figure(importances: Mapping[str, float]) -> Figure:
    """The settings' shares of the value's variance (fANOVA), largest on top."""
    ranked = sorted(importances.items(), key=lambda kv: kv[1])
    figure = _figure(7.0, max(2.0, 0.3 * len(ranked) + 0.8))
    ax = figure.add_subplot()
    ax.barh([k for k, _ in ranked], [float(v) for _, v in ranked])
    ax.set(xlabel="importance (share)", title="parameter importances")
    return figure


def study_section(study: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The study a run's settings came from (its study.json): facts, the history and
    importances plots, and the trials as a table."""
    if not study:
        return None
    best = study.get("best") or {}
    timings = study.get("timings") or {}
    days = study.get("days") or {}
    facts = {"study": study.get("study"), "model": study.get("model"),
             "train days": _days(days.get("train")),
             "validation days (choose)": _days(days.get("validation")),
             "test days (never seen by a trial)": _days(days.get("test")),
             "user sample": (study.get("sample") or {}).get("users_fraction"),
             "trials": f"{timings.get('complete', 0)} complete, "
                       f"{timings.get('pruned', 0)} pruned, {timings.get('other', 0)} other",
             "trials per hour": timings.get("trials_per_hour"),
             "pruning saved (s)": timings.get("pruning_saved_s"),
             "best trial": best.get("number"), f"best {MONITOR}": best.get("value")}
    trials = [{"trial": t.get("number"), "state": t.get("state"), "value": t.get("value"),
               "epochs": t.get("epochs_run"), "seconds": t.get("seconds"),
               "status": "pass" if t.get("number") == best.get("number") else None}
              for t in study.get("trials") or []]
    importances = study.get("importances") or {}
    return {"facts": facts, "trials": trials,
            "settings": [{"setting": k, "value": v}
                         for k, v in (best.get("settings") or {}).items()],
            "history": png_base64(study_history_figure(study["history"]))
            if study.get("history") else None,
            "importances": png_base64(importances_figure(importances)) if importances else None,
            "note": study.get("note")}


def _json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def training_set_facts(data: TrainingSet) -> dict[str, Any]:
    """The manifest of the training set as (fact, value) pairs for the page."""
    manifest = data.manifest
    return {"run_id": manifest.run_id, "end": manifest.end, "label days (M)": manifest.days,
            "window (N)": manifest.window, "train days": _days(manifest.train_days),
            "validation days": _days(manifest.validation_days),
            "test days": _days(manifest.holdout_days),
            "train rows": manifest.counts.train.rows,
            "validation rows": manifest.counts.validation.rows,
            "candidates": manifest.counts.candidates,
            "source table versions": manifest.source_versions}


def write_run_report(out: Path, data: TrainingSet, model_dir: Path, metrics_path: Path,
                     gate_paths: Mapping[str, Path],
                     facts: Mapping[str, Any] | None = None,
                     version: int | None = None, study_path: Path | None = None) -> Path:
    """Gather a run's files (config.json, summary.json, history.json, metrics.json, gate
    reports, training set) and write the page to `out` atomically.

    The run's facts (`run_facts`: model, version, training time, code version, day split)
    head the page, then the given `facts` (which win on a shared name), then each gate's
    verdict; gates whose report file is absent are left out. `study_path`: the study.json
    of the tuning study the run's settings came from (its section is left out when absent).
    """
    model_dir = Path(model_dir)
    gates = {name: _json(p) for name, p in gate_paths.items() if p.is_file()}
    top = {**run_facts(model_dir, data.manifest, version), **(facts or {}),
           **{name: "passed" if g.get("passed") else "FAILED" for name, g in gates.items()}}
    summary = _json(model_dir / "summary.json") or {}
    page = build_report(f"Training run {data.run_id}", top,
                        _json(model_dir / "history.json") or [], _json(metrics_path),
                        gates, read_examples(data), data.manifest.holdout_days,
                        training_set=training_set_facts(data),
                        config=_json(model_dir / "config.json"),
                        best_epoch=summary.get("best_epoch"), version=version,
                        study=_json(study_path) if study_path else None)
    return atomic_write_text(out, page)
