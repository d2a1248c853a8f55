"""Fusion: the two-tower model and the baselines blended, registered as the model "fusion".

Each component scorer's `[U, A]` scores are normalised per user-day row (`rank`: the
candidate's rank among the day's candidates scaled to 0 .. 1; `zscore`: centred and scaled
by the row's standard deviation). Beside them, optional input groups (`inputs`): each
component's z-score too (`zscore`) and its log-rank (`log_rank`: 1 - log(1 + position) /
log(A), finer than the rank near the top, where recall@50 is decided); the user's history
with the candidate (`history`: watched before, log watch seconds, recency 1 / days since
the last watch, log days watched, all from the lake strictly before the day); each model
component's rank among the anchors the user never watched (`unseen`: rank x not watched,
so discovery gets its own weight), for users without history (`cold_user`) and for anchors
without history (`cold_anchor`: a new anchor's own bias, and each model component's rank
times it, since every collaborative component ranks a new anchor last; once new anchors are
placed as below, these only keep their pairs from bending the other weights). The fused
score is a weighted sum of these inputs; then each new anchor takes the place among the
anchors with history that the two-tower component gives it (`new_anchors`,
`place_new_anchors`): a sum of components that all but one rank a new anchor last buries
it, whatever the weights (docs/decisions.md, ninth and tenth sessions). The weights
come from a small pairwise logistic regression (a linear RankNet: the probability that a
positive outranks an unwatched candidate is sigmoid(w . (x_pos - x_neg)), with an L2 penalty)
fitted on the *validation days* only: each labelled positive of a user-day is paired with
`negatives_per_positive` of the unwatched live anchors that evaluation samples for that
user-day. Test days are never read to fit (checked); they judge it through
`training.evaluate` like any model (`python -m training.evaluate --model fusion`), and the
model gate and publication take it as they take any model.

`train` trains the two-tower component (the loop's settings, plus `two_tower_settings`) or
copies an existing export (`two_tower_export`, e.g. a tuned final run), fits the weights and
writes `export/`: `fusion.json` (components, weights, normalisation, the lake and training
set the baselines read history from, the fit's figures) and `two_tower/` (the towers). The
baselines are rebuilt from the lake when the export is loaded: they score from lake history
strictly before the scored day, as they do in evaluation. The fit also reports a cross-fitted
validation recall@50 (weights fitted on one half of the users, measured on the other half,
both ways): an honest validation figure, as the in-sample one would be optimistic.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.files import atomic_write_json
from training.models import baselines, register_model
from training.models.base import Model, ScoringContext
from training.models.two_tower.config import TwoTowerConfig
from training.reader import Columns, TrainingSet

log = logging.getLogger(__name__)

FUSION_FILE = "fusion.json"
TWO_TOWER = "two_tower"
DEFAULT_COMPONENTS = (TWO_TOWER, "als", "item_cf", "rewatch", "segment_popularity",
                      "recent_popularity")
REFUSED = ("oracle", "content_oracle")  # ground truth: a ceiling, never an input
CHUNK_USERS = 512  # users scored at once: F inputs x chunk x A floats in memory
INPUTS = ("zscore", "log_rank", "history", "unseen", "cold_user", "cold_anchor")
HISTORY = ("watched", "log_seconds", "recency", "log_days")
DISCOVERY = (TWO_TOWER, "als", "item_cf", "segment_popularity", "recent_popularity")


class FusionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # flat two-tower settings (embedding_dim=...) go to the component, as for two_tower
    nested_settings: ClassVar = ("two_tower_settings", TwoTowerConfig)

    components: tuple[str, ...] = DEFAULT_COMPONENTS
    normalise: Literal["rank", "zscore"] = "rank"
    inputs: tuple[str, ...] = INPUTS  # input groups beside the normalised scores (see above)
    # an existing two-tower export to blend (copied into the fusion's export); None: train one
    two_tower_export: str | None = None
    two_tower_settings: dict[str, Any] = {}  # TwoTowerConfig fields of the trained component
    negatives_per_positive: int = Field(20, ge=1, le=100)
    l2: float = Field(1e-3, ge=0)
    fit_seed: int = 0
    # where new anchors rank: "two_tower" where the two-tower component ranks them among the
    # anchors with history (its validated cold-anchor offset included); "fused" by the fused
    # score alone (also what a blend without the two_tower component does)
    new_anchors: Literal["two_tower", "fused"] = "two_tower"

    @field_validator("components")
    @classmethod
    def _components(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = sorted(set(value) & set(REFUSED))
        if refused:
            raise ValueError(f"{refused} score with the simulator's truth: never a component")
        if not value or len(set(value)) != len(value):
            raise ValueError("components must be distinct and at least one")
        return value

    @field_validator("inputs")
    @classmethod
    def _inputs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(INPUTS))
        if unknown or len(set(value)) != len(value):
            raise ValueError(f"inputs must be distinct, of {INPUTS}; got {list(value)}")
        return value


def normalise(scores: np.ndarray, how: str) -> np.ndarray:
    """`[U, A]` scores normalised per row: `rank` -> 0 (lowest) .. 1 (highest), ties
    averaged; `zscore` -> (s - mean) / sd (0 where a row is constant), clipped to +-5."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0, posinf=1e9,
                           neginf=-1e9)
    if scores.ndim != 2 or 0 in scores.shape:
        return scores
    if how == "rank":
        from scipy.stats import rankdata

        a = scores.shape[1]
        return (rankdata(scores, axis=1) - 1.0) / (a - 1) if a > 1 else np.full_like(scores,
                                                                                      0.5)
    if how == "zscore":
        sd = scores.std(axis=1, keepdims=True)
        z = (scores - scores.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0)
        return np.clip(z, -5.0, 5.0)
    raise ValueError(f"unknown normalisation {how!r}")


