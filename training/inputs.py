"""From training-set shards to model inputs: shard reading, batching, feature encoding.

Rows come from the training set's Parquet files (listed by the Delta log) as pyarrow batches,
one shard after another in a fresh random order each epoch, and are cut into fixed-size
batches (in-batch negatives need full batches). `RawFeatureEncoder` turns raw columns
(strings, counts, id lists) into tower inputs with TF ops; the exported serving signatures use
the same encoder, so training and serving cannot encode a feature differently.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from features.examples import (
    ANCHOR_CATEGORICAL,
    ANCHOR_CONTENT_NUMERIC,
    ANCHOR_PREFERENCE_NUMERIC,
    USER_CATEGORICAL,
    USER_CONTENT_NUMERIC,
    USER_PREFERENCE_NUMERIC,
)
from training.towers import (
    PREFERENCE,
    CategoricalFeature,
    NumericFeature,
    SequenceFeature,
    TowerSpec,
)

# Counts and durations are heavy-tailed: log1p; rates are already in [0, 1].
_RATES = ("user_bounce_rate", "anchor_bounce_rate")
LABEL_COLUMNS = ("label", "anchor_id", "user_id", "dt")


@dataclass(frozen=True)
class Vocabularies:
    """What the encoder needs to know of the data: string vocabularies and id ranges."""

    strings: dict[str, list[str]]  # raw column -> sorted values (index = id)
    categories: int  # width of user_category_shares
    anchor_buckets: int  # anchor ids are used directly as ids in [1, anchor_buckets)
    last_k: int

    @classmethod
    def from_manifest(cls, manifest: dict, anchor_buckets: int, last_k: int) -> Vocabularies:
        vocab = manifest["vocabularies"]
        strings = {f"user_{c}": vocab[f"user_{c}"] for c in USER_CATEGORICAL}
        strings.update({f"anchor_{c}": vocab[f"anchor_{c}"] for c in ANCHOR_CATEGORICAL})
        return cls(strings, len(vocab["category"]), anchor_buckets, last_k)


def tower_specs(vocab: Vocabularies) -> tuple[TowerSpec, TowerSpec]:
    """The features of the user and anchor towers (DropoutNet content/preference groups)."""

    def categorical(name: str) -> CategoricalFeature:
        size = len(vocab.strings[name])
        return CategoricalFeature(name, max(size, 1), min(8, max(2, size // 2)))

    def numeric(name: str, group: str = PREFERENCE) -> NumericFeature:
        kind = "content" if group != PREFERENCE else PREFERENCE
        return NumericFeature(name, kind, log1p=name not in _RATES)

    user = TowerSpec((
        *[categorical(f"user_{c}") for c in USER_CATEGORICAL],
        *[numeric(n, "content") for n in USER_CONTENT_NUMERIC],
        *[numeric(n) for n in USER_PREFERENCE_NUMERIC],
        NumericFeature("user_category_shares", PREFERENCE, width=vocab.categories),
        SequenceFeature("user_last_anchors", vocab.anchor_buckets, 16, PREFERENCE),
    ))
    anchor = TowerSpec((
        *[categorical(f"anchor_{c}") for c in ANCHOR_CATEGORICAL],
        *[numeric(n, "content") for n in ANCHOR_CONTENT_NUMERIC],
        *[numeric(n) for n in ANCHOR_PREFERENCE_NUMERIC],
        CategoricalFeature("anchor_id", vocab.anchor_buckets, 16, PREFERENCE),
    ))
    return user, anchor


def raw_columns(spec: TowerSpec) -> list[str]:
    """Raw example columns one tower reads (its features plus the has-history flag)."""
    prefix = "user" if spec.names[0].startswith("user_") else "anchor"
    return [*spec.names, f"{prefix}_has_history"]


class RawFeatureEncoder(tf.Module):
    """Raw columns of one tower -> tower inputs, with TF ops (also inside SavedModels).

    Strings become vocabulary ids (unknown -> -1, the tower's out-of-vocabulary row); numbers
    become float32 with NaN (a null) -> 0; id lists are padded or cut to K; has_history
    becomes the preference mask (a cold entity's preference group is zero, as in training).
    """

    def __init__(self, spec: TowerSpec, vocab: Vocabularies) -> None:
        super().__init__()
        self.spec = spec
        self.last_k = vocab.last_k
        self.tables = {}
        for feature in spec.features:
            if isinstance(feature, CategoricalFeature) and feature.name in vocab.strings:
                keys = tf.constant(vocab.strings[feature.name] or [""], tf.string)
                init = tf.lookup.KeyValueTensorInitializer(
                    keys, tf.range(tf.size(keys, out_type=tf.int64), dtype=tf.int64))
                self.tables[feature.name] = tf.lookup.StaticHashTable(init, default_value=-1)
        self.mask_column = raw_columns(spec)[-1]

    def __call__(self, raw: dict[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        """Returns (tower inputs, preference mask `[B]` float32)."""
        out = {}
        for feature in self.spec.features:
            value = raw[feature.name]
            if feature.name in self.tables:
                out[feature.name] = self.tables[feature.name].lookup(value)
            elif isinstance(feature, CategoricalFeature):
                out[feature.name] = tf.cast(value, tf.int64)
            elif isinstance(feature, SequenceFeature):
                ids = tf.cast(value, tf.int64)[:, : self.last_k]
                pad = self.last_k - tf.shape(ids)[1]
                out[feature.name] = tf.pad(ids, [[0, 0], [0, pad]])
            else:
                number = tf.cast(value, tf.float32)
                out[feature.name] = tf.where(tf.math.is_nan(number), 0.0, number)
        mask = tf.cast(raw[self.mask_column], tf.float32)
        return out, mask


def shard_files(table_path: Path | str, fmt: str = "delta") -> list[str]:
    """The data files of a table: from the Delta log (only committed files), or a Parquet
    folder listing."""
    if fmt == "delta":
        from deltalake import DeltaTable

        return sorted(DeltaTable(str(table_path)).file_uris())
    return sorted(str(p) for p in Path(table_path).rglob("*.parquet"))


def _to_numpy(column: pa.ChunkedArray | pa.Array, last_k: int) -> np.ndarray:
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        width = last_k if pa.types.is_integer(column.type.value_type) else None
        lengths = column.value_lengths().fill_null(0).to_numpy()
        values = column.flatten().to_numpy(zero_copy_only=False)
        width = width or int(lengths.max(initial=0))
        out = np.zeros((len(column), width), dtype=values.dtype if values.size else np.float64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        for j in range(width):  # K is small: one vectorised pass per position
            has = lengths > j
            out[has, j] = values[starts[has] + j]
        return out
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column.fill_null("").to_numpy(zero_copy_only=False).astype(object)
    if pa.types.is_boolean(column.type):
        return column.fill_null(False).to_numpy(zero_copy_only=False)
    if pa.types.is_integer(column.type):  # keep the int dtype: a null count means 0
        return column.fill_null(0).to_numpy(zero_copy_only=False)
    return column.to_numpy(zero_copy_only=False)


def read_batches(files: Sequence[str], columns: Sequence[str], batch_size: int, seed: int,
                 epoch: int, last_k: int, drop_remainder: bool = True,
                 shuffle_files: bool = True) -> Iterator[dict[str, np.ndarray]]:
    """Fixed-size numpy batches over `files`, shards in a random order per (seed, epoch)."""
    order = list(files)
    if shuffle_files:
        np.random.default_rng([seed, epoch]).shuffle(order)
    pending: list[pa.RecordBatch] = []
    held = 0
    for path in order:
        for record_batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size,
                                                              columns=list(columns)):
            pending.append(record_batch)
            held += record_batch.num_rows
            while held >= batch_size:
                table = pa.Table.from_batches(pending)
                yield {c: _to_numpy(table.column(c).slice(0, batch_size), last_k)
                       for c in columns}
                rest = table.slice(batch_size)
                pending, held = rest.to_batches(), rest.num_rows
    if held and not drop_remainder:
        table = pa.Table.from_batches(pending)
        yield {c: _to_numpy(table.column(c), last_k) for c in columns}


def column_signature(columns: Sequence[str], schema: pa.Schema, last_k: int) -> dict:
    spec = {}
    for name in columns:
        kind = schema.field(name).type
        if pa.types.is_list(kind):
            width = last_k if pa.types.is_integer(kind.value_type) else None
            dtype = tf.int64 if pa.types.is_integer(kind.value_type) else tf.float64
            spec[name] = tf.TensorSpec([None, width], dtype, name=name)
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            spec[name] = tf.TensorSpec([None], tf.string, name=name)
        elif pa.types.is_boolean(kind):
            spec[name] = tf.TensorSpec([None], tf.bool, name=name)
        elif pa.types.is_integer(kind):
            dtype = tf.int64 if kind.bit_width == 64 else tf.int32
            spec[name] = tf.TensorSpec([None], dtype, name=name)
        else:
            spec[name] = tf.TensorSpec([None], tf.float64, name=name)
    return spec


def make_dataset(files: Sequence[str], columns: Sequence[str], batch_size: int, seed: int,
                 last_k: int, epochs: int = 1, drop_remainder: bool = True,
                 shuffle_files: bool = True) -> tf.data.Dataset:
    """tf.data over `files`: `epochs` passes, each with its own shard order, prefetched."""
    if not files:
        raise ValueError("no data files to read")
    schema = pq.read_schema(files[0])
    signature = column_signature(columns, schema, last_k)

    def generate():
        for epoch in range(epochs):
            yield from read_batches(files, columns, batch_size, seed, epoch, last_k,
                                    drop_remainder, shuffle_files)

    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
