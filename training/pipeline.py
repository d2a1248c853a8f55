"""tf.data over training-set files: batches from `training.reader`, typed, prepared on the
host (an optional `transform`, e.g. string lookups), prefetched. The copy to an accelerator
is the strategy's (`training.loop` asks for it with `InputOptions`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf

from training.reader import read_batches


def column_signature(columns: Sequence[str], schema: pa.Schema, id_list_width: int | None
                     ) -> dict[str, tf.TensorSpec]:
    """The TensorSpec of each column as `training.reader` yields it (id lists of any width
    when `id_list_width` is None, as a serving signature takes them)."""
    spec = {}
    for name in columns:
        kind = schema.field(name).type
        if pa.types.is_list(kind) or pa.types.is_large_list(kind):
            is_ids = pa.types.is_integer(kind.value_type)
            spec[name] = tf.TensorSpec([None, id_list_width if is_ids else None],
                                       tf.int64 if is_ids else tf.float64, name=name)
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
                 id_list_width: int, epochs: int = 1, drop_remainder: bool = True,
                 shuffle_files: bool = True, transform: Callable | None = None
                 ) -> tf.data.Dataset:
    """`epochs` passes over `files`, each in its own file order, each batch passed through
    `transform` (in parallel, order kept) when given, prefetched."""
    if not files:
        raise ValueError("no data files to read")
    signature = column_signature(columns, pq.read_schema(files[0]), id_list_width)

    def generate():
        for epoch in range(epochs):
            yield from read_batches(files, columns, batch_size, seed, epoch, id_list_width,
                                    drop_remainder, shuffle_files)

    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    if transform is not None:
        dataset = dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE,
                              deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