def log_rank(scores: np.ndarray) -> np.ndarray:
    """`[U, A]` 1 - log(1 + position) / log(A) per row (1 for the top candidate, ties by
    order): spreads the top of the ranking, where rank / A bunches it near 1."""
    scores = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0, posinf=1e9,
                           neginf=-1e9)
    if scores.ndim != 2 or scores.shape[1] < 2 or 0 in scores.shape:
        return np.ones_like(scores)
    position = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1)
    return 1.0 - np.log1p(position) / np.log(scores.shape[1])


class History:
    """Each user's past with each candidate from the lake's daily_user_anchor, strictly
    before the scored day (read once per day): `[U, A]` watched before, log1p of the watch
    seconds, 1 / days since the last watch, log1p of the days watched."""

    def __init__(self, lake_root: Path | str, fmt: str) -> None:
        self.lake_root, self.fmt = Path(lake_root), fmt
        self._fits: dict[str, tuple] = {}

    def _fit(self, day: str) -> tuple:
        if day not in self._fits:
            import scipy.sparse as sp

            from features.catalog import DAILY_USER_ANCHOR
            from training.models.history import age_days, read_before

            past = read_before(self.lake_root, DAILY_USER_ANCHOR, day,
                               ["user_id", "anchor_id", "watch_seconds"], self.fmt)
            users, u = np.unique(past["user_id"].astype(np.int64), return_inverse=True)
            anchors, a = np.unique(past["anchor_id"].astype(np.int64), return_inverse=True)
            shape = (len(users), len(anchors))
            age = age_days(past["dt"], day).astype(np.float64)

            def matrix(values):  # duplicates summed
                return sp.csr_matrix((values, (u, a)), shape=shape)

            # 1 / the age of the most recent watch (the first row of each pair by age)
            key = u.astype(np.int64) * max(len(anchors), 1) + a
            order = np.lexsort((age, key))
            first = order[np.r_[True, key[order][1:] != key[order][:-1]]] if len(key) else order
            recent = sp.csr_matrix((1.0 / np.maximum(age[first], 1), (u[first], a[first])),
                                   shape=shape)
            self._fits[day] = (users, anchors, matrix(past["watch_seconds"].astype(float)),
                               recent, matrix(np.ones(len(age))))
        return self._fits[day]

    def features(self, day: str, users: Columns, anchors: Columns) -> dict[str, np.ndarray]:
        from training.models.history import pair_values

        fit_users, fit_anchors, seconds, recent, days = self._fit(day)

        def values(m):
            return pair_values(fit_users, fit_anchors, users["user_id"], anchors["anchor_id"],
                               lambda u, a: m[u][:, a].toarray())[0]

        watched_seconds = values(seconds)
        return {"watched": (watched_seconds > 0).astype(np.float64),
                "log_seconds": np.log1p(watched_seconds), "recency": values(recent),
                "log_days": np.log1p(values(days))}


