"""Raw example columns -> tower inputs, with TF ops, in training and inside SavedModels.

The exported serving signatures call the same encoder as training, so training and
serving cannot encode a feature differently.
"""

from __future__ import annotations

import tensorflow as tf

from training.models.two_tower.features import Vocabularies, raw_columns
from training.models.two_tower.towers import CategoricalFeature, SequenceFeature, TowerSpec


class RawFeatureEncoder(tf.Module):
    """Raw columns of one tower -> (tower inputs, preference mask `[B]` float32).

    Strings become vocabulary ids (unknown -> -1, the tower's out-of-vocabulary row); anchor
    ids become embedding rows through a lookup table (unknown -> the out-of-vocabulary row;
    -1 in an id list is padding -> 0); numbers become float32 with NaN (a null) -> 0; id
    lists are padded or cut to K; has_history becomes the preference mask (a cold entity's
    preference group is zero, as in training).
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
        ids = tf.constant(vocab.anchor_ids, tf.int64)
        self.anchor_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                ids, tf.range(1, tf.size(ids, out_type=tf.int64) + 1, dtype=tf.int64)),
            default_value=vocab.anchor_rows)
        self.mask_column = raw_columns(spec)[-1]

    def __call__(self, raw: dict[str, tf.Tensor]) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        out = {}
        for feature in self.spec.features:
            value = raw[feature.name]
            if feature.name in self.tables:
                out[feature.name] = self.tables[feature.name].lookup(value)
            elif isinstance(feature, CategoricalFeature):  # an anchor id
                out[feature.name] = self.anchor_table.lookup(tf.cast(value, tf.int64))
            elif isinstance(feature, SequenceFeature):  # anchor ids, -1 = padding
                out[feature.name] = self._id_list(value, self.last_k)
            else:
                out[feature.name] = _number(value)
        memory = self.spec.memory
        if memory is not None and memory.ids not in out:
            out[memory.ids] = self._id_list(raw[memory.ids], memory.width)
        if memory is not None and memory.weights:
            out[memory.weights] = _fit_width(_number(raw[memory.weights]), memory.width, 0.0)
        mask = tf.cast(raw[self.mask_column], tf.float32)
        return out, mask

    def _id_list(self, value: tf.Tensor, width: int) -> tf.Tensor:
        """Anchor ids `[B, any]` (-1 = padding) -> embedding rows `[B, width]` (0 = padding)."""
        ids = _fit_width(tf.cast(value, tf.int64), width, -1)
        return tf.where(ids < 0, tf.constant(0, tf.int64), self.anchor_table.lookup(ids))


def _number(value: tf.Tensor) -> tf.Tensor:
    number = tf.cast(value, tf.float32)
    return tf.where(tf.math.is_nan(number), 0.0, number)


def _fit_width(values: tf.Tensor, width: int, pad_value) -> tf.Tensor:
    """`[B, any]` cut or padded (with `pad_value`) to `[B, width]`."""
    values = values[:, :width]
    return tf.pad(values, [[0, 0], [0, width - tf.shape(values)[1]]],
                  constant_values=pad_value)
