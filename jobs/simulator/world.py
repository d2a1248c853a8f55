"""The simulated platform as arrays: who exists, what they like, and what each day brings.

Users watch anchors (streamers). Tastes are latent vectors driven by content attributes, so
cold-start users and anchors are learnable from their profiles. Users form habits: they
return to anchors they watched long, on the days they recall them (SimParams). Every random
draw comes from a generator seeded by (seed, day index, purpose), so the same parameters give
the same draws, and a shorter run is a prefix of a longer one. Pure NumPy: no files, no
text, no clock.

Entity ids are 1-based and dense: row i of every per-user (per-anchor) array is id i + 1.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
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
LONG_WATCH_SECONDS = 30.0  # a stay lasts at least this long, every other watch less

# An anchor's traits: TRAIT_WEIGHTS[0] * its category's centroid + TRAIT_WEIGHTS[1] * its
# gender's + TRAIT_WEIGHTS[2] * N(0, TRAIT_SD^2 I); popularity 1 + Pareto(POP_SHAPE),
# independent of content. Saved with the ground truth (a content-only oracle needs them).
TRAIT_SD = DIM**-0.25  # component sd of centroids and noise: dot products ~unit variance
TRAIT_WEIGHTS = (0.8, 0.3, 0.5)  # category, gender, noise
POP_SHAPE = 1.5

# Habit strengths below this are forgotten (a single long watch lasts ~5.6 half-lives).
HABIT_FLOOR = 0.02


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
    # Habits (repeat viewing). Every long watch (>= 30 s) of a (user, anchor) pair adds 1 to
    # the pair's habit h, which halves every habit_half_life_days. Each day a user recalls
    # each of their habits with probability habit_recall; a recalled habit adds
    # habit_strength * h / (h + habit_saturation) to the pair's choice utility (when the
    # anchor is live, as every choice is among live anchors). Recall spreads a user's
    # returns over their anchors, so many come back after a week or more. The initial
    # population starts with the habits of habit_burn_in_days of unwritten past viewing.
    # habit_strength 0: no habits (the choices of a world without memory).
    habit_strength: float = 12.0
    habit_saturation: float = 0.3
    habit_half_life_days: float = 30.0
    habit_recall: float = 0.25
    habit_burn_in_days: int = 14

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
        if not 0 <= self.habit_strength <= 20:
            raise ValueError(f"habit_strength must be in [0, 20], got {self.habit_strength}")
        if not 0 < self.habit_half_life_days <= 3650:
            raise ValueError("habit_half_life_days must be in (0, 3650], "
                             f"got {self.habit_half_life_days}")
        if not 0 < self.habit_saturation <= 1000:
            raise ValueError(f"habit_saturation must be in (0, 1000], "
                             f"got {self.habit_saturation}")
        if not 0 < self.habit_recall <= 1:
            raise ValueError(f"habit_recall must be in (0, 1], got {self.habit_recall}")
        if not 0 <= self.habit_burn_in_days <= 366:
            raise ValueError(f"habit_burn_in_days must be in 0..366, "
                             f"got {self.habit_burn_in_days}")

    @property
    def habit_decay(self) -> float:
        """The factor a habit keeps from one day to the next."""
        return 0.5 ** (1.0 / self.habit_half_life_days)


@dataclass(frozen=True)
class Tastes:
    """Centroids that tie content attributes to latent vectors."""

    demo: np.ndarray  # [gender, age_bucket, DIM]
    city: np.ndarray  # [city, DIM]
    category: np.ndarray  # [category, DIM]
    anchor_gender: np.ndarray  # [gender, DIM]


def sorted_unique(ascending: np.ndarray) -> np.ndarray:
    """The distinct values of an ascending array (np.unique without its hashing pass)."""
    if not len(ascending):
        return ascending
    return ascending[np.concatenate(([True], ascending[1:] != ascending[:-1]))]


@dataclass(frozen=True)
class Habits:
    """Habit strengths of (user, anchor) pairs, sparse: one entry per pair with a habit,
    sorted by user index then anchor index. A strength is a decayed count of long watches,
    kept as float32 (the ground truth saves exactly the values the choices used)."""

    users: np.ndarray  # [P] int64 user index
    anchors: np.ndarray  # [P] int64 anchor index
    strength: np.ndarray  # [P] float32, >= HABIT_FLOOR

    @classmethod
    def empty(cls) -> Habits:
        return cls(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32))

    def __len__(self) -> int:
        return len(self.strength)

    def keys(self) -> np.ndarray:
        """`[P]` user index << 32 | anchor index, ascending."""
        return self.users << 32 | self.anchors

    def updated(self, decay: float, users: np.ndarray, anchors: np.ndarray,
                gains: np.ndarray | float = 1.0) -> Habits:
        """The next state: h' = float32(float64(h) * decay + g) of every pair, g being the
        sum of `gains` (one per long watch, 1 by default) on the pair of (`users`,
        `anchors`); pairs with h' < HABIT_FLOOR are dropped. A pair new to the state has
        h = 0, one without watches g = 0 (each term exact, so a reader replays a day from
        its per-pair counts with the same arithmetic and gets the same bits)."""
        gains = np.broadcast_to(np.asarray(gains, np.float64), users.shape)
        keys = users.astype(np.int64) << 32 | anchors.astype(np.int64)
        order = np.argsort(keys, kind="stable")
        watched = sorted_unique(keys[order])
        where = np.empty(len(keys), dtype=np.int64)
        where[order] = np.searchsorted(watched, keys[order])
        gain = np.bincount(where, weights=gains, minlength=len(watched))
        old = self.keys()
        pairs = sorted_unique(np.sort(np.concatenate([old, watched])))
        value = np.zeros(len(pairs))
        value[np.searchsorted(pairs, old)] = self.strength.astype(np.float64) * decay
        value[np.searchsorted(pairs, watched)] += gain
        value = value.astype(np.float32)
        keep = value >= HABIT_FLOOR
        pairs = pairs[keep]
        return Habits(pairs >> 32, pairs & 0xFFFFFFFF, value[keep])

    def term(self, params: SimParams) -> np.ndarray:
        """`[P]` each pair's utility when the habit is recalled:
        habit_strength * h / (h + habit_saturation)."""
        h = self.strength.astype(np.float64)
        return params.habit_strength * h / (h + params.habit_saturation)

    def expected_term(self, params: SimParams) -> np.ndarray:
        """`[P]` the log of each pair's choice weight multiplier in expectation over the
        day's recall: log(1 - recall + recall * exp(term))."""
        return np.log1p(params.habit_recall * np.expm1(self.term(params)))


