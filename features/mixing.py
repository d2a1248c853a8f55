"""How well an order mixes: the statistic behind "every mini-batch is a random sample".

The order tested is the one the trainer sees: rows as `training.reader` yields them (the
written piles are unordered on purpose; the reader's permutation does the mixing).
For consecutive batches of the order, compare each batch's counts per group (day, user
bucket, anchor bucket) with the whole set's shares by Pearson's chi-square. Under a true
shuffle the sum over batches follows chi-square with batches x (groups - 1) degrees of
freedom, so its z-score stays small; any ordering by day (or by user) makes it explode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

MIXING_GROUPS = ("dt", "user_id", "anchor_id")


def batch_mixing_z(groups: np.ndarray, batch_size: int) -> float:
    """z-score of the summed per-batch chi-square of `groups` (one group label per row, in
    the order rows are read) against the whole set's group shares; ~N(0, 1) when shuffled."""
    groups = np.asarray(groups)
    batches = len(groups) // batch_size
    if batches < 1:
        raise ValueError(f"need at least one batch of {batch_size} rows, got {len(groups)}")
    _, codes = np.unique(groups, return_inverse=True)
    k = int(codes.max()) + 1
    if k < 2:
        return 0.0
    expected = np.bincount(codes, minlength=k) / len(codes) * batch_size
    used = codes[: batches * batch_size].reshape(batches, batch_size)
    counts = np.stack([np.bincount(row, minlength=k) for row in used])
    present = expected > 0
    statistic = float((((counts - expected) ** 2)[:, present] / expected[present]).sum())
    dof = batches * (int(present.sum()) - 1)
    return (statistic - dof) / np.sqrt(2 * dof)


def batches_mixing_z(batches: Iterable[Mapping[str, np.ndarray]], buckets: int = 16
                     ) -> dict[str, float]:
    """z-scores of consecutive `batches` (each holding dt, user_id, anchor_id; all but the
    last of one size) by day, user bucket and anchor bucket (id mod `buckets`)."""
    batches = list(batches)
    if not batches:
        raise ValueError("no batches to test")
    size = len(batches[0]["dt"])
    rows = {c: np.concatenate([np.asarray(b[c]) for b in batches]) for c in MIXING_GROUPS}
    return {"day": batch_mixing_z(rows["dt"], size),
            "user": batch_mixing_z(rows["user_id"] % buckets, size),
            "anchor": batch_mixing_z(rows["anchor_id"] % buckets, size)}
