"""User and anchor towers over a generic feature spec, with DropoutNet input dropout.

A tower reads a dict of tensors keyed by feature name. Each feature belongs to a group:
"content" (what is known of a user or anchor from day one: profile, category, city) or
"preference" (what only behaviour reveals: watch counts, last-K watched anchors). In training,
each example loses its whole preference group with probability `preference_dropout_rate`, so
the tower learns to embed cold users and anchors from content alone (Volkovs et al., 2017,
DropoutNet); at inference nothing is dropped.

Feature names come from the `features/` module; this file only takes them as arguments.

Mixed precision: a tower built under a "mixed_*" Keras dtype policy runs its embeddings and
Dense layers in 16 bits, but takes its inputs as they come (no autocast: a raw count such as
watch seconds would overflow float16 before its log1p), pools and concatenates in float32,
and L2-normalises in float32, so every tower returns float32 whatever the policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

import keras
import numpy as np
import tensorflow as tf

from training.models.two_tower.config import MemoryPooling

CONTENT = "content"
PREFERENCE = "preference"
GROUPS = (CONTENT, PREFERENCE)
MEMORY_POOLINGS = get_args(MemoryPooling)
_GATE_INPUTS = ("log1p_weight", "share_of_top", "one_minus_rank")
LEARNED_MAX = 2.0  # the largest strength a history anchor can take in "learned" pooling


def _check_group(name: str, group: str) -> None:
    if group not in GROUPS:
        raise ValueError(f"feature {name!r}: group must be one of {GROUPS}, got {group!r}")


@dataclass(frozen=True)
class NumericFeature:
    """A float feature `[batch_size]` (width 1) or `[batch_size, width]`.

    Values are fed as they are (already normalised upstream), or as log1p(max(x, 0)) for
    heavy-tailed counts such as watch seconds.
    """

    name: str
    group: str = CONTENT
    width: int = 1
    log1p: bool = False

    def __post_init__(self) -> None:
        _check_group(self.name, self.group)
        if self.width < 1:
            raise ValueError(f"feature {self.name!r}: width must be >= 1, got {self.width}")

    @property
    def output_dim(self) -> int:
        return self.width


@dataclass(frozen=True)
class CategoricalFeature:
    """An int64 id `[batch_size]` in [0, vocab_size), embedded in `embedding_dim`.

    Ids outside [0, vocab_size) share one extra out-of-vocabulary row.
    """

    name: str
    vocab_size: int
    embedding_dim: int
    group: str = CONTENT

    def __post_init__(self) -> None:
        _check_group(self.name, self.group)
        if self.vocab_size < 1 or self.embedding_dim < 1:
            raise ValueError(f"feature {self.name!r}: vocab_size and embedding_dim must be >= 1")

    @property
    def output_dim(self) -> int:
        return self.embedding_dim


@dataclass(frozen=True)
class SequenceFeature:
    """An int64 id sequence `[batch_size, seq_len]` (e.g. last-K anchors), mean-pooled.

    Id 0 is padding and is left out of the mean; other ids outside [1, vocab_size) share one
    out-of-vocabulary row. A row of padding only pools to zeros.
    """

    name: str
    vocab_size: int
    embedding_dim: int
    group: str = PREFERENCE

    def __post_init__(self) -> None:
        _check_group(self.name, self.group)
        if self.vocab_size < 2 or self.embedding_dim < 1:
            raise ValueError(f"feature {self.name!r}: vocab_size must be >= 2 (0 is padding) "
                             "and embedding_dim >= 1")

    @property
    def output_dim(self) -> int:
        return self.embedding_dim


Feature = NumericFeature | CategoricalFeature | SequenceFeature


@dataclass(frozen=True)
class Memory:
    """A tower's side of the memory channel: anchor embedding rows `[B]` or `[B, width]`
    (0 = padding) from the table both towers share, summed with `weights` (a float column of
    the same width; none: equal weights) and L2-normalised. It belongs to the preference
    group: dropped with it, and zero for a cold user or anchor."""

    ids: str
    weights: str | None = None
    width: int = 1

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.ids,) if self.weights is None else (self.ids, self.weights)


@dataclass(frozen=True)
class TowerSpec:
    """The inputs of one tower: features with unique names, at least one of them, and an
    optional memory channel."""

    features: tuple[Feature, ...]
    memory: Memory | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        if not self.features:
            raise ValueError("a tower needs at least one feature")
        names = [f.name for f in self.features]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"feature names must be unique, repeated: {duplicated}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    def group(self, group: str) -> tuple[Feature, ...]:
        _check_group("<group>", group)
        return tuple(f for f in self.features if f.group == group)


class MemoryCodes(keras.layers.Layer):
    """The memory channel's code table, shared by both towers: one code per anchor row
    (0 padding, 1 .. `rows`, the last the out-of-vocabulary row).

    `exact` rows get one-hot codes: the dot product of such an anchor's code with a pooled
    history is exactly its own strength there. The other rows get random codes of
    `random_dim` (nearly orthogonal, trained when `trainable`), whose dot product adds the
    crosstalk of every other history anchor (sd about |history| / sqrt(random_dim)), enough
    to blur the order among the anchors a user returns to. Exact codes cost one dimension
    each, so the most-watched anchors get them and, when the vocabulary fits, all do.
    One-hot parts are pooled by a scatter: `[batch, history, rows]` floats would not fit.
    """

    def __init__(self, rows: int, exact: Sequence[int] = (), random_dim: int = 32,
                 trainable: bool = False, seed: int | None = None, **kwargs) -> None:
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.rows = int(rows)
        slots = np.full(self.rows + 1, -1, np.int64)
        slots[np.asarray(exact, np.int64)] = np.arange(len(exact))
        self.exact_dim = len(exact)
        self.slots = tf.constant(slots)
        self.random = None
        if self.exact_dim < self.rows + 1:
            self.random = keras.layers.Embedding(
                self.rows + 1, random_dim, trainable=trainable,
                embeddings_initializer=keras.initializers.RandomNormal(seed=seed),
                name="random_codes")
            self.random.build((None, None))
        self.output_dim = self.exact_dim + (random_dim if self.random is not None else 0)
        self.built = True

    def pool(self, ids: tf.Tensor, weights: tf.Tensor, unit: bool) -> tf.Tensor:
        """`[B, output_dim]`: the codes of `ids` `[B, k]` (rows) summed with `weights`
        `[B, k]`; `unit` scales random codes to unit length first (one-hot codes are)."""
        slots = tf.gather(self.slots, ids)
        exact = tf.cast(slots >= 0, tf.float32)
        parts = []
        if self.exact_dim:
            shape = tf.shape(ids, out_type=tf.int64)
            users = tf.broadcast_to(tf.range(shape[0])[:, tf.newaxis], shape)
            index = tf.stack([tf.reshape(users, [-1]), tf.reshape(tf.maximum(slots, 0), [-1])],
                             axis=1)
            parts.append(tf.scatter_nd(index, tf.reshape(weights * exact, [-1]),
                                       tf.stack([shape[0], self.exact_dim])))
        if self.random is not None:
            embedded = tf.cast(self.random(ids), tf.float32)
            if unit:
                embedded = tf.math.l2_normalize(embedded, axis=-1)
            parts.append(tf.reduce_sum(embedded * (weights * (1.0 - exact))[..., tf.newaxis],
                                       axis=1))
        return tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]


def _in_vocab(ids: tf.Tensor, low: int, vocab_size: int) -> tf.Tensor:
    # Plain range check rather than keras.layers.Hashing, which breaks XLA on int64.
    ids = tf.cast(ids, tf.int64)
    return tf.where((ids >= low) & (ids < vocab_size), ids, tf.constant(vocab_size, tf.int64))


class NumericEncoder(keras.layers.Layer):
    """Numeric feature → `[batch_size, width]` float32."""

    def __init__(self, feature: NumericFeature, **kwargs) -> None:
        kwargs.setdefault("name", f"numeric_{feature.name}")
        kwargs.setdefault("autocast", False)  # log1p first, in float32: counts overflow float16
        super().__init__(**kwargs)
        self.feature = feature
        self.built = True  # no weights

    def call(self, values: tf.Tensor) -> tf.Tensor:
        """Args: values `[batch_size]` or `[batch_size, width]`. Returns `[batch_size, width]`."""
        values = tf.reshape(tf.cast(values, tf.float32), [-1, self.feature.width])
        if self.feature.log1p:
            # Counts are >= 0; the clip keeps a stray negative from turning into NaN.
            values = tf.math.log1p(tf.maximum(values, 0.0))
        return values


class CategoricalEncoder(keras.layers.Layer):
    """Categorical id → `[batch_size, embedding_dim]` float32, with an out-of-vocabulary row
    (the lookup runs in the policy's compute dtype)."""

    def __init__(self, feature: CategoricalFeature, **kwargs) -> None:
        kwargs.setdefault("name", f"categorical_{feature.name}")
        super().__init__(**kwargs)
        self.feature = feature
        self.embedding = keras.layers.Embedding(feature.vocab_size + 1, feature.embedding_dim,
                                                name=f"{feature.name}_embedding")
        self.embedding.build((None,))
        self.built = True

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        """Args: ids `[batch_size]` or `[batch_size, 1]` int. Returns `[batch_size, dim]`."""
        ids = _in_vocab(tf.reshape(ids, [-1]), 0, self.feature.vocab_size)
        return tf.cast(self.embedding(ids), tf.float32)


class SequenceEncoder(keras.layers.Layer):
    """Id sequence → masked mean of its embeddings, `[batch_size, embedding_dim]` float32."""

    def __init__(self, feature: SequenceFeature, **kwargs) -> None:
        kwargs.setdefault("name", f"sequence_{feature.name}")
        super().__init__(**kwargs)
        self.feature = feature
        self.embedding = keras.layers.Embedding(feature.vocab_size + 1, feature.embedding_dim,
                                                name=f"{feature.name}_embedding")
        self.embedding.build((None, None))
        self.built = True

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        """Args: ids `[batch_size, seq_len]` int, 0 = padding. Returns `[batch_size, dim]`."""
        ids = tf.cast(ids, tf.int64)
        mask = tf.cast(tf.not_equal(ids, 0), tf.float32)[..., tf.newaxis]  # [B, L, 1]
        embedded = tf.cast(self.embedding(_in_vocab(ids, 1, self.feature.vocab_size)),
                           tf.float32)  # [B, L, dim]; the mean in float32 under any policy
        total = tf.reduce_sum(embedded * mask, axis=1)
        return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


def _encoder(feature: Feature) -> keras.layers.Layer:
    if isinstance(feature, NumericFeature):
        return NumericEncoder(feature)
    if isinstance(feature, CategoricalFeature):
        return CategoricalEncoder(feature)
    if isinstance(feature, SequenceFeature):
        return SequenceEncoder(feature)
    raise TypeError(f"unknown feature spec {feature!r}")


class Tower(keras.Model):
    """Features → L2-normalised embedding, with per-example dropout of the preference group.

    Content and preference encodings are concatenated (content first), then go through an MLP
    of `hidden_units` (ReLU), a linear layer to `output_dim`, and L2 normalisation. With a
    memory channel (`spec.memory` and `memory_codes`, shared with the other tower) the
    embedding is [sqrt(1 - w) * mlp, sqrt(w) * memory], w = `memory_weight`: still unit norm
    (or shorter, when the memory is empty), and a dot product of two such embeddings is
    (1 - w) * cos(mlp) + w * cos(memory). A dot product can then say "this anchor is in the
    user's history" through the shared rows, which an MLP over a bag of ids learns poorly.
    All weights
    are created in the constructor, so a tower built under `strategy.scope()` has its variables
    there, never in a replica's first step. Under a mixed policy the MLP computes in 16 bits;
    inputs are not autocast and the output is float32 (see the module doc).

    Args:
      spec: the tower's features.
      output_dim: D, the embedding size (equal for both towers of a model).
      hidden_units: sizes of the hidden layers.
      preference_dropout_rate: probability, per example and in training only, of zeroing the
        whole preference group. Kept values are not rescaled: zero must mean "no behaviour
        known", exactly as a cold user or anchor looks at inference.
      activation: activation of the hidden layers.
      seed: op-level seed of the dropout draw.
    """

    def __init__(self, spec: TowerSpec, output_dim: int = 64,
                 hidden_units: Sequence[int] = (128, 64), preference_dropout_rate: float = 0.0,
                 activation: str = "relu", seed: int | None = None,
                 memory_codes: MemoryCodes | None = None,
                 memory_weight: float = 0.0, memory_pooling: str = "normalised",
                 **kwargs) -> None:
        kwargs.setdefault("autocast", False)  # raw inputs reach the encoders unrounded
        super().__init__(**kwargs)
        if memory_pooling not in MEMORY_POOLINGS:
            raise ValueError(f"memory_pooling must be one of {MEMORY_POOLINGS}, "
                             f"got {memory_pooling!r}")
        self.memory_pooling = memory_pooling
        if (spec.memory is None) != (memory_codes is None):
            raise ValueError("a memory channel needs both spec.memory and memory_codes")
        if not 0.0 <= memory_weight <= 1.0:
            raise ValueError(f"memory_weight must be in [0, 1], got {memory_weight}")
        self.memory = spec.memory
        self.memory_codes = memory_codes
        self.memory_weight = float(memory_weight) if spec.memory else 0.0
        if not 0.0 <= preference_dropout_rate <= 1.0:
            raise ValueError(f"preference_dropout_rate must be in [0, 1], "
                             f"got {preference_dropout_rate}")
        self.spec = spec
        self.output_dim = int(output_dim)
        self.hidden_units = tuple(int(h) for h in hidden_units)
        self.preference_dropout_rate = float(preference_dropout_rate)
        self.seed = seed
        self.content_features = spec.group(CONTENT)
        self.preference_features = spec.group(PREFERENCE)
        self.encoders = {f.name: _encoder(f) for f in spec.features}

        width = sum(f.output_dim for f in spec.features)
        self.hidden = []
        # Built here, with names that keep variable paths readable across both towers.
        for i, units in enumerate(self.hidden_units):
            layer = keras.layers.Dense(units, activation=activation, name=f"{self.name}_hidden_{i}")
            layer.build((None, width))
            self.hidden.append(layer)
            width = units
        self.projection = keras.layers.Dense(self.output_dim, name=f"{self.name}_projection")
        self.projection.build((None, width))
        self.memory_gate = None  # a Dense layer whose kernel and bias _monotone_gate reads
        if memory_pooling == "learned" and spec.memory is not None and spec.memory.weights:
            # per history anchor: (log1p weight, share of the largest, 1 - rank) -> the logit
            # of its strength, through softplus kernels (`_monotone_gate`) from 0.31 each,
            # the bias from -3: strengths start near 0.1 to 0.5, where a free gate settled
            # (0.1 to 0.33 at demo scale); from 0 they began near 1.5 and the history buried
            # every other anchor for the first epoch (validation NDCG@10 0.358 against 0.414)
            self.memory_gate = keras.layers.Dense(
                1, kernel_initializer=keras.initializers.Constant(-1.0),
                bias_initializer=keras.initializers.Constant(-3.0),
                name=f"{self.name}_memory_gate")
            self.memory_gate.build((None, None, len(_GATE_INPUTS)))
        self.built = True

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.spec.names

    def input_signature(self) -> dict[str, tf.TensorSpec]:
        """The `tf.TensorSpec` of each input, e.g. for a serving `tf.function`."""
        specs = {}
        for f in self.spec.features:
            if isinstance(f, NumericFeature):
                shape = [None] if f.width == 1 else [None, f.width]
                specs[f.name] = tf.TensorSpec(shape, tf.float32, name=f.name)
            elif isinstance(f, CategoricalFeature):
                specs[f.name] = tf.TensorSpec([None], tf.int64, name=f.name)
            else:
                specs[f.name] = tf.TensorSpec([None, None], tf.int64, name=f.name)
        if self.memory is not None and self.memory.ids not in specs:
            specs[self.memory.ids] = tf.TensorSpec([None, None], tf.int64, name=self.memory.ids)
        if self.memory is not None and self.memory.weights:
            specs[self.memory.weights] = tf.TensorSpec([None, None], tf.float32,
                                                       name=self.memory.weights)
        return specs

    def call(self, features: dict[str, tf.Tensor], training: bool | tf.Tensor | None = None,
             preference_mask: tf.Tensor | None = None) -> tf.Tensor:
        """Embeds a batch.

        Args:
          features: tensors keyed by feature name (extra keys are ignored).
          training: True applies preference dropout; False / None never does.
          preference_mask: optional `[batch_size]` 1 = keep, 0 = zero the preference group,
            applied in every mode: serving uses it for users or anchors with no behaviour yet.

        Returns:
          `[batch_size, output_dim]` float32 with unit-norm rows.
        """
        wanted = [*self.feature_names, *(self.memory.columns if self.memory else ())]
        missing = [n for n in wanted if n not in features]
        if missing:
            raise KeyError(f"tower {self.name!r} is missing features {missing}; "
                           f"got {sorted(features)}")
        parts = [self.encoders[f.name](features[f.name]) for f in self.content_features]
        batch = tf.shape(features[self.feature_names[0]])[0]
        keep = self._keep(batch, training)
        if preference_mask is not None:
            keep = keep * tf.reshape(tf.cast(preference_mask, tf.float32), [-1, 1])
        if self.preference_features:
            preference = tf.concat(
                [self.encoders[f.name](features[f.name]) for f in self.preference_features],
                axis=1)
            parts.append(preference * keep)
        x = tf.concat(parts, axis=1)
        for layer in self.hidden:
            x = layer(x)  # Dense casts x to the policy's compute dtype
        # normalised in float32: a 16-bit sum of squares loses the unit norm cosines rely on
        out = tf.math.l2_normalize(tf.cast(self.projection(x), tf.float32), axis=-1)
        if self.memory is None:
            return out
        memory = self._memory(features, batch) * keep
        out = tf.concat([out * (1.0 - self.memory_weight) ** 0.5,
                         memory * self.memory_weight ** 0.5], axis=1)
        if self.memory_pooling == "max_scaled":
            # a long history sums to more than unit length: scaled back to unit norm, which
            # keeps the user's ranking and bounds the logits; shorter rows (a lone anchor
            # id, a cold user or anchor) stay as they are
            out = out / tf.maximum(tf.norm(out, axis=-1, keepdims=True), 1.0)
        return out

    def _memory(self, features: dict[str, tf.Tensor], batch: tf.Tensor) -> tf.Tensor:
        """`[B, memory_dim]` float32: the memory rows pooled as `memory_pooling` says."""
        ids = tf.reshape(tf.cast(features[self.memory.ids], tf.int64), [batch, -1])
        rows = self.memory_codes.rows  # the out-of-vocabulary row
        valid = tf.cast(ids > 0, tf.float32)
        weights = valid
        if self.memory.weights:
            weights = valid * tf.reshape(tf.cast(features[self.memory.weights], tf.float32),
                                         [batch, -1])
        ids = _in_vocab(ids, 1, rows)
        if self.memory_pooling == "normalised":
            # an empty memory stays zero
            return tf.math.l2_normalize(self.memory_codes.pool(ids, weights, unit=False),
                                        axis=-1)
        # "max_scaled" and "learned": each row a unit vector, weighted by the anchor's share
        # of the user's largest weight, so every history anchor counts as much as its weight
        # says whatever the history's length (an anchor's lone id: its own code); "learned"
        # feeds that share, the log weight and the rank to the gate, whose strength in
        # (0, LEARNED_MAX) weights the row instead: with near-orthogonal codes the dot
        # product with an anchor's code is then its strength, a rewatch score the loss fits
        share = tf.math.divide_no_nan(weights, tf.reduce_max(weights, axis=1, keepdims=True))
        if self.memory_gate is not None:
            # the history comes strongest first: 1 - rank grows with the weight, as the
            # other two inputs do
            top = 1.0 - tf.cumsum(valid, axis=1, exclusive=True) / tf.cast(tf.shape(ids)[1],
                                                                         tf.float32)
            x = tf.stack([tf.math.log1p(tf.maximum(weights, 0.0)), share, top], axis=-1)
            share = LEARNED_MAX * tf.sigmoid(self._monotone_gate(x)) * valid
        return self.memory_codes.pool(ids, share, unit=True)

    def _monotone_gate(self, x: tf.Tensor) -> tf.Tensor:
        """`[B, k]` logit of each history anchor's strength from its gate inputs `[B, k, 3]`:
        a linear layer with softplus (positive) kernels, so the strength grows with every
        input and a stronger history anchor never scores below a weaker one of the same
        user. Left free (two layers), the gate learned an order worse than the weights' own
        (demo scale, within-history AUC 0.659 against 0.699), since the in-batch softmax
        rarely sets one history anchor against another; the loss still sets the spacing."""
        kernel = tf.nn.softplus(tf.cast(self.memory_gate.kernel, tf.float32))
        return tf.tensordot(x, kernel, 1)[..., 0] + tf.cast(self.memory_gate.bias[0], tf.float32)

    def _keep(self, batch_size: tf.Tensor, training: bool | tf.Tensor | None) -> tf.Tensor:
        """`[batch_size, 1]` float: 0 where the preference group is dropped, else 1."""
        keep = tf.ones([batch_size, 1])
        if self.preference_dropout_rate == 0.0 or training is None or training is False:
            return keep
        # tf.random, not Python random: a fresh draw on every step of a tf.function.
        dropped = tf.random.uniform([batch_size, 1], seed=self.seed) < self.preference_dropout_rate
        if not isinstance(training, bool):  # a tensor flag, e.g. a tf.function argument
            dropped = dropped & tf.cast(training, tf.bool)
        return keep - tf.cast(dropped, tf.float32)


class TwoTowerModel(keras.Model):
    """A user tower and an anchor tower, kept as separate Keras models to export one by one.

    Args:
      user_spec, anchor_spec: the features of each tower.
      output_dim: D, the shared embedding size.
      hidden_units: hidden layer sizes of both towers.
      user_dropout_rate, anchor_dropout_rate: preference dropout rate of each tower.
      seed: op-level seed of the dropout draws (the anchor tower uses seed + 1).
      memory_rows, memory_dim, memory_weight, memory_trainable, memory_pooling: the memory
        channel (`Tower`): anchor rows, random code size, share of the score, trained codes.
      exact_rows: the anchor rows whose codes are one-hot (`MemoryCodes`), not random.
    """

    def __init__(self, user_spec: TowerSpec, anchor_spec: TowerSpec, output_dim: int = 64,
                 hidden_units: Sequence[int] = (128, 64), user_dropout_rate: float = 0.0,
                 anchor_dropout_rate: float = 0.0, seed: int | None = None,
                 memory_rows: int = 0, memory_dim: int = 32, memory_weight: float = 0.0,
                 memory_trainable: bool = True, memory_pooling: str = "normalised",
                 exact_rows: Sequence[int] = (), **kwargs) -> None:
        kwargs.setdefault("autocast", False)  # as Tower: inputs pass through unrounded
        super().__init__(**kwargs)
        shared = None
        if user_spec.memory is not None and anchor_spec.memory is not None:
            # rows 0 (padding) .. memory_rows (out of vocabulary), one table for both towers
            shared = MemoryCodes(memory_rows, exact_rows, memory_dim, memory_trainable, seed,
                                 name="memory_codes")
        elif user_spec.memory is not None or anchor_spec.memory is not None:
            raise ValueError("a memory channel needs a memory on both towers")
        self.user_tower = Tower(user_spec, output_dim, hidden_units, user_dropout_rate,
                                seed=seed, memory_codes=shared, memory_weight=memory_weight,
                                memory_pooling=memory_pooling, name="user_tower")
        self.anchor_tower = Tower(anchor_spec, output_dim, hidden_units, anchor_dropout_rate,
                                  seed=None if seed is None else seed + 1,
                                  memory_codes=shared, memory_weight=memory_weight,
                                  memory_pooling=memory_pooling, name="anchor_tower")
        self.built = True

    def call(self, features: dict[str, tf.Tensor],
             training: bool | tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
        """Embeds both sides of a batch of (user, anchor) rows.

        Args:
          features: one flat dict with the features of both towers; each tower reads only its
            own names, so a name both towers declare is read by both.
          training: passed to both towers.

        Returns:
          (user_emb, anchor_emb), each `[batch_size, output_dim]` with unit-norm rows.
        """
        user = {n: features[n] for n in self.user_tower.feature_names if n in features}
        anchor = {n: features[n] for n in self.anchor_tower.feature_names if n in features}
        return (self.user_tower(user, training=training),
                self.anchor_tower(anchor, training=training))
