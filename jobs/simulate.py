"""Seeded simulator of a live-streaming platform: writes raw daily files to a landing zone.

Users watch anchors (streamers). Tastes are latent vectors driven by content attributes, so
cold-start users and anchors are learnable from their profiles. Every random draw comes from a
generator seeded by (seed, day index, purpose), so the same parameters give byte-identical
files, and a shorter run is a prefix of a longer one.

    python -m jobs.simulate --start 2026-01-01 --days 14 --scale demo --landing ./landing
"""

from __future__ import annotations

import argparse
import json
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import numpy as np

from features.validation import MAX_WATCH_SECONDS, REQUIRED_SESSION_KEYS

DIM = 16
USER_GENDERS, USER_GENDER_P = ("F", "M", "U"), (0.48, 0.47, 0.05)
AGE_BUCKETS, AGE_P = ("18-24", "25-34", "35-44", "45+"), (0.30, 0.35, 0.20, 0.15)
DEVICES, DEVICE_P = ("ios", "android", "web"), (0.40, 0.50, 0.10)
CITIES = tuple(f"c{i:02d}" for i in range(20))
CATEGORIES = tuple(f"cat{i:02d}" for i in range(12))
ANCHOR_GENDERS, ANCHOR_GENDER_P = ("F", "M"), (0.6, 0.4)
_CITY_W = 1.0 / np.arange(1, len(CITIES) + 1) ** 0.8
CITY_P = _CITY_W / _CITY_W.sum()  # Zipf-like: a few big cities dominate

BAD_KINDS = (
    "unparsable", "missing_column", "null_id", "malformed_id",
    "bad_duration", "out_of_day", "unknown_anchor", "duplicate",
)
UNKNOWN_ANCHOR_BASE = 900_000_000  # far above any id the simulation hands out
LONG_WATCH_CAP = 4 * 3600
DAY_SECONDS = 86_400
PART = "part-00000.jsonl"


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
    bad_rate: float = 0.01
    temperature: float = 1.0  # softmax temperature of anchor choice over affinity
    arrival_rate: float = 0.02  # new users / anchors per day, as a share of the population

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {sorted(SCALES)}, got {self.scale!r}")
        if not 1 <= self.days <= 366:
            raise ValueError(f"days must be in 1..366, got {self.days}")
        if not 0.0 <= self.bad_rate <= 0.5:
            raise ValueError(f"bad_rate must be in [0, 0.5], got {self.bad_rate}")
        if self.temperature <= 0 or self.seed < 0:
            raise ValueError("temperature must be > 0 and seed >= 0")


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

    user_vecs: np.ndarray
    user_activity: np.ndarray
    anchor_vecs: np.ndarray
    anchor_pop: np.ndarray
    anchor_live_p: np.ndarray

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


def user_lines(batch: dict[str, np.ndarray], first_id: int, signup: Sequence[str]) -> list[str]:
    return [
        f'{{"user_id": {first_id + i}, "signup_date": "{signup[i]}", '
        f'"gender": "{USER_GENDERS[g]}", "age_bucket": "{AGE_BUCKETS[a]}", '
        f'"city": "{CITIES[c]}", "device": "{DEVICES[d]}"}}'
        for i, (g, a, c, d) in enumerate(zip(
            batch["gender"].tolist(), batch["age"].tolist(),
            batch["city"].tolist(), batch["device"].tolist(), strict=True))
    ]


def anchor_lines(batch: dict[str, np.ndarray], first_id: int, debut: Sequence[str]) -> list[str]:
    return [
        f'{{"anchor_id": {first_id + i}, "debut_date": "{debut[i]}", '
        f'"category": "{CATEGORIES[k]}", "gender": "{ANCHOR_GENDERS[g]}", "city": "{CITIES[c]}"}}'
        for i, (k, g, c) in enumerate(zip(
            batch["category"].tolist(), batch["gender"].tolist(), batch["city"].tolist(),
            strict=True))
    ]


