"""The simulated platform as arrays: who exists, what they like, and what each day brings.

Users watch anchors (streamers). Tastes are latent vectors driven by content attributes, so
cold-start users and anchors are learnable from their profiles. Every random draw comes from a
generator seeded by (seed, day index, purpose), so the same parameters give the same draws,
and a shorter run is a prefix of a longer one. Pure NumPy: no files, no text, no clock.

Entity ids are 1-based and dense: row i of every per-user (per-anchor) array is id i + 1.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import date

import numpy as np

DIM = 16
USER_GENDERS, USER_GENDER_P = ("F", "M", "U"), (0.48, 0.47, 0.05)
AGE_BUCKETS, AGE_P = ("18-24", "25-34", "35-44", "45+"), (0.30, 0.35, 0.20, 0.15)
DEVICES, DEVICE_P = ("ios", "android", "web"), (0.40, 0.50, 0.10)
CITIES = tuple(f"c{i:02d}" for i in range(20))
CATEGORIES = tuple(f"cat{i:02d}" for i in range(12))
ANCHOR_GENDERS, ANCHOR_GENDER_P = ("F", "M"), (0.6, 0.4)
_CITY_W = 1.0 / np.arange(1, len(CITIES) + 1) ** 0.8
CITY_P = _CITY_W / _CITY_W.sum()  # Zipf-like: a few big cities dominate

# The viewer's perceived match is affinity + N(0, PERCEPTION_SD): above LONG_WATCH_THRESHOLD
# they stay (a long watch), below BOUNCE_THRESHOLD they leave at once. Saved with the ground
# truth (truth.py) so an oracle reads them instead of restating them.
PERCEPTION_SD = 0.8
LONG_WATCH_THRESHOLD = 0.9
BOUNCE_THRESHOLD = 0.0
AFFINITY = "dot(user_vecs, anchor_vecs)"  # of one (user, anchor) pair, as the files name it
LONG_WATCH_CAP = 4 * 3600
DAY_SECONDS = 86_400


@dataclass(frozen=True)
class Scale:
    users: int  # initial population
    anchors: int
    sessions_per_day: int  # at the initial population; grows with it


SCALES = {
    "tiny": Scale(users=300, anchors=60, sessions_per_day=2_000),
    "demo": Scale(users=40_000, anchors=2_000, sessions_per_day=250_000),
    "bench": Scale(users=160_000, anchors=8_000, sessions_per_day=1_000_000),
}


@dataclass(frozen=True)
class SimParams:
    start: date
    days: int
    scale: str = "demo"
    seed: int = 7
    bad_rate: float = 0.01  # bad lines injected, as a share of good sessions
    temperature: float = 1.0  # softmax temperature of anchor choice over affinity
    arrival_rate: float = 0.02  # new users / anchors per day, as a share of the population

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {sorted(SCALES)}, got {self.scale!r}")
        if not 1 <= self.days <= 366:
            raise ValueError(f"days must be in 1..366, got {self.days}")
        if not 0.0 <= self.bad_rate <= 0.5:
            raise ValueError(f"bad_rate must be in [0, 0.5], got {self.bad_rate}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class Tastes:
    """Centroids that tie content attributes to latent vectors."""

    demo: np.ndarray  # [gender, age_bucket, DIM]
    city: np.ndarray  # [city, DIM]
    category: np.ndarray  # [category, DIM]
    anchor_gender: np.ndarray  # [gender, DIM]


@dataclass(frozen=True)
class World:
    """Everyone who exists so far; row i of each array is entity id i + 1."""

    user_vecs: np.ndarray  # [users, DIM]
    user_activity: np.ndarray  # [users]
    anchor_vecs: np.ndarray  # [anchors, DIM]
    anchor_pop: np.ndarray  # [anchors]
    anchor_live_p: np.ndarray  # [anchors]

    @classmethod
    def empty(cls) -> World:
        return cls(np.empty((0, DIM)), np.empty(0), np.empty((0, DIM)), np.empty(0), np.empty(0))

    @property
    def n_users(self) -> int:
        return len(self.user_activity)

    @property
    def n_anchors(self) -> int:
        return len(self.anchor_pop)

    def grow(self, users: dict[str, np.ndarray], anchors: dict[str, np.ndarray]) -> World:
        """The world with new users and anchors appended (ids continue where they stopped)."""
        return World(
            np.vstack([self.user_vecs, users["vecs"]]),
            np.concatenate([self.user_activity, users["activity"]]),
            np.vstack([self.anchor_vecs, anchors["vecs"]]),
            np.concatenate([self.anchor_pop, anchors["pop"]]),
            np.concatenate([self.anchor_live_p, anchors["live_p"]]),
        )


@dataclass(frozen=True)
class Day:
    """What one day drew. Indices are entity id - 1; session arrays share one length."""

    new_users: dict[str, np.ndarray]  # draw_users' batch
    new_anchors: dict[str, np.ndarray]  # draw_anchors' batch
    signup_ages: np.ndarray | None  # days since joining (initial population); None: today
    debut_ages: np.ndarray | None
    live: np.ndarray  # [live] anchor indices, ascending
    users: np.ndarray  # [sessions] user index
    anchors: np.ndarray  # [sessions] anchor index
    secs: np.ndarray  # [sessions] second of the day the session started
    watch: np.ndarray  # [sessions] seconds, one decimal
    gift: np.ndarray  # [sessions] gift value, 0 = none


def rng_for(seed: int, day: int, purpose: str) -> np.random.Generator:
    """Independent stream per (seed, day, purpose): adding a draw never shifts another stream."""
    return np.random.default_rng([seed, day, zlib.crc32(purpose.encode())])


def make_tastes(rng: np.random.Generator) -> Tastes:
    # Component std d**-0.25 makes dot products of two latent vectors ~unit variance.
    s = DIM**-0.25
    return Tastes(
        demo=rng.normal(0, s, (len(USER_GENDERS), len(AGE_BUCKETS), DIM)),
        city=rng.normal(0, s, (len(CITIES), DIM)),
        category=rng.normal(0, s, (len(CATEGORIES), DIM)),
        anchor_gender=rng.normal(0, s, (len(ANCHOR_GENDERS), DIM)),
    )


def draw_users(rng: np.random.Generator, tastes: Tastes, n: int) -> dict[str, np.ndarray]:
    """Attributes (as code indices), taste vectors and activity levels of n new users."""
    g = rng.choice(len(USER_GENDERS), n, p=USER_GENDER_P)
    age = rng.choice(len(AGE_BUCKETS), n, p=AGE_P)
    city = rng.choice(len(CITIES), n, p=CITY_P)
    device = rng.choice(len(DEVICES), n, p=DEVICE_P)
    noise = rng.normal(0, DIM**-0.25, (n, DIM))
    # Weights sum to ~1 in variance: content explains most of a user's taste.
    vecs = 0.8 * tastes.demo[g, age] + 0.45 * tastes.city[city] + 0.4 * noise
    # Heavy-tailed activity with mean ~1; the clip stops one bot-like user swamping a day.
    activity = np.minimum(rng.lognormal(-0.72, 1.2, n), 30.0)
    return {"gender": g, "age": age, "city": city, "device": device,
            "vecs": vecs, "activity": activity}


def draw_anchors(rng: np.random.Generator, tastes: Tastes, n: int) -> dict[str, np.ndarray]:
    """Attributes, trait vectors, popularity and live probability of n new anchors."""
    cat = rng.choice(len(CATEGORIES), n)
    g = rng.choice(len(ANCHOR_GENDERS), n, p=ANCHOR_GENDER_P)
    city = rng.choice(len(CITIES), n, p=CITY_P)
    noise = rng.normal(0, DIM**-0.25, (n, DIM))
    vecs = 0.8 * tastes.category[cat] + 0.3 * tastes.anchor_gender[g] + 0.5 * noise
    pop = 1.0 + rng.pareto(1.5, n)  # power law: a few stars, a long tail
    live_p = rng.uniform(0.2, 0.9, n)
    return {"category": cat, "gender": g, "city": city,
            "vecs": vecs, "pop": pop, "live_p": live_p}


def choice_logits(user_vecs: np.ndarray, anchor_vecs: np.ndarray, log_pop: np.ndarray,
                  temperature: float) -> np.ndarray:
    """Unnormalised log P(user picks anchor), `[users, anchors]`: affinity / T + log pop."""
    return user_vecs @ anchor_vecs.T / temperature + log_pop


def choose_anchors(
    rng: np.random.Generator, user_vecs: np.ndarray, counts: np.ndarray,
    anchor_vecs: np.ndarray, log_pop: np.ndarray, temperature: float,
    chunk_elems: int = 1 << 22,
) -> np.ndarray:
    """For each user row, draw counts[i] anchor columns with p ∝ pop * exp(affinity / T).

    Rows are processed in chunks so memory stays bounded; inside a chunk each row's CDF is
    shifted by its row number, which lets one searchsorted sample every row at once.
    """
    n_live = anchor_vecs.shape[0]
    bounds = np.concatenate(([0], np.cumsum(counts)))
    out = np.empty(bounds[-1], dtype=np.int64)
    step = max(1, chunk_elems // n_live)
    for r0 in range(0, len(counts), step):
        r1 = min(r0 + step, len(counts))
        logits = choice_logits(user_vecs[r0:r1], anchor_vecs, log_pop, temperature)
        logits -= logits.max(axis=1, keepdims=True)
        cdf = np.cumsum(np.exp(logits), axis=1)
        cdf /= cdf[:, -1:]
        rows = np.arange(r1 - r0)
        cdf += rows[:, None]
        row_of = np.repeat(rows, counts[r0:r1])
        pos = np.searchsorted(cdf.ravel(), row_of + rng.random(row_of.size), side="right")
        out[bounds[r0]:bounds[r1]] = np.clip(pos - row_of * n_live, 0, n_live - 1)
    return out


def draw_sessions(
    rng: np.random.Generator, world: World, live: np.ndarray, per_user: float, temperature: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Today's (user index, anchor index, second of day), unique per triple."""
    counts = rng.poisson(per_user * world.user_activity)
    active = np.flatnonzero(counts)
    col = choose_anchors(rng, world.user_vecs[active], counts[active], world.anchor_vecs[live],
                         np.log(world.anchor_pop[live]), temperature)
    users = np.repeat(active, counts[active])
    anchors = live[col]
    secs = rng.integers(0, DAY_SECONDS, users.size)
    # Same user, anchor and second twice would be an exact duplicate; keep the first.
    key = (users * world.n_anchors + anchors) * DAY_SECONDS + secs
    keep = np.sort(np.unique(key, return_index=True)[1])
    return users[keep], anchors[keep], secs[keep]