def input_names(components: Sequence[str], inputs: Sequence[str]) -> list[str]:
    """The names of the fused inputs, in the order `features` stacks them."""
    names = list(components)
    if "zscore" in inputs:
        names += [f"{c}_z" for c in components]
    if "log_rank" in inputs:
        names += [f"{c}_logrank" for c in components]
    if "history" in inputs or "unseen" in inputs:
        names += list(HISTORY)
    if "unseen" in inputs:
        names += [f"{c}*unseen" for c in components if c in DISCOVERY]
    if "cold_user" in inputs:
        names += [f"{c}*cold_user" for c in components if c in DISCOVERY]
    if "cold_anchor" in inputs:
        names += ["cold_anchor"] + [f"{c}*cold_anchor" for c in components if c in DISCOVERY]
    return names


def fit_pairwise(diffs: np.ndarray, l2: float) -> tuple[np.ndarray, float]:
    """Weights `[K]` minimising mean log(1 + exp(-diffs @ w)) + l2 / 2 |w|^2 over the rows
    of `diffs` (`[N, K]`: positive minus negative features), and the loss reached."""
    from scipy.optimize import minimize

    diffs = np.asarray(diffs, dtype=np.float64)
    if not len(diffs):
        raise ValueError("no (positive, negative) pairs to fit the fusion weights on")

    def loss(w):
        z = diffs @ w
        value = np.logaddexp(0.0, -z).mean() + 0.5 * l2 * w @ w
        grad = -(diffs * (0.5 * (1 - np.tanh(z / 2)))[:, None]).mean(axis=0) + l2 * w
        return value, grad

    result = minimize(loss, np.full(diffs.shape[1], 1.0 / diffs.shape[1]), jac=True,
                      method="L-BFGS-B")
    return result.x, float(result.fun)


def blend_weights(diffs: np.ndarray, names: Sequence[str], components: Sequence[str],
                  l2: float) -> tuple[np.ndarray, float | None, str | None]:
    """(weights, loss, fallback): the pairwise fit, or, without a single (positive,
    negative) pair on the validation days (a sparse or empty day is a normal day), the
    plain average of the components' normalised scores, with the reason as `fallback`."""
    if len(diffs):
        return (*fit_pairwise(diffs, l2), None)
    fallback = "no (positive, negative) pair on the validation days: components averaged"
    log.warning("fusion: %s", fallback)
    share = 1.0 / len(components)
    return np.array([share if n in components else 0.0 for n in names]), None, fallback


def _rows(columns: Columns, index: np.ndarray) -> Columns:
    return {c: v[index] for c, v in columns.items()}


def component_scorers(data: TrainingSet, names: Sequence[str], two_tower_dir: Path | None,
                      seed: int = 0) -> dict[str, Any]:
    """The scorers named `names` (a component that does not apply here is left out)."""
    made = {}
    factories = baselines()
    for name in names:
        if name == TWO_TOWER:
            from training.models.two_tower import TwoTowerScorer

            if two_tower_dir is None:
                raise ValueError("fusion: the two_tower component has no export")
            made[name] = TwoTowerScorer(Path(two_tower_dir))
            continue
        if name not in factories:
            raise ValueError(f"fusion: unknown component {name!r}; baselines: "
                             f"{sorted(factories)}")
        scorer = factories[name](ScoringContext(data, None, seed))
        if scorer is None:
            log.warning("fusion: component %s does not apply here; left out", name)
            continue
        made[name] = scorer
    return made


def component_scores(scorers: Mapping[str, Any], day: str, users: Columns,
                     anchors: Columns) -> dict[str, np.ndarray]:
    """Each component's `[U, A]` raw scores, by name."""
    return {n: np.asarray(s.score(day, users, anchors), dtype=np.float64)
            for n, s in scorers.items()}


