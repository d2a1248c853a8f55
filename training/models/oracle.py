"""Oracle baselines: the simulator's own choice model, the ceilings no learned model can pass.

Read the ground truth the simulator saved under `<landing>/_ground_truth/` (format in
jobs/simulator/truth.py, the contract: training never imports jobs).

- `oracle` scores a pair by what drew the sessions: log P(choose) + log P(long watch), up to
  a per-user constant, with the user's habits of the scored day.
- `content_oracle` is what is reachable for a cold anchor: an anchor without history scored
  from its content alone, in expectation over the traits and popularity content leaves open.
  Cold-anchor quality is judged against it, not against `oracle`.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.special import log_ndtr

from training.models import register_baseline
from training.models.base import ScoringContext
from training.reader import Columns

TRUTH_DIR = "_ground_truth"
LATENTS = "latents.npz"
HABITS = "habits.npz"
MODEL = "model.json"
FORMATS = (1, 2)  # 1: before habits and content (no habit term, no content oracle)


def _rows(known: np.ndarray, ids: np.ndarray, what: str) -> np.ndarray:
    """Row of each id in `known`; ValueError naming ids the truth does not have."""
    order = np.argsort(known, kind="stable")
    pos = np.clip(np.searchsorted(known, ids, sorter=order), 0, len(known) - 1)
    rows = order[pos]
    missing = known[rows] != ids
    if missing.any():
        raise ValueError(f"{int(missing.sum())} {what} ids are not in the ground truth "
                         f"(another simulation?), e.g. {ids[missing][:5].tolist()}")
    return rows


class HabitHistory:
    """The habit strengths of every simulated day, replayed from `habits.npz` (truth.py):
    day d + 1's from day d's with h' = f32(f64(h) * decay + count), below `floor` dropped.

    Args:
      start_keys, start_strength: `[P]` user id << 32 | anchor id (ascending) and h (f32)
        of the pairs with a habit at the start of day 0.
      watch_day, watch_keys, watch_count: `[N]` long watches per (day index, pair).
      decay, floor: the day's decay factor and the smallest habit kept.
      days: the number of days simulated (day `days` is the start of the day after).
    """

    def __init__(self, start_keys: np.ndarray, start_strength: np.ndarray,
                 watch_day: np.ndarray, watch_keys: np.ndarray, watch_count: np.ndarray,
                 decay: float, floor: float, days: int) -> None:
        self.start = (np.asarray(start_keys, np.int64), np.asarray(start_strength, np.float32))
        order = np.argsort(watch_day, kind="stable")
        bounds = np.searchsorted(watch_day[order], np.arange(days + 1))
        self.watches = [(watch_keys[order[b0:b1]], watch_count[order[b0:b1]])
                        for b0, b1 in zip(bounds[:-1], bounds[1:], strict=True)]
        self.decay, self.floor, self.days = decay, floor, days
        self._cached = (0, *self.start)

    def at(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        """(keys, h) of the habits at the start of day `day` (0 .. days)."""
        if not 0 <= day <= self.days:
            raise ValueError(f"day {day} of the run has no habits in the ground truth "
                             f"(it simulated days 0 .. {self.days - 1})")
        done, keys, h = self._cached if self._cached[0] <= day else (0, *self.start)
        for d in range(done, day):
            watched, count = self.watches[d]
            pairs = np.sort(np.concatenate([keys, watched]))
            if len(pairs):
                pairs = pairs[np.concatenate(([True], pairs[1:] != pairs[:-1]))]
            value = np.zeros(len(pairs))
            value[np.searchsorted(pairs, keys)] = h.astype(np.float64) * self.decay
            np.add.at(value, np.searchsorted(pairs, watched), count.astype(np.float64))
            value = value.astype(np.float32)
            keep = value >= self.floor
            keys, h = pairs[keep], value[keep]
        self._cached = (day, keys, h)
        return keys, h


class OracleScorer:
    """Scores `[U, A]` = affinity / T + log popularity + habit term
    + log Phi((affinity - t) / sd).

    The habit term of a pair with habit h on the scored day is the log of its choice weight's
    multiplier in expectation over the day's recall: log(1 - r + r * exp(s * h / (h + k)))
    (s strength, k saturation, r recall); 0 without a habit.

    Args:
      user_ids, user_vecs: `[U']`, `[U', dim]` every simulated user and its true taste.
      anchor_ids, anchor_vecs, anchor_popularity: `[A']`, `[A', dim]`, `[A']`.
      temperature: softmax temperature of the choice over affinity.
      long_watch_threshold, noise_sd: a long watch is affinity + N(0, noise_sd) > threshold.
      habits, habit: the habits of each day and `model.json`'s `habit` (strength, saturation,
        recall); None: a world without habits.
      start: the first simulated day (day index 0 of `habits`).
    """

    def __init__(self, user_ids: np.ndarray, user_vecs: np.ndarray, anchor_ids: np.ndarray,
                 anchor_vecs: np.ndarray, anchor_popularity: np.ndarray, temperature: float,
                 long_watch_threshold: float, noise_sd: float,
                 habits: HabitHistory | None = None, habit: dict | None = None,
                 start: str | None = None) -> None:
        self.user_ids, self.user_vecs = np.asarray(user_ids, np.int64), user_vecs
        self.anchor_ids, self.anchor_vecs = np.asarray(anchor_ids, np.int64), anchor_vecs
        self.log_pop = np.log(anchor_popularity)
        self.temperature = temperature
        self.threshold, self.noise_sd = long_watch_threshold, noise_sd
        if habit is not None and habit["strength"] == 0:
            habits = None
        self.habits, self.habit, self.start = habits, habit, start
        self._terms: tuple[str, sparse.csr_matrix] | None = None

    @staticmethod
    def read_truth(landing_root: Path | str) -> tuple[dict, dict, HabitHistory | None] | None:
        """(model.json, latents arrays, habits) of a landing zone; None when it holds no
        (complete) ground truth."""
        folder = Path(landing_root) / TRUTH_DIR
        if not (folder / LATENTS).is_file() or not (folder / MODEL).is_file():
            return None
        model = json.loads((folder / MODEL).read_text())
        if model.get("format") not in FORMATS:
            raise ValueError(f"{folder / MODEL}: ground truth format {model.get('format')!r}, "
                             f"this oracle reads formats {list(FORMATS)}")
        with np.load(folder / LATENTS) as z:
            latents = {name: z[name] for name in z.files}
        habits = None
        if model["format"] >= 2:
            if not (folder / HABITS).is_file():
                return None
            with np.load(folder / HABITS) as z:
                habits = HabitHistory(
                    z["start_user_ids"] << 32 | z["start_anchor_ids"], z["start_strength"],
                    z["long_watch_day"], z["long_watch_user_ids"] << 32
                    | z["long_watch_anchor_ids"], z["long_watch_count"],
                    decay=model["habit"]["decay"], floor=model["habit"]["floor"],
                    days=model["days"])
        return model, latents, habits

    @classmethod
    def from_truth(cls, model: dict, latents: dict, habits: HabitHistory | None
                   ) -> OracleScorer:
        return cls(latents["user_ids"], latents["user_vecs"], latents["anchor_ids"],
                   latents["anchor_vecs"], latents["anchor_popularity"],
                   temperature=model["choice"]["temperature"],
                   long_watch_threshold=model["long_watch"]["threshold"],
                   noise_sd=model["perception"]["noise_sd"], habits=habits,
                   habit=model.get("habit"), start=model.get("start"))

    @classmethod
    def load(cls, landing_root: Path | str) -> OracleScorer | None:
        """The oracle of a landing zone; None when it holds no (complete) ground truth."""
        truth = cls.read_truth(landing_root)
        return None if truth is None else cls.from_truth(*truth)

    def habit_terms(self, day: str) -> sparse.csr_matrix | None:
        """`[U', A']` the habit term of every pair on `day` (sparse; rows and columns as the
        latents'); None in a world without habits."""
        if self.habits is None:
            return None
        if self._terms is None or self._terms[0] != day:
            start = date.fromisoformat(self.start)
            index = (date.fromisoformat(day) - start).days
            if not 0 <= index <= self.habits.days:
                last = start + timedelta(days=self.habits.days - 1)
                raise ValueError(f"{day}: no habits in the ground truth, which simulated "
                                 f"{self.start} .. {last.isoformat()}")
            keys, h = self.habits.at(index)
            h = h.astype(np.float64)
            term = self.habit["strength"] * h / (h + self.habit["saturation"])
            expected = np.log1p(self.habit["recall"] * np.expm1(term))
            rows = _rows(self.user_ids, keys >> 32, "user")
            cols = _rows(self.anchor_ids, keys & 0xFFFFFFFF, "anchor")
            shape = (len(self.user_ids), len(self.anchor_ids))
            self._terms = (day, sparse.csr_matrix((expected, (rows, cols)), shape=shape))
        return self._terms[1]

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        """`[U, A]` scores of `users["user_id"]` x `anchors["anchor_id"]` on `day` (the
        habits of its start; the latents do not change over a run)."""
        u = _rows(self.user_ids, np.asarray(users["user_id"], np.int64), "user")
        a = _rows(self.anchor_ids, np.asarray(anchors["anchor_id"], np.int64), "anchor")
        affinity = self.user_vecs[u] @ self.anchor_vecs[a].T
        log_long = log_ndtr((affinity - self.threshold) / self.noise_sd)
        scores = affinity / self.temperature + self.log_pop[a][None, :] + log_long
        terms = self.habit_terms(day)
        if terms is not None:
            scores += terms[u][:, a].toarray()
        return scores


class ContentOracleScorer:
    """The oracle of what is reachable for a cold anchor: cold-anchor quality is judged
    against it (the full oracle knows a new anchor's hidden traits and popularity).

    An anchor without history (`anchors["anchor_has_history"]` false; every anchor when the
    column is absent) is scored from its content (category, gender) alone: the log of the
    choice weight times P(long watch) in expectation over the traits and popularity content
    does not determine, i.e. log E[popularity * exp(affinity / T) * Phi((affinity - t) /
    sd)], with no habit (no one has watched it). Given content, the anchor's traits are
    mu + w * N(0, s^2 I) (mu = the weighted category and gender centroids), so a user's
    affinity is N(m, v) with m = user . mu, v = (w s |user|)^2, and the expectation is exact:
        log E[popularity] + m / T + v / (2 T^2) + log Phi((m + v / T - t) / sqrt(sd^2 + v)).
    (The probability is averaged, not scored at the expected traits, which would under-rank
    new anchors; the choice normaliser is taken as fixed.) An anchor with history is scored
    as the oracle scores it, on the same scale, so cold and warm anchors rank together.
    Users are scored with their true tastes.

    Args:
      oracle: the full oracle of the same ground truth.
      anchor_category, anchor_gender: `[A']` content codes, rows as the oracle's anchors.
      category_centroids, gender_centroids: `[C, dim]`, `[G, dim]`.
      traits: `model.json`'s `anchor_traits` (category_weight, gender_weight, noise_weight,
        noise_sd); mean_popularity: E[popularity].
    """

    def __init__(self, oracle: OracleScorer, anchor_category: np.ndarray,
                 anchor_gender: np.ndarray, category_centroids: np.ndarray,
                 gender_centroids: np.ndarray, traits: dict, mean_popularity: float) -> None:
        self.oracle = oracle
        self.mu = (traits["category_weight"] * category_centroids[anchor_category]
                   + traits["gender_weight"] * gender_centroids[anchor_gender])
        self.noise_var = (traits["noise_weight"] * traits["noise_sd"]) ** 2
        self.log_mean_pop = float(np.log(mean_popularity))

    @classmethod
    def load(cls, landing_root: Path | str) -> ContentOracleScorer | None:
        """The content oracle of a landing zone; None without a ground truth that has the
        anchors' content (format 2)."""
        truth = OracleScorer.read_truth(landing_root)
        if truth is None or truth[0]["format"] < 2:
            return None
        model, latents, _ = truth
        return cls(OracleScorer.from_truth(*truth), latents["anchor_category"],
                   latents["anchor_gender"], latents["category_centroids"],
                   latents["gender_centroids"], model["anchor_traits"],
                   model["popularity"]["mean"])

    def content_scores(self, users: Columns, anchors: Columns) -> np.ndarray:
        """`[U, A]` every pair scored from the anchor's content alone."""
        o = self.oracle
        u = _rows(o.user_ids, np.asarray(users["user_id"], np.int64), "user")
        a = _rows(o.anchor_ids, np.asarray(anchors["anchor_id"], np.int64), "anchor")
        vecs = o.user_vecs[u]
        m = vecs @ self.mu[a].T
        v = (self.noise_var * np.einsum("ij,ij->i", vecs, vecs))[:, None]
        t = o.temperature
        log_long = log_ndtr((m + v / t - o.threshold) / np.sqrt(o.noise_sd**2 + v))
        return self.log_mean_pop + m / t + v / (2 * t * t) + log_long

    def score(self, day: str, users: Columns, anchors: Columns) -> np.ndarray:
        """`[U, A]`: content scores for anchors without history, the oracle's for the rest."""
        content = self.content_scores(users, anchors)
        if "anchor_has_history" not in anchors:
            return content
        warm = np.asarray(anchors["anchor_has_history"], bool)
        if not warm.any():
            return content
        full = self.oracle.score(day, users, anchors)
        return np.where(warm[None, :], full, content)


@register_baseline("oracle")
def oracle_baseline(context: ScoringContext) -> OracleScorer | None:
    if context.landing_root is None:
        return None
    return OracleScorer.load(context.landing_root)


@register_baseline("content_oracle")
def content_oracle_baseline(context: ScoringContext) -> ContentOracleScorer | None:
    if context.landing_root is None:
        return None
    return ContentOracleScorer.load(context.landing_root)
