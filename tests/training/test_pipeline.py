"""Reader and tf.data pipeline over Parquet files: types, widths, nulls, batch sizes."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tensorflow as tf

from training.pipeline import column_signature, make_dataset
from training.reader import read_batches, to_numpy

pytestmark = pytest.mark.engine


@pytest.fixture()
def files(tmp_path):
    paths = []
    for i in range(3):
        table = pa.table({
            "user_id": pa.array(np.arange(10) + 10 * i, pa.int64()),
            "city": pa.array(["a", None] * 5),
            "flag": pa.array([True, None] * 5),
            "ids": pa.array([[1, 2, 3, 4]] * 5 + [[5], None, [], [6, 7], [8]],
                            pa.list_(pa.int64())),
            "shares": pa.array([[0.5, 0.5]] * 10, pa.list_(pa.float64())),
            "count": pa.array([1, None] * 5, pa.int32()),
        })
        paths.append(str(tmp_path / f"part-{i}.parquet"))
        pq.write_table(table, paths[-1])
    return paths


def test_arrow_columns_become_fixed_width_numpy_with_nulls_filled(files):
    table = pq.read_table(files[0])
    ids = to_numpy(table.column("ids"), id_list_width=3)
    # id lists are padded with -1: 0 is a valid id
    assert ids.shape == (10, 3) and ids[0].tolist() == [1, 2, 3]
    assert ids[6].tolist() == [-1, -1, -1] and ids[8].tolist() == [6, 7, -1]
    assert to_numpy(table.column("city"), 3).tolist()[:2] == ["a", ""]
    assert to_numpy(table.column("flag"), 3).tolist()[:2] == [True, False]
    assert to_numpy(table.column("count"), 3).tolist()[:2] == [1, 0]
    assert to_numpy(table.column("shares"), 3).shape == (10, 2)


def test_batches_are_full_and_cover_every_row(files):
    batches = list(read_batches(files, ["user_id"], 7, seed=0, epoch=0, id_list_width=3,
                                drop_remainder=False))
    assert [len(b["user_id"]) for b in batches] == [7, 7, 7, 7, 2]
    assert sorted(np.concatenate([b["user_id"] for b in batches]).tolist()) == list(range(30))
    dropped = list(read_batches(files, ["user_id"], 7, 0, 0, 3, drop_remainder=True))
    assert len(dropped) == 4


def test_the_dataset_signature_matches_what_the_reader_yields(files):
    columns = ["user_id", "city", "flag", "ids", "shares", "count"]
    signature = column_signature(columns, pq.read_schema(files[0]), id_list_width=3)
    assert signature["ids"].shape.as_list() == [None, 3] and signature["ids"].dtype == tf.int64
    assert signature["count"].dtype == tf.int32 and signature["city"].dtype == tf.string
    dataset = make_dataset(files, columns, batch_size=8, seed=1, id_list_width=3, epochs=2)
    batches = list(dataset)
    assert len(batches) == 2 * (30 // 8)
    assert all(b["ids"].shape == (8, 3) and b["shares"].shape == (8, 2) for b in batches)
