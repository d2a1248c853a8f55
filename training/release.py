"""Release: a training run's folder, the champion it must beat, and its publication.

One run folder per training run (`<runs_root>/<run_id>/`) holds the model, the champion's
scores on the same held-out days, the gate reports and the HTML report. Publication goes
through `publish_run`, which refuses a run whose model gate did not pass unless forced
with a reason (recorded in the published manifest).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.files import atomic_write_json
from training.reader import TrainingSet

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunFolder:
    """The files of one training run."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def model(self) -> Path:  # the trainer's `out`: checkpoints, history, export
        return self.root / "model"

    @property
    def metrics(self) -> Path:
        return self.model / "metrics.json"

    @property
    def champion(self) -> Path:  # the champion's metrics on this run's held-out days
        return self.root / "champion"

    @property
    def data_gate(self) -> Path:
        return self.root / "data_gate.json"

    @property
    def model_gate(self) -> Path:
        return self.root / "model_gate.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def tune(self) -> Path:  # the tuning study the model's settings came from, if any
        return self.root / "tune"

    @property
    def study(self) -> Path:
        return self.tune / "study.json"


def read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def evaluate_champion(data: TrainingSet, models_root: Path, run: RunFolder,
                      landing: Path | None = None) -> dict:
    """Score the newest published version on this run's held-out days, whatever model kind
    it is; writes champion/champion.json ({version, model, error}) and, when it could be
    scored, champion/metrics.json. A champion that cannot be scored (its inputs are gone
    from the features, say) is recorded, not raised: the gate skips the comparison."""
    from training.evaluate import evaluate_model
    from training.publish import latest_version, read_manifest, version_view

    version = latest_version(models_root)
    about: dict[str, Any] = {"version": version, "model": None, "error": None}
    if version is not None:
        try:
            about["model"] = read_manifest(models_root, version).get("model", "two_tower")
            view = version_view(models_root, version, run.champion)
            evaluate_model(data, about["model"], view, landing, out=run.champion)
        except Exception as error:  # any failure to score it is a fact for the gate
            log.exception("champion v%d cannot be evaluated on this run", version)
            about["error"] = f"{type(error).__name__}: {error}"
    atomic_write_json(run.champion / "champion.json", about)
    return about


def champion_facts(run: RunFolder) -> tuple[dict | None, int | None, str | None]:
    """(champion metrics or None, version, error) as evaluate_champion recorded them."""
    about = read_json(run.champion / "champion.json") or {}
    metrics = read_json(run.champion / "metrics.json") if about and not about.get("error") \
        else None
    return metrics, about.get("version"), about.get("error")


def publish_record(data: TrainingSet, run: RunFolder, model_name: str,
                   extra: dict | None = None) -> dict:
    """What a published version records: lineage (training set, source table versions),
    settings, metrics, the champion's metrics, both gate reports and, when the settings
    came from a tuning study, the study (`training.tune.manifest_record`: its days of each
    kind, best trial, value and settings)."""
    manifest = data.manifest
    study = read_json(run.study)
    if study:
        from training.tune import manifest_record

        study = manifest_record(study)
    return {
        "model": model_name,
        "training_set": manifest.model_dump(include={
            "run_id", "end", "days", "window", "seed", "train_days", "validation_days",
            "holdout_days", "counts", "format"}),
        "source_versions": manifest.source_versions,
        "training_config": read_json(run.model / "config.json"),
        "metrics": read_json(run.metrics),
        "champion_metrics": read_json(run.champion / "metrics.json"),
        "gates": {"data_gate": read_json(run.data_gate),
                  "model_gate": read_json(run.model_gate)},
        "study": study,
        **(extra or {}),
    }


def publish_run(models_root: Path, model_name: str, export_dir: Path, run_id: str,
                record: dict, published_at: str, report_html: Path | None,
                gate: dict | None, force_reason: str | None = None):
    """Publish the model's artifacts when its model gate passed (or with `force_reason`,
    recorded); returns the `training.publish.Publication`."""
    from training.models import model
    from training.publish import publish

    if not (gate and gate.get("passed")):
        if not force_reason:
            raise ValueError(f"run {run_id}: the model gate did not pass "
                             f"({(gate or {}).get('failed', 'no gate report')}); "
                             "publish with a force reason to override")
        log.warning("publishing run %s without a passed model gate: %s", run_id,
                    force_reason)
        record = {**record, "forced": force_reason}
    artifacts = model(model_name).artifacts(Path(export_dir))
    return publish(models_root, artifacts, run_id, record, published_at, report_html)


def describe_version(models_root: Path, version: int | None = None) -> str:
    """A few lines on a published version: model, where it is, recall@50 and NDCG@10 beside
    every baseline's on the same held-out days (oracles marked as references, not baselines
    to beat), the report, and last a one-line verdict: the model's recall@50 beside the best
    baseline's, with the difference and its interval (`training.report.headline`)."""
    from training.model_gate import best_baseline, is_reference
    from training.publish import latest_version, read_manifest
    from training.report import headline

    version = version if version is not None else latest_version(models_root)
    if version is None:
        raise FileNotFoundError(f"no published model version under {models_root}")
    manifest = read_manifest(models_root, version)
    metrics = manifest.get("metrics") or {}
    rows = {"model": metrics.get("model", {}), **metrics.get("baselines", {})}
    best = best_baseline(metrics)
    model = manifest.get("model", "two_tower")

    def fmt(value: Any) -> str:
        return "   -  " if value is None else f"{value:6.3f}"

    def mark(name: str) -> str:
        return ("   <- best baseline" if name == best
                else "   (reference)" if name != "model" and is_reference(name) else "")

    width = max(len(n) for n in rows) + 2
    lines = [f"model {model} version {version}: "
             f"{', '.join(f'{models_root}/{a}/{version}' for a in manifest['artifacts'])}",
             f"held-out days {', '.join(metrics.get('eval_days', []))}",
             f"{'scorer':<{width}} recall@50 ndcg@10",
             *[f"{name:<{width}} {fmt(values.get('recall@50'))}    {fmt(values.get('ndcg@10'))}"
               + mark(name) for name, values in rows.items()],
             f"report: {models_root}/{manifest['artifacts'][0]}/{version}/report.html",
             headline(metrics, model, version)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from features.settings import load_settings

    parser = argparse.ArgumentParser(description="Describe a published model version.")
    parser.add_argument("--models", help="models root (default: $MODELS_ROOT or ./models)")
    parser.add_argument("--version", type=int, help="version (default: the newest)")
    args = parser.parse_args(argv)
    try:
        print(describe_version(load_settings(models_root=args.models).models_root,
                               args.version))
    except FileNotFoundError as error:
        print(f"release: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