def draw_outcomes(rng: np.random.Generator, affinity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Watch seconds and gift value (0 = none), both driven by true affinity."""
    n = affinity.size
    z = affinity + rng.normal(0, PERCEPTION_SD, n)  # noisy perceived match
    long_watch = 30.0 + rng.lognormal(np.log(150.0) + 0.4 * affinity, 1.0)
    stays, leaves = z > LONG_WATCH_THRESHOLD, z < BOUNCE_THRESHOLD
    watch = np.select(
        [stays, leaves],
        [np.minimum(long_watch, LONG_WATCH_CAP), rng.uniform(0.5, 2.0, n)],
        rng.uniform(3.0, 29.0, n),
    )
    stayed = np.where(stays, 1.0, np.where(leaves, 0.0, 0.1))
    p_gift = 0.12 * stayed / (1.0 + np.exp(-2.0 * (affinity - 1.5)))
    value = np.maximum(np.round(rng.lognormal(np.log(2.0), 1.2, n), 1), 0.1)
    gift = np.where(rng.random(n) < p_gift, value, 0.0)
    return np.round(watch, 1), gift


def draw_day(params: SimParams, tastes: Tastes, world: World, i: int) -> tuple[World, Day]:
    """Day i (0 = the start day): arrivals, live anchors, sessions and their outcomes.

    Returns the grown world and what the day drew.
    """
    scale = SCALES[params.scale]
    arr = rng_for(params.seed, i, "arrivals")
    if i == 0:  # the whole initial population, joined during the past year
        nu, na = scale.users, scale.anchors
    else:  # cold-start arrivals, at least one of each
        nu = max(1, int(arr.binomial(world.n_users, params.arrival_rate)))
        na = max(1, int(arr.binomial(world.n_anchors, params.arrival_rate)))
    ub, ab = draw_users(arr, tastes, nu), draw_anchors(arr, tastes, na)
    signup_ages = arr.integers(1, 366, nu) if i == 0 else None
    debut_ages = arr.integers(1, 366, na) if i == 0 else None
    first_new_anchor = world.n_anchors
    world = world.grow(ub, ab)

    is_live = rng_for(params.seed, i, "live").random(world.n_anchors) < world.anchor_live_p
    if i > 0:
        is_live[first_new_anchor:] = True  # a debut is a live show
    live = np.flatnonzero(is_live)

    per_user = scale.sessions_per_day / scale.users
    users, anchors, secs = draw_sessions(rng_for(params.seed, i, "sessions"), world, live,
                                         per_user, params.temperature)
    affinity = np.einsum("ij,ij->i", world.user_vecs[users], world.anchor_vecs[anchors])
    watch, gift = draw_outcomes(rng_for(params.seed, i, "outcomes"), affinity)
    return world, Day(ub, ab, signup_ages, debut_ages, live, users, anchors, secs, watch, gift)