def days_before(day: date, offsets: np.ndarray) -> list[str]:
    return [(day - timedelta(days=int(k))).isoformat() for k in offsets]


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
        logits = user_vecs[r0:r1] @ anchor_vecs.T / temperature + log_pop
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
    z = affinity + rng.normal(0, 0.8, n)  # noisy perceived match
    long_watch = 30.0 + rng.lognormal(np.log(150.0) + 0.4 * affinity, 1.0)
    watch = np.select(
        [z > 0.9, z < 0.0],
        [np.minimum(long_watch, LONG_WATCH_CAP), rng.uniform(0.5, 2.0, n)],
        rng.uniform(3.0, 29.0, n),
    )
    stayed = np.where(z > 0.9, 1.0, np.where(z < 0.0, 0.0, 0.1))
    p_gift = 0.12 * stayed / (1.0 + np.exp(-2.0 * (affinity - 1.5)))
    value = np.maximum(np.round(rng.lognormal(np.log(2.0), 1.2, n), 1), 0.1)
    gift = np.where(rng.random(n) < p_gift, value, 0.0)
    return np.round(watch, 1), gift


def _hms() -> list[str]:
    s = np.arange(DAY_SECONDS)
    return [f"{h:02d}:{m:02d}:{x:02d}" for h, m, x in
            zip((s // 3600).tolist(), (s // 60 % 60).tolist(), (s % 60).tolist(), strict=True)]


HMS = _hms()  # second of day -> "HH:MM:SS"; formatting via a table is ~5x faster


def session_fields(user: int, anchor: int, ts: str, watch: float, gift: float) -> dict[str, str]:
    """JSON literals of one session, keyed in file order."""
    f = {"user_id": str(user), "anchor_id": str(anchor), "start_time": f'"{ts}"',
         "watch_seconds": f"{watch:.1f}"}
    if gift > 0:
        f["gift_value"] = f"{gift:.1f}"
    return f


def render(fields: dict[str, str]) -> str:
    return "{" + ", ".join(f'"{k}": {v}' for k, v in fields.items()) + "}"


def session_lines(
    day: date, users: np.ndarray, anchors: np.ndarray, secs: np.ndarray,
    watch: np.ndarray, gift: np.ndarray,
) -> list[str]:
    """Good session lines, formatted in bulk (same text as render(session_fields(...)))."""
    p = day.isoformat() + "T"
    lines = [
        f'{{"user_id": {u}, "anchor_id": {a}, "start_time": "{p}{HMS[s]}Z", '
        f'"watch_seconds": {w:.1f}}}'
        for u, a, s, w in zip(users.tolist(), anchors.tolist(), secs.tolist(), watch.tolist(),
                              strict=True)
    ]
    for i in np.flatnonzero(gift).tolist():
        lines[i] = f'{lines[i][:-1]}, "gift_value": {gift[i]:.1f}}}'
    return lines


def corrupt(kind: str, f: dict[str, str], day: date, sec: int, good: str,
            rng: np.random.Generator, serial: int) -> str:
    """One bad line of `kind` from a good session's fields; every other field stays valid."""
    f = dict(f)
    if kind == "unparsable":
        # Cut after start_time so the fragment stays unique to its (user, anchor, time).
        cut = good.index('"watch_seconds"')
        return good[: int(rng.integers(cut, len(good) - 1))]
    if kind == "missing_column":
        del f[REQUIRED_SESSION_KEYS[int(rng.integers(len(REQUIRED_SESSION_KEYS)))]]
    elif kind == "null_id":
        f[("user_id", "anchor_id")[int(rng.integers(2))]] = "null"
    elif kind == "malformed_id":
        key = ("user_id", "anchor_id")[int(rng.integers(2))]
        f[key] = (f'"u{f[key]}x"', "0", str(-int(rng.integers(1, 100))))[int(rng.integers(3))]
    elif kind == "bad_duration":
        if rng.random() < 0.5:
            f["watch_seconds"] = f"{-(float(f['watch_seconds']) + 1.0):.1f}"
        else:
            f["watch_seconds"] = f"{rng.uniform(MAX_WATCH_SECONDS + 1, 1e7):.1f}"
    elif kind == "out_of_day":
        other = day + timedelta(days=1 if rng.random() < 0.5 else -1)
        f["start_time"] = f'"{other.isoformat()}T{HMS[sec]}Z"'
    elif kind == "unknown_anchor":
        f["anchor_id"] = str(UNKNOWN_ANCHOR_BASE + serial)
    elif kind == "duplicate":
        return good
    else:
        raise ValueError(f"unknown bad kind {kind!r}")
    return render(f)


def bad_lines(
    rng: np.random.Generator, day: date, day_idx: int, good: list[str], n_bad: int,
    users: np.ndarray, anchors: np.ndarray, secs: np.ndarray, watch: np.ndarray,
    gift: np.ndarray,
) -> tuple[list[str], dict[str, int]]:
    """n_bad bad lines, kinds in rotation so each occurs; each from a distinct good session."""
    counts = dict.fromkeys(BAD_KINDS, 0)
    out: list[str] = []
    seen: set[str] = set()
    ts_prefix = day.isoformat() + "T"
    templates = rng.choice(len(good), size=n_bad, replace=False).tolist()
    offset = int(rng.integers(len(BAD_KINDS)))
    for j, t in enumerate(templates):
        kind = BAD_KINDS[(j + offset) % len(BAD_KINDS)]
        f = session_fields(int(users[t]), int(anchors[t]), f"{ts_prefix}{HMS[secs[t]]}Z",
                           float(watch[t]), float(gift[t]))
        line = corrupt(kind, f, day, int(secs[t]), good[t], rng,
                       serial=day_idx * 1_000_000 + j)
        # A rare collision between two bad lines would blur the duplicate count; skip it.
        if kind != "duplicate" and line in seen:
            continue
        seen.add(line)
        out.append(line)
        counts[kind] += 1
    return out, counts


@contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """Write to a temp file in the same folder, then os.replace: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; readers may run as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    with atomic_open(path) as fh:
        fh.write(text.encode("utf-8"))


def write_part(folder: Path, lines: list[str]) -> None:
    """Write a day folder's single part file and drop stale parts left by earlier runs."""
    write_text(folder / PART, "".join(line + "\n" for line in lines))
    for p in folder.iterdir():
        if p.name != PART and p.name.startswith(("part-", f".{PART}.")):
            p.unlink()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but with fixed zip timestamps so the bytes are reproducible."""
    with atomic_open(path) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)


def simulate(
    params: SimParams, landing: Path, progress: Callable[[str], None] | None = print,
) -> dict:
    """Simulate params.days days into `landing`; return (and write) the run summary."""
    landing = Path(landing)
    scale = SCALES[params.scale]
    per_user = scale.sessions_per_day / scale.users
    tastes = make_tastes(rng_for(params.seed, 0, "tastes"))
    world = World.empty()
    summary_days: dict[str, dict] = {}

    for i in range(params.days):
        day = params.start + timedelta(days=i)
        iso = day.isoformat()
        arr = rng_for(params.seed, i, "arrivals")
        if i == 0:  # the whole initial population, joined during the past year
            nu, na = scale.users, scale.anchors
        else:  # cold-start arrivals, at least one of each
            nu = max(1, int(arr.binomial(world.n_users, params.arrival_rate)))
            na = max(1, int(arr.binomial(world.n_anchors, params.arrival_rate)))
        ub, ab = draw_users(arr, tastes, nu), draw_anchors(arr, tastes, na)
        u_dates = days_before(day, arr.integers(1, 366, nu)) if i == 0 else [iso] * nu
        a_dates = days_before(day, arr.integers(1, 366, na)) if i == 0 else [iso] * na
        first_a = world.n_anchors + 1
        write_part(landing / "users" / f"dt={iso}", user_lines(ub, world.n_users + 1, u_dates))
        write_part(landing / "anchors" / f"dt={iso}", anchor_lines(ab, first_a, a_dates))
        world = world.grow(ub, ab)

        is_live = rng_for(params.seed, i, "live").random(world.n_anchors) < world.anchor_live_p
        if i > 0:
            is_live[first_a - 1:] = True  # a debut is a live show
        live = np.flatnonzero(is_live)
        write_part(landing / "live_schedule" / f"dt={iso}",
                   [f'{{"anchor_id": {a}}}' for a in (live + 1).tolist()])

        users, anchors, secs = draw_sessions(rng_for(params.seed, i, "sessions"), world, live,
                                             per_user, params.temperature)
        affinity = np.einsum("ij,ij->i", world.user_vecs[users], world.anchor_vecs[anchors])
        watch, gift = draw_outcomes(rng_for(params.seed, i, "outcomes"), affinity)
        good = session_lines(day, users + 1, anchors + 1, secs, watch, gift)
        bad_rng = rng_for(params.seed, i, "bad")
        bad, bad_counts = bad_lines(bad_rng, day, i, good, round(params.bad_rate * len(good)),
                                    users + 1, anchors + 1, secs, watch, gift)
        lines = good + bad
        order = rng_for(params.seed, i, "shuffle").permutation(len(lines))
        write_part(landing / "watch_sessions" / f"dt={iso}", [lines[k] for k in order.tolist()])

        summary_days[iso] = {
            "sessions": len(good), "lines": len(lines), "bad": bad_counts,
            "new_users": nu, "new_anchors": na, "live_anchors": int(live.size),
            "users_total": world.n_users, "anchors_total": world.n_anchors,
        }
        if progress:
            progress(f"{iso}: sessions={len(good):,} bad={len(bad):,} new_users={nu:,} "
                     f"new_anchors={na:,} live_anchors={live.size:,}")

    write_npz(landing / "_ground_truth" / "latents.npz", {
        "user_ids": np.arange(1, world.n_users + 1),
        "user_vecs": world.user_vecs,
        "anchor_ids": np.arange(1, world.n_anchors + 1),
        "anchor_vecs": world.anchor_vecs,
        "anchor_popularity": world.anchor_pop,
        "user_activity": world.user_activity,
        "anchor_live_prob": world.anchor_live_p,
    })
    summary = {
        "params": {**asdict(params), "start": params.start.isoformat(), "dim": DIM,
                   "n_categories": len(CATEGORIES), "scale_spec": asdict(scale),
                   "affinity": "dot(user_vecs, anchor_vecs)"},
        "bad_kinds": list(BAD_KINDS),
        "days": summary_days,
    }
    write_text(landing / "_SIMULATION.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _parse_date(text: str) -> date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise ValueError
    return datetime.strptime(text, "%Y-%m-%d").date()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jobs.simulate",
        description="Simulate a live-streaming platform and write raw daily files to a landing "
                    "zone (watch_sessions, users, anchors, live_schedule).",
    )
    parser.add_argument("--start", required=True, help="first day, YYYY-MM-DD (UTC)")
    parser.add_argument("--days", required=True, type=int, help="number of days, 1..366")
    parser.add_argument("--landing", type=Path, default=Path("landing"),
                        help="landing zone root (default: ./landing)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="demo",
                        help="tiny ~2k, demo ~250k, bench ~1M sessions/day (default: demo)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    parser.add_argument("--bad-rate", type=float, default=0.01,
                        help="bad lines injected, as a fraction of good sessions, in [0, 0.5]")
    args = parser.parse_args(argv)
    try:
        start = _parse_date(args.start)
    except ValueError:
        parser.error(f"--start must be a date YYYY-MM-DD, got {args.start!r}")
    if not 1 <= args.days <= 366:
        parser.error(f"--days must be in 1..366, got {args.days}")
    if not 0.0 <= args.bad_rate <= 0.5:
        parser.error(f"--bad-rate must be in [0, 0.5], got {args.bad_rate}")
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    params = SimParams(start=start, days=args.days, scale=args.scale, seed=args.seed,
                       bad_rate=args.bad_rate)
    simulate(params, args.landing, progress=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