@dataclass(frozen=True)
class World:
    """Everyone who exists so far; row i of each array is entity id i + 1."""

    user_vecs: np.ndarray  # [users, DIM]
    user_activity: np.ndarray  # [users]
    anchor_vecs: np.ndarray  # [anchors, DIM]
    anchor_pop: np.ndarray  # [anchors]
    anchor_live_p: np.ndarray  # [anchors]
    anchor_category: np.ndarray  # [anchors] category code
    anchor_gender: np.ndarray  # [anchors] gender code
    habits: Habits  # at the start of the next day to draw

    @classmethod
    def empty(cls) -> World:
        none = np.empty(0, np.int64)
        return cls(np.empty((0, DIM)), np.empty(0), np.empty((0, DIM)), np.empty(0),
                   np.empty(0), none, none, Habits.empty())

    @property
    def n_users(self) -> int:
        return len(self.user_activity)

    @property
    def n_anchors(self) -> int:
        return len(self.anchor_pop)

    def grow(self, users: dict[str, np.ndarray], anchors: dict[str, np.ndarray]) -> World:
        """The world with new users and anchors appended (ids continue where they stopped)."""
        return replace(
            self,
            user_vecs=np.vstack([self.user_vecs, users["vecs"]]),
            user_activity=np.concatenate([self.user_activity, users["activity"]]),
            anchor_vecs=np.vstack([self.anchor_vecs, anchors["vecs"]]),
            anchor_pop=np.concatenate([self.anchor_pop, anchors["pop"]]),
            anchor_live_p=np.concatenate([self.anchor_live_p, anchors["live_p"]]),
            anchor_category=np.concatenate([self.anchor_category, anchors["category"]]),
            anchor_gender=np.concatenate([self.anchor_gender, anchors["gender"]]),
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
    habits: Habits  # at the start of the day: what the day's choices used


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
    noise = rng.normal(0, TRAIT_SD, (n, DIM))
    w_cat, w_gender, w_noise = TRAIT_WEIGHTS
    vecs = w_cat * tastes.category[cat] + w_gender * tastes.anchor_gender[g] + w_noise * noise
    pop = 1.0 + rng.pareto(POP_SHAPE, n)  # power law: a few stars, a long tail
    live_p = rng.uniform(0.2, 0.9, n)
    return {"category": cat, "gender": g, "city": city,
            "vecs": vecs, "pop": pop, "live_p": live_p}


def choice_logits(user_vecs: np.ndarray, anchor_vecs: np.ndarray, log_pop: np.ndarray,
                  temperature: float) -> np.ndarray:
    """Unnormalised log P(user picks anchor), `[users, anchors]`, before habits:
    affinity / T + log pop."""
    return user_vecs @ anchor_vecs.T / temperature + log_pop


# (row, column, value) of distinct cells, rows ascending
Bonus = tuple[np.ndarray, np.ndarray, np.ndarray]


def choose_anchors(
    rng: np.random.Generator, user_vecs: np.ndarray, counts: np.ndarray,
    anchor_vecs: np.ndarray, log_pop: np.ndarray, temperature: float,
    chunk_elems: int = 1 << 15, bonus: Bonus | None = None,
) -> np.ndarray:
    """For each user row, draw counts[i] anchor columns with p ∝ exp(logit), the logits
    being choice_logits plus `bonus` (sparse: value added at (row, column); the habits).

    Rows are processed in chunks small enough to stay in cache (and to keep BLAS on one
    thread); inside a chunk each row's CDF is shifted by its row number, which lets one
    searchsorted sample every row at once.
    """
    n_live = anchor_vecs.shape[0]
    bounds = np.concatenate(([0], np.cumsum(counts)))
    out = np.empty(bounds[-1], dtype=np.int64)
    uniform = rng.random(bounds[-1])
    step = max(1, chunk_elems // n_live)
    scaled = np.ascontiguousarray(anchor_vecs.T / temperature)
    for r0 in range(0, len(counts), step):
        r1 = min(r0 + step, len(counts))
        cdf = user_vecs[r0:r1] @ scaled
        cdf += log_pop
        if bonus is not None:
            b0, b1 = np.searchsorted(bonus[0], [r0, r1])
            cdf[bonus[0][b0:b1] - r0, bonus[1][b0:b1]] += bonus[2][b0:b1]
        cdf -= cdf.max(axis=1, keepdims=True)
        np.exp(cdf, out=cdf)
        np.cumsum(cdf, axis=1, out=cdf)
        cdf /= cdf[:, -1:]
        rows = np.arange(r1 - r0)
        cdf += rows[:, None]
        row_of = np.repeat(rows, counts[r0:r1])
        pos = np.searchsorted(cdf.ravel(), row_of + uniform[bounds[r0]:bounds[r1]],
                              side="right")
        out[bounds[r0]:bounds[r1]] = np.clip(pos - row_of * n_live, 0, n_live - 1)
    return out


def habit_bonus(habits: Habits, params: SimParams, rows_of: np.ndarray, cols: np.ndarray,
                recall: np.random.Generator | None = None) -> Bonus | None:
    """The habit term as a choose_anchors bonus, on pairs whose user has a row
    (`rows_of[user]` >= 0, ascending in the user) and whose anchor has a column
    (`cols[anchor]` >= 0: live). With `recall`, the habits recalled today (each with
    probability habit_recall) add their term; without, every habit adds its expected term
    (a choice over several days). None without habits."""
    if params.habit_strength == 0 or not len(habits):
        return None
    if recall is not None:
        recalled = recall.random(len(habits)) < params.habit_recall
        value = habits.term(params)
    else:
        recalled = np.ones(len(habits), dtype=bool)
        value = habits.expected_term(params)
    known = recalled & (habits.anchors < len(cols))
    row = np.where(known, rows_of[habits.users], -1)
    col = np.where(known, cols[np.minimum(habits.anchors, len(cols) - 1)], -1)
    keep = (row >= 0) & (col >= 0)
    return row[keep], col[keep], value[keep]


def positions_of(indices: np.ndarray, n: int) -> np.ndarray:
    """`[n]`: the position of each of 0..n-1 in `indices` (unique), -1 where absent."""
    out = np.full(n, -1, dtype=np.int64)
    out[indices] = np.arange(len(indices))
    return out


def draw_sessions(
    rng: np.random.Generator, world: World, live: np.ndarray, per_user: float,
    params: SimParams, recall: np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Today's (user index, anchor index, second of day), unique per triple; `recall` draws
    which habits the users recall today."""
    counts = rng.poisson(per_user * world.user_activity)
    active = np.flatnonzero(counts)
    bonus = habit_bonus(world.habits, params, positions_of(active, world.n_users),
                        positions_of(live, world.n_anchors), recall)
    col = choose_anchors(rng, world.user_vecs[active], counts[active], world.anchor_vecs[live],
                         np.log(world.anchor_pop[live]), params.temperature, bonus=bonus)
    users = np.repeat(active, counts[active])
    anchors = live[col]
    secs = rng.integers(0, DAY_SECONDS, users.size)
    # Same user, anchor and second twice would be an exact duplicate; keep the first.
    key = (users * world.n_anchors + anchors) * DAY_SECONDS + secs
    keep = np.sort(np.unique(key, return_index=True)[1])
    return users[keep], anchors[keep], secs[keep]


BURN_IN_STEP_DAYS = 7
BURN_IN_BLOCK_USERS = 4096  # users drawn at once in a burn-in step: bounds the memory


def burn_in_habits(params: SimParams, world: World, per_user: float) -> Habits:
    """The habits of `world`'s population after params.habit_burn_in_days of past viewing.

    Coarse but cheap: the past is drawn in steps of up to BURN_IN_STEP_DAYS days, each one
    choice pass over every anchor weighted by its live probability, with the habits of the
    step's start at their expected term (over the days' recalls); the step's long watches
    are spread uniformly over its days.
    """
    habits, left, step = world.habits, params.habit_burn_in_days, 0
    if params.habit_strength == 0:
        return habits
    every_user, every_anchor = np.arange(world.n_users), np.arange(world.n_anchors)
    log_weight = np.log(world.anchor_pop * world.anchor_live_p)
    while left > 0:
        days = min(BURN_IN_STEP_DAYS, left)
        rng = rng_for(params.seed, step, "burn_in")  # one stream per step
        counts = rng.poisson(per_user * days * world.user_activity)
        bonus = habit_bonus(habits, params, every_user, every_anchor)
        watched_users, watched_anchors = [], []
        for u0 in range(0, world.n_users, BURN_IN_BLOCK_USERS):
            u1 = min(u0 + BURN_IN_BLOCK_USERS, world.n_users)
            block = None
            if bonus is not None:
                b0, b1 = np.searchsorted(bonus[0], [u0, u1])
                block = (bonus[0][b0:b1] - u0, bonus[1][b0:b1], bonus[2][b0:b1])
            anchors = choose_anchors(rng, world.user_vecs[u0:u1], counts[u0:u1],
                                     world.anchor_vecs, log_weight, params.temperature,
                                     bonus=block)
            users = np.repeat(np.arange(u0, u1), counts[u0:u1])
            affinity = np.einsum("ij,ij->i", world.user_vecs[users], world.anchor_vecs[anchors])
            stays = affinity + rng.normal(0, PERCEPTION_SD, users.size) > LONG_WATCH_THRESHOLD
            watched_users.append(users[stays])
            watched_anchors.append(anchors[stays])
        users, anchors = np.concatenate(watched_users), np.concatenate(watched_anchors)
        ago = rng.integers(0, days, users.size)  # days before the step's last
        habits = habits.updated(params.habit_decay**days, users, anchors,
                                params.habit_decay**ago)
        left, step = left - days, step + 1
    return habits


def draw_outcomes(rng: np.random.Generator, affinity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Watch seconds and gift value (0 = none), both driven by true affinity."""
    n = affinity.size
    z = affinity + rng.normal(0, PERCEPTION_SD, n)  # noisy perceived match
    long_watch = LONG_WATCH_SECONDS + rng.lognormal(np.log(150.0) + 0.4 * affinity, 1.0)
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

    Returns the grown world, its habits updated with the day's long watches (those of the
    next day's start), and what the day drew.
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
    if i == 0:
        world = replace(world, habits=burn_in_habits(params, world, per_user))
    users, anchors, secs = draw_sessions(rng_for(params.seed, i, "sessions"), world, live,
                                         per_user, params, rng_for(params.seed, i, "recall"))
    affinity = np.einsum("ij,ij->i", world.user_vecs[users], world.anchor_vecs[anchors])
    watch, gift = draw_outcomes(rng_for(params.seed, i, "outcomes"), affinity)
    drawn = Day(ub, ab, signup_ages, debut_ages, live, users, anchors, secs, watch, gift,
                world.habits)
    if params.habit_strength > 0:
        long = watch >= LONG_WATCH_SECONDS
        world = replace(world, habits=world.habits.updated(params.habit_decay, users[long],
                                                           anchors[long]))
    return world, drawn
