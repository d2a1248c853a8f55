"""The simulator's ground truth: everything an oracle needs to score as the world chose.

Written once per run, after the last day, under `<landing>/_ground_truth/`. The file format
is the contract with readers outside `jobs/` (training/models/oracle.py reads it with NumPy
and json alone), so a change here is a format change: bump `TRUTH_FORMAT`.

`latents.npz` (np.load; arrays row-aligned with their ids, ids dense from 1: id = row + 1):
    user_ids           [U] int64     every user that exists on the last day
    user_vecs          [U, dim] f64  latent tastes
    anchor_ids         [A] int64     every anchor that exists on the last day
    anchor_vecs        [A, dim] f64  latent traits
    anchor_popularity  [A] f64       choice weight (>= 1)
    user_activity      [U] f64       session-rate multiplier (mean ~1)
    anchor_live_prob   [A] f64       daily probability of going live
    anchor_category    [A] int64     content: code of the category (model.json categories)
    anchor_gender      [A] int64     content: code of the gender (model.json anchor_genders)
    category_centroids [C, dim] f64  trait centroid of each category
    gender_centroids   [G, dim] f64  trait centroid of each anchor gender

`habits.npz` (ids as in latents.npz; a day is its index from model.json `start`, 0 first):
    start_user_ids, start_anchor_ids  [P] int64  every pair with a habit on day 0's start
    start_strength                    [P] f32    its habit h then (the burn-in's habits)
    long_watch_day                    [N] int64  a day with long watches (>= 30 s) of a pair
    long_watch_user_ids, long_watch_anchor_ids  [N] int64  the pair
    long_watch_count                  [N] int64  how many that day
  The habits of day d + 1's start follow from day d's, with f32/f64 the float widths:
      h' = f32(f64(h) * habit.decay + count)   (h = 0 for a pair without a habit, count = 0
                                                for a pair without long watches that day),
  pairs with h' < habit.floor dropped; replaying the days in order gives the exact bits the
  simulator chose with.

`model.json` (the constants of the choice model, as used to draw every session):
    format                2
    dim                   latent dimension
    start, days           first day (YYYY-MM-DD) and number of days simulated
    affinity              "dot(user_vecs, anchor_vecs)", of one (user, anchor) pair
    choice.temperature    T in P(anchor | user, live anchors) ∝ popularity * exp(affinity / T
                          + habit term)
    perception.noise_sd   sd of the noise in the perceived match  m = affinity + N(0, sd)
    long_watch.threshold  m > threshold: the user stays (a long watch, >= 30 s)
    bounce.threshold      m < threshold: the user leaves at once (<= 2 s)
    habit.strength, habit.saturation, habit.recall: each day a user recalls each of their
                          habits with probability recall; a recalled habit h adds
                          strength * h / (h + saturation) to the pair's utility
    habit.half_life_days, habit.decay (= 0.5 ** (1 / half_life_days), the float used),
    habit.floor, habit.burn_in_days: the dynamics above
    anchor_traits         anchor_vecs = category_weight * category_centroids[category]
                          + gender_weight * gender_centroids[gender]
                          + noise_weight * N(0, noise_sd^2 I): what content leaves open
    popularity            1 + Pareto(shape) (numpy's), independent of content; its mean
    categories, anchor_genders  the names of the content codes, as the landing files write

So log P(choose) + log P(long watch) of a pair on day d, up to a per-user constant and in
expectation over the day's recall, is
    affinity / T + log popularity + log(1 - recall + recall * exp(habit term))
    + log Phi((affinity - long_watch.threshold) / noise_sd).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from features.files import atomic_open, atomic_write_json
from jobs.simulator.world import (
    AFFINITY,
    ANCHOR_GENDERS,
    BOUNCE_THRESHOLD,
    CATEGORIES,
    DIM,
    HABIT_FLOOR,
    LONG_WATCH_SECONDS,
    LONG_WATCH_THRESHOLD,
    PERCEPTION_SD,
    POP_SHAPE,
    TRAIT_SD,
    TRAIT_WEIGHTS,
    Day,
    Habits,
    SimParams,
    Tastes,
    World,
)

TRUTH_DIR = "_ground_truth"
LATENTS = "latents.npz"
HABITS = "habits.npz"
MODEL = "model.json"
TRUTH_FORMAT = 2


def write_npz(path: Path, arrays: dict[str, np.ndarray], compress: bool = False) -> None:
    """Like np.savez (np.savez_compressed, at zlib's fastest level, with `compress`), but
    with fixed zip timestamps so the bytes are reproducible."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with atomic_open(path) as fh, zipfile.ZipFile(fh, "w", method) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            if compress:
                member = io.BytesIO()
                np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
                zf.writestr(info, member.getvalue(), compress_type=method, compresslevel=1)
                continue
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)