def features(scorers: Mapping[str, Any], day: str, users: Columns, anchors: Columns,
             how: str, inputs: Sequence[str] = (), history: History | None = None,
             raw: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """`[F, U, A]` inputs of the blend, named by `input_names(scorers, inputs)`: every
    component's normalised scores, then the `inputs` groups; `raw`: the components' scores
    when the caller has them already (`component_scores`)."""
    if raw is None:
        raw = component_scores(scorers, day, users, anchors)
    raw = [raw[n] for n in scorers]
    rows = [normalise(r, how) for r in raw]
    if "zscore" in inputs:
        rows += [normalise(r, "zscore") / 5.0 for r in raw]  # 0 .. +-1, as the ranks
    if "log_rank" in inputs:
        rows += [log_rank(r) for r in raw]
    if "history" in inputs or "unseen" in inputs:
        if history is None:
            raise ValueError("fusion: the history inputs need the lake's history")
        past = history.features(day, users, anchors)
        rows += [past[n] for n in HISTORY]
        unseen = 1.0 - past["watched"]
    scored = rows[:len(raw)]  # the components' normalised scores

    def discovery(mask: np.ndarray) -> list[np.ndarray]:  # each model component's, masked
        return [r * mask for r, c in zip(scored, scorers, strict=True) if c in DISCOVERY]

    if "unseen" in inputs:
        rows += discovery(unseen)
    if "cold_user" in inputs:
        rows += discovery(_without_history(users["user_has_history"])[:, None])
    if "cold_anchor" in inputs:
        new = _without_history(anchors["anchor_has_history"])[None, :]
        rows += [np.broadcast_to(new, scored[0].shape), *discovery(new)]
    return np.stack(rows)


def place_new_anchors(fused: np.ndarray, tower: np.ndarray, new: np.ndarray) -> np.ndarray:
    """`fused` `[U, A]` with each new anchor's score (`new` `[A]`) replaced by one that ranks
    it, among the anchors with history, where `tower` `[U, A]` ranks it (below any such
    anchor it ties with), and among new anchors in `tower`'s order. Scores between two
    fused scores, above the top one by < 1 or below the last one by < 1."""
    new = np.asarray(new, bool)
    if fused.size == 0 or not new.any() or new.all():
        return fused
    warm_tower, new_tower = tower[:, ~new], tower[:, new]
    both = np.concatenate([warm_tower, new_tower], axis=1)  # warm first: ties rank above

    def positions(x):
        return np.argsort(np.argsort(-x, axis=1, kind="stable"), axis=1, kind="stable")

    among_new = positions(new_tower)
    above = positions(both)[:, warm_tower.shape[1]:] - among_new  # warm anchors above each
    ranked = -np.sort(-fused[:, ~new], axis=1)
    bounds = np.concatenate([ranked[:, :1] + 1.0, ranked, ranked[:, -1:] - 1.0], axis=1)
    upper = np.take_along_axis(bounds, above, axis=1)
    lower = np.take_along_axis(bounds, above + 1, axis=1)
    out = np.array(fused, dtype=np.float64)
    # new anchors that share a gap keep their order: fractions of it by their rank among new
    out[:, new] = upper - (upper - lower) * (1.0 + among_new) / (new.sum() + 1.0)
    return out


def _without_history(has_history) -> np.ndarray:
    """1.0 where a user or anchor has no history (cold), else 0.0."""
    return (~np.asarray(has_history).astype(bool)).astype(np.float64)


def fold_of(user_ids: np.ndarray, seed: int) -> np.ndarray:
    """0 or 1 per user, by a seeded hash (the cross-fit's two halves)."""
    from training.tune import user_sample

    return (~user_sample(user_ids, 0.5, seed + 1)).astype(np.int64)


def pair_differences(data: TrainingSet, held: Sequence, scorers: Mapping[str, Any],
                     config: FusionConfig, history: History | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(`[N, F]` positive-minus-negative inputs, `[N]` the user's fold) over the held days."""
    rng = np.random.default_rng(config.fit_seed)
    diffs, folds = [], []
    for day in held:
        pool = np.flatnonzero(day.pool)
        for start in range(0, len(pool), CHUNK_USERS):
            rows = pool[start:start + CHUNK_USERS]
            x = features(scorers, day.day, _rows(day.users, rows), day.anchors,
                         config.normalise, config.inputs, history)
            r, c = np.nonzero(day.positives[rows])
            n = day.negatives.shape[1]
            if not len(r) or not n:
                continue
            pick = rng.integers(0, n, size=(len(r), config.negatives_per_positive))
            valid = day.valid[rows[r][:, None], pick]
            neg = day.negatives[rows[r][:, None], pick]
            d = x[:, r, c][:, :, None] - x[:, r[:, None], neg]  # [K, P, m]
            diffs.append(d.transpose(1, 2, 0)[valid])
            user_fold = fold_of(day.users["user_id"][rows], config.fit_seed)
            folds.append(np.broadcast_to(user_fold[r][:, None], valid.shape)[valid])
    k = len(input_names(list(scorers), config.inputs))
    return (np.concatenate(diffs) if diffs else np.zeros((0, k)),
            np.concatenate(folds) if folds else np.zeros(0, dtype=np.int64))


class FusionScorer:
    """The weighted sum of the blend's inputs (a Scorer): `weights` names each input
    (`input_names`)."""

    def __init__(self, scorers: Mapping[str, Any], weights: Mapping[str, float], how: str,
                 folds: Mapping[int, Mapping[str, float]] | None = None, seed: int = 0,
                 inputs: Sequence[str] = (), history: History | None = None,
                 new_anchors: str = "fused") -> None:
        self.scorers, self.weights, self.how = dict(scorers), dict(weights), how
        self.inputs, self.history = tuple(inputs), history
        self.place = new_anchors == "two_tower" and TWO_TOWER in self.scorers
        self.names = input_names(list(self.scorers), self.inputs)
        self.folds, self.seed = folds, seed  # cross-fit: each user gets the other fold's
        self.finite = True

    @staticmethod
    def load(export_dir: Path | str) -> FusionScorer:
        export_dir = Path(export_dir)
        spec = json.loads((export_dir / FUSION_FILE).read_text())
        data = TrainingSet(spec["lake_root"], spec["run_id"], check_inputs=False)
        # an export from before `inputs` names its components by their weights
        components = spec.get("components") or list(spec["weights"])
        scorers = component_scorers(data, components, export_dir / TWO_TOWER,
                                    spec.get("seed", 0))
        inputs = spec.get("inputs", [])
        return FusionScorer(scorers, spec["weights"], spec["normalise"], inputs=inputs,
                            history=History(data.lake_root, spec.get("format", "delta")),
                            new_anchors=spec.get("new_anchors", "fused"))

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        n_users = len(users["user_id"])
        out = np.zeros((n_users, len(anchors["anchor_id"])))
        new = ~np.asarray(anchors["anchor_has_history"], bool) if self.place else None
        for start in range(0, n_users, CHUNK_USERS):
            rows = np.arange(start, min(start + CHUNK_USERS, n_users))
            chunk = _rows(users, rows)
            if self.folds is None:
                weights = np.array([[self.weights[n] for n in self.names]] * len(rows))
            else:  # a user of fold f is scored with the weights fitted on the other fold
                fold = fold_of(chunk["user_id"], self.seed)
                table = np.array([[self.folds[1 - f][n] for n in self.names] for f in (0, 1)])
                weights = table[fold]
            raw = component_scores(self.scorers, day, chunk, anchors)
            x = features(self.scorers, day, chunk, anchors, self.how, self.inputs, self.history,
                         raw)
            out[rows] = np.einsum("uf,fua->ua", weights, x)
            if self.place:  # the two-tower's scores of the blend's inputs, not scored again
                out[rows] = place_new_anchors(out[rows], raw[TWO_TOWER], new)
        self.finite = all(bool(getattr(s, "finite", True)) for s in self.scorers.values())
        return out


def fit_fusion(data: TrainingSet, scorers: Mapping[str, Any], config: FusionConfig) -> dict:
    """Weights fitted on the validation days of `data` (never a test day), plus the
    cross-fitted validation recall@50 of the blend."""
    from training.evaluate import EvalSettings, held_out_days
    from training.tune import validation_metrics

    days = list(data.manifest.validation_days)
    if not days:
        raise ValueError("fusion fits its weights on validation days: rebuild the training "
                         "set with jobs.training_set --validation-days 1")
    if set(days) & set(data.manifest.holdout_days):
        raise AssertionError(f"validation days {days} overlap the test days")
    held = held_out_days(data, EvalSettings(seed=config.fit_seed), days)
    if {d.day for d in held} != set(days):
        raise AssertionError("fusion read a day other than the validation days")
    history = History(data.lake_root, data.manifest.format)
    diffs, folds = pair_differences(data, held, scorers, config, history)
    names = input_names(list(scorers), config.inputs)
    w, loss, fallback = blend_weights(diffs, names, list(scorers), config.l2)
    by_fold = {}
    for f in (0, 1):
        part = diffs[folds == f]
        fw = fit_pairwise(part, config.l2)[0] if len(part) else w
        by_fold[f] = dict(zip(names, map(float, fw), strict=True))
    crossfit = FusionScorer(scorers, dict(zip(names, map(float, w), strict=True)),
                            config.normalise, by_fold, config.fit_seed, config.inputs, history,
                            config.new_anchors)
    value = validation_metrics(data, crossfit, held=held)
    return {"weights": dict(zip(names, map(float, w), strict=True)), "loss": loss,
            "pairs": int(len(diffs)), "fit_days": days, "fallback": fallback,
            "validation_crossfit": {k: value.get(k) for k in ("recall@50", "ndcg@10", "auc")},
            "fold_weights": by_fold}


def _is_chief(loop) -> bool:
    if getattr(loop, "strategy", None) != "multi_worker":
        return True
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return task.get("index", 0) == 0


@register_model
class Fusion(Model):
    name = "fusion"
    config_class = FusionConfig

    def train(self, data: TrainingSet, out: Path, config: FusionConfig, loop: Any,
              workers: int = 1, on_epoch=None) -> dict:
        from features.checks import config_from
        from training.models import model

        out = Path(out)
        if not data.manifest.validation_days:
            raise ValueError("fusion fits its weights on validation days: rebuild the "
                             "training set with jobs.training_set --validation-days 1")
        summary: dict[str, Any] = {}
        source = None
        if TWO_TOWER in config.components:
            if config.two_tower_export:
                source = Path(config.two_tower_export)
                if not source.is_dir():
                    raise FileNotFoundError(f"fusion: no two-tower export at {source}")
            else:
                kind = model(TWO_TOWER)
                settings = config_from(TwoTowerConfig, config.two_tower_settings)
                extra = {"on_epoch": on_epoch} if on_epoch is not None else {}
                summary[TWO_TOWER] = kind.train(data, out / TWO_TOWER, settings, loop, workers,
                                                **extra)
                source = kind.export_dir(out / TWO_TOWER)
        if not _is_chief(loop):
            return summary
        export = self.export_dir(out)
        shutil.rmtree(export, ignore_errors=True)
        export.mkdir(parents=True)
        if source is not None:
            shutil.copytree(source, export / TWO_TOWER)
        scorers = component_scorers(data, config.components,
                                    export / TWO_TOWER if source else None, loop.seed)
        fit = fit_fusion(data, scorers, config)
        atomic_write_json(export / FUSION_FILE, {
            "components": list(scorers), "weights": fit["weights"],
            "normalise": config.normalise, "inputs": list(config.inputs),
            "new_anchors": config.new_anchors,
            "lake_root": str(data.lake_root.resolve()),
            "run_id": data.run_id, "format": data.manifest.format, "seed": loop.seed,
            "fit": {k: v for k, v in fit.items() if k != "weights"}})
        log.info("fusion weights %s; cross-fitted validation recall@50 %s", fit["weights"],
                 fit["validation_crossfit"]["recall@50"])
        summary["fusion"] = fit
        summary["best_val_recall@50"] = fit["validation_crossfit"]["recall@50"]
        return summary

    def load(self, export_dir: Path) -> FusionScorer:
        return FusionScorer.load(export_dir)

    def artifacts(self, export_dir: Path) -> dict[str, Path]:
        return {"fusion": Path(export_dir)}

    def checks(self, export_dir: Path) -> list[dict]:
        """Finite weights, and the two-tower component's own checks."""
        from training.model_gate import finite_check
        from training.models import model

        export_dir = Path(export_dir)
        spec = json.loads((export_dir / FUSION_FILE).read_text())
        checks = [finite_check("finite[fusion.weights]", list(spec["weights"].values()))]
        if (export_dir / TWO_TOWER).is_dir():
            checks += model(TWO_TOWER).checks(export_dir / TWO_TOWER)
        return checks
