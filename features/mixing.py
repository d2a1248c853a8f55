"""How well a written order mixes: the statistic behind "every mini-batch is a random sample".

For consecutive batches of the order, compare each batch's counts per group (day, user
bucket, anchor bucket) with the whole set's shares by Pearson's chi-square. Under a true
shuffle the sum over batches follows chi-square with batches x (groups - 1) degrees of
freedom, so its z-score stays small; any ordering by day (or by user) makes it explode.
"""

from __future__ import annotations

import numpy as np


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
