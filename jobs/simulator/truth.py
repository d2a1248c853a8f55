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

`model.json` (the constants of the choice model, as used to draw every session):
    format                1
    dim                   latent dimension
    affinity              "dot(user_vecs, anchor_vecs)", of one (user, anchor) pair
    choice.temperature    T in P(anchor | user, live anchors) ∝ popularity * exp(affinity / T)
    perception.noise_sd   sd of the noise in the perceived match  m = affinity + N(0, sd)
    long_watch.threshold  m > threshold: the user stays (a long watch, >= 30 s)
    bounce.threshold      m < threshold: the user leaves at once (<= 2 s)

So log P(choose) + log P(long watch) of a pair, up to a per-user constant, is
    affinity / T + log popularity + log Phi((affinity - long_watch.threshold) / noise_sd).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from features.files import atomic_open, atomic_write_json
from jobs.simulator.world import (
    AFFINITY,
    BOUNCE_THRESHOLD,
    DIM,
    LONG_WATCH_THRESHOLD,
    PERCEPTION_SD,
    SimParams,
    World,
)

TRUTH_DIR = "_ground_truth"
LATENTS = "latents.npz"
MODEL = "model.json"
TRUTH_FORMAT = 1


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but with fixed zip timestamps so the bytes are reproducible."""
    with atomic_open(path) as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with zf.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)


def choice_model(params: SimParams) -> dict:
    """The `model.json` document of a run (see the module doc)."""
    return {
        "format": TRUTH_FORMAT,
        "dim": DIM,
        "affinity": AFFINITY,
        "choice": {"temperature": params.temperature},
        "perception": {"noise_sd": PERCEPTION_SD},
        "long_watch": {"threshold": LONG_WATCH_THRESHOLD},
        "bounce": {"threshold": BOUNCE_THRESHOLD},
    }


def save_truth(landing: Path, world: World, params: SimParams) -> Path:
    """Write the world's latents and the choice model under `landing`; returns the folder."""
    folder = Path(landing) / TRUTH_DIR
    write_npz(folder / LATENTS, {
        "user_ids": np.arange(1, world.n_users + 1),
        "user_vecs": world.user_vecs,
        "anchor_ids": np.arange(1, world.n_anchors + 1),
        "anchor_vecs": world.anchor_vecs,
        "anchor_popularity": world.anchor_pop,
        "user_activity": world.user_activity,
        "anchor_live_prob": world.anchor_live_p,
    })
    atomic_write_json(folder / MODEL, choice_model(params))
    return folder
