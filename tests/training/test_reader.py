"""The reader's half of the global shuffle: what the trainer sees (consecutive batches as
the reader yields them) is a random sample of the whole set; without the in-pile
permutation it is not. Two pile sets of the same day-sorted rows: the job's writer
(real Spark), and the worst case the design allows, each pile written in source order."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.mixing import MIXING_GROUPS, batches_mixing_z
from jobs.lake import Lake
from tests.jobs.test_training_set import day_sorted_rows, write_piles
from training.reader import piles, read_batches

BATCH = 256
DAYS, PER_DAY, PILES = 30, 1500, 4


@pytest.fixture(scope="module")
def spark_piles(tmp_path_factory, spark) -> list[str]:
    """45,000 rows of 30 days, day-sorted at the source, in 4 piles as the job writes them
    (two files a pile where the engine wrote a pile from two tasks)."""
    lake = Lake(tmp_path_factory.mktemp("piles") / "lake", spark)
    return write_piles(lake, day_sorted_rows(spark, DAYS, PER_DAY), "piled", seed=7,
                       piles=PILES)


@pytest.fixture(scope="module")
def sorted_piles(tmp_path_factory) -> list[str]:
    """The same rows in 4 random piles, each pile kept in source (day) order: a write that
    pays no sort may legally produce exactly this."""
    ids = np.arange(DAYS * PER_DAY)
    rows = pa.table({"dt": [f"2026-01-{1 + i // PER_DAY:02d}" for i in ids],
                     "user_id": ids % PER_DAY // 10, "anchor_id": ids % 97})
    pile = np.random.default_rng(7).integers(0, PILES, len(ids))
    folder = tmp_path_factory.mktemp("sorted_piles")
    files = []
    for k in range(PILES):
        (folder / f"shard={k}").mkdir()
        files.append(str(folder / f"shard={k}" / "part-0.parquet"))
        pq.write_table(rows.filter(pa.array(pile == k)), files[-1])
    return files


def _epoch(files: list[str], epoch: int, **options) -> list[dict[str, np.ndarray]]:
    return list(read_batches(files, MIXING_GROUPS, BATCH, seed=3, epoch=epoch,
                             id_list_width=1, drop_remainder=False, **options))


def _rows(batches: list[dict[str, np.ndarray]]) -> list[tuple]:
    return list(zip(*[np.concatenate([b[c] for b in batches]).tolist()
                      for c in MIXING_GROUPS], strict=True))


@pytest.mark.engine
@pytest.mark.parametrize("written", ["spark_piles", "sorted_piles"])
def test_consecutive_batches_the_reader_yields_are_random_samples(written, request):
    files = request.getfixturevalue(written)
    epochs = [_epoch(files, e) for e in (0, 1)]
    for batches in epochs:
        assert all(len(b["dt"]) == BATCH for b in batches[:-1])
        for group, z in batches_mixing_z(batches).items():
            # the sum of per-batch chi-squares is ~N(0, 1) as a z-score under a shuffle
            assert abs(z) < 4, f"{group} mix of consecutive batches differs from the set: {z}"
        assert len(set(batches[0]["dt"])) >= 25  # one batch already holds most of 30 days
    first, second = (_rows(b) for b in epochs)
    assert len(first) == DAYS * PER_DAY == len(set(first))  # every row once an epoch
    assert sorted(first) == sorted(second) and first != second  # a new order each epoch
    assert _rows(_epoch(files, 0)) == first  # a function of (seed, epoch)


@pytest.mark.unit
def test_a_reader_that_skips_the_in_pile_permutation_fails_the_mixing_test(sorted_piles):
    z = batches_mixing_z(_epoch(sorted_piles, 0, permute_piles=False))
    # piles in source order: a batch holds one or two days of 30 (far too uneven), and
    # the users of a day cycle through the buckets (far too even: z below -4)
    assert z["day"] > 100 and abs(z["user"]) > 4


def _write(path, days: list[str], rows: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"dt": [d for d in days for _ in range(rows)],
                             "user_id": np.arange(rows * len(days)),
                             "anchor_id": np.arange(rows * len(days))}), path)
    return str(path)


@pytest.mark.unit
def test_a_pile_split_over_files_is_permuted_as_one(tmp_path):
    """A writer may split a pile over several files, each holding part of the source
    order: the reader must permute the whole pile, not each file."""
    files = [_write(tmp_path / "shard=0" / "a.parquet", ["d1"], 500),
             _write(tmp_path / "shard=0" / "b.parquet", ["d2"], 500),
             _write(tmp_path / "shard=1" / "c.parquet", ["d3"], 100),
             _write(tmp_path / "loose.parquet", ["d4"], 100)]
    assert piles(files) == [files[:2], [files[2]], [files[3]]]
    batches = list(read_batches(files, ["dt"], 100, seed=0, epoch=0, id_list_width=1,
                                shuffle_files=False))
    # pile 0 first: every batch of its 1,000 rows draws from both files (a batch of 100
    # from one file alone has probability about 2^-99 under a whole-pile permutation)
    assert all(set(b["dt"]) == {"d1", "d2"} for b in batches[:10])
    assert [set(b["dt"]) for b in batches[10:]] == [{"d3"}, {"d4"}]