def choice_model(params: SimParams) -> dict:
    """The `model.json` document of a run (see the module doc)."""
    w_cat, w_gender, w_noise = TRAIT_WEIGHTS
    return {
        "format": TRUTH_FORMAT,
        "dim": DIM,
        "start": params.start.isoformat(),
        "days": params.days,
        "affinity": AFFINITY,
        "choice": {"temperature": params.temperature},
        "perception": {"noise_sd": PERCEPTION_SD},
        "long_watch": {"threshold": LONG_WATCH_THRESHOLD},
        "bounce": {"threshold": BOUNCE_THRESHOLD},
        "habit": {"strength": params.habit_strength, "saturation": params.habit_saturation,
                  "recall": params.habit_recall,
                  "half_life_days": params.habit_half_life_days,
                  "decay": params.habit_decay, "floor": HABIT_FLOOR,
                  "burn_in_days": params.habit_burn_in_days},
        "anchor_traits": {"category_weight": w_cat, "gender_weight": w_gender,
                          "noise_weight": w_noise, "noise_sd": TRAIT_SD},
        "popularity": {"distribution": "1 + pareto(shape)", "shape": POP_SHAPE,
                       "mean": 1.0 + 1.0 / (POP_SHAPE - 1.0)},
        "categories": list(CATEGORIES),
        "anchor_genders": list(ANCHOR_GENDERS),
    }


class HabitLog:
    """What `habits.npz` holds, gathered while a run draws its days."""

    def __init__(self) -> None:
        self.start = Habits.empty()
        self.days: list[tuple[int, np.ndarray, np.ndarray]] = []  # day, pair keys, counts

    def add(self, i: int, drawn: Day) -> None:
        """Day i: its start habits (day 0's are the start) and its long watches."""
        if i == 0:
            self.start = drawn.habits
        long = drawn.watch >= LONG_WATCH_SECONDS
        keys = drawn.users[long].astype(np.int64) << 32 | drawn.anchors[long].astype(np.int64)
        pairs, counts = np.unique(keys, return_counts=True)
        self.days.append((i, pairs, counts))

    def arrays(self) -> dict[str, np.ndarray]:
        pairs = np.concatenate([p for _, p, _ in self.days] or [np.empty(0, np.int64)])
        return {
            "start_user_ids": self.start.users + 1,
            "start_anchor_ids": self.start.anchors + 1,
            "start_strength": self.start.strength,
            "long_watch_day": np.concatenate(
                [np.full(len(p), i, np.int64) for i, p, _ in self.days]
                or [np.empty(0, np.int64)]),
            "long_watch_user_ids": (pairs >> 32) + 1,
            "long_watch_anchor_ids": (pairs & 0xFFFFFFFF) + 1,
            "long_watch_count": np.concatenate(
                [c for _, _, c in self.days] or [np.empty(0, np.int64)]).astype(np.int64),
        }


def save_truth(landing: Path, world: World, params: SimParams, tastes: Tastes,
               habits: HabitLog) -> Path:
    """Write the world's latents, habits and the choice model under `landing`; returns the
    folder."""
    folder = Path(landing) / TRUTH_DIR
    write_npz(folder / LATENTS, {
        "user_ids": np.arange(1, world.n_users + 1),
        "user_vecs": world.user_vecs,
        "anchor_ids": np.arange(1, world.n_anchors + 1),
        "anchor_vecs": world.anchor_vecs,
        "anchor_popularity": world.anchor_pop,
        "user_activity": world.user_activity,
        "anchor_live_prob": world.anchor_live_p,
        "anchor_category": world.anchor_category.astype(np.int64),
        "anchor_gender": world.anchor_gender.astype(np.int64),
        "category_centroids": tastes.category,
        "gender_centroids": tastes.anchor_gender,
    })
    write_npz(folder / HABITS, habits.arrays(), compress=True)
    atomic_write_json(folder / MODEL, choice_model(params))
    return folder

