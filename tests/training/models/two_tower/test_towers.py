"""Towers: unit-norm output, preference input dropout, OOV ids, gradients, export."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from training.models.two_tower.losses import CombinedLoss, InBatchSoftmaxLoss
from training.models.two_tower.towers import (
    CategoricalFeature,
    NumericEncoder,
    NumericFeature,
    SequenceEncoder,
    SequenceFeature,
    Tower,
    TowerSpec,
    TwoTowerModel,
)

SEEDS = [0, 1, 2]
USER = TowerSpec((
    NumericFeature("user_age"),
    CategoricalFeature("user_city", vocab_size=20, embedding_dim=4),
    NumericFeature("user_watch_seconds", group="preference", log1p=True),
    SequenceFeature("user_last_anchors", vocab_size=50, embedding_dim=8),
))
ANCHOR = TowerSpec((
    CategoricalFeature("anchor_category", vocab_size=6, embedding_dim=3),
    NumericFeature("anchor_fans", group="preference", width=2, log1p=True),
))

pytestmark = pytest.mark.engine


def user_features(rng: np.random.Generator, b: int) -> dict[str, tf.Tensor]:
    return {
        "user_age": tf.constant(rng.normal(size=b), tf.float32),
        "user_city": tf.constant(rng.integers(0, 20, b), tf.int64),
        "user_watch_seconds": tf.constant(rng.uniform(1, 1000, b), tf.float32),
        "user_last_anchors": tf.constant(rng.integers(1, 50, (b, 5)), tf.int64),
    }


def anchor_features(rng: np.random.Generator, b: int) -> dict[str, tf.Tensor]:
    return {
        "anchor_category": tf.constant(rng.integers(0, 6, b), tf.int64),
        "anchor_fans": tf.constant(rng.uniform(1, 1e5, (b, 2)), tf.float32),
    }


def zeroed_preference(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    # log1p(0) = 0 and an all-padding sequence pools to 0: the preference group encodes to zeros.
    b = features["user_age"].shape[0]
    return {**features, "user_watch_seconds": tf.zeros([b]),
            "user_last_anchors": tf.zeros([b, 5], tf.int64)}


@pytest.mark.parametrize("seed", SEEDS)
def test_rows_have_unit_norm(seed):
    rng = np.random.default_rng(seed)
    tf.random.set_seed(seed)
    model = TwoTowerModel(USER, ANCHOR, output_dim=8, hidden_units=(16,), user_dropout_rate=0.5,
                          anchor_dropout_rate=0.5)
    features = {**user_features(rng, 12), **anchor_features(rng, 12)}
    for training in (True, False):
        for emb in model(features, training=training):
            assert emb.shape == (12, 8)
            np.testing.assert_allclose(tf.norm(emb, axis=1), np.ones(12), rtol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_full_dropout_equals_zeroed_preference(seed):
    rng = np.random.default_rng(seed)
    tower = Tower(USER, output_dim=8, hidden_units=(16, 8), preference_dropout_rate=1.0)
    features = user_features(rng, 10)
    dropped = tower(features, training=True)
    np.testing.assert_allclose(dropped, tower(zeroed_preference(features)), atol=1e-6)
    np.testing.assert_allclose(
        dropped, tower(features, training=False, preference_mask=tf.zeros([10])), atol=1e-6)
    # Training output no longer depends on the preference values at all.
    other = {**user_features(rng, 10), "user_age": features["user_age"],
             "user_city": features["user_city"]}
    np.testing.assert_allclose(dropped, tower(other, training=True), atol=1e-6)


def test_inference_never_drops():
    rng = np.random.default_rng(0)
    tower = Tower(USER, output_dim=8, hidden_units=(16,), preference_dropout_rate=1.0)
    features = user_features(rng, 10)
    kept = tower(features, training=False)
    np.testing.assert_array_equal(kept, tower(features, training=False))
    np.testing.assert_array_equal(kept, tower(features))  # training=None is inference
    np.testing.assert_array_equal(kept, tf.function(lambda f: tower(f, training=False))(features))
    dropped = tower(zeroed_preference(features))
    assert np.all(np.abs(np.asarray(kept) - np.asarray(dropped)).max(axis=1) > 1e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_half_dropout_drops_about_half_the_examples(seed):
    rng = np.random.default_rng(seed)
    tf.random.set_seed(seed)
    n = 4000
    tower = Tower(USER, output_dim=8, hidden_units=(16,), preference_dropout_rate=0.5)
    features = user_features(rng, n)
    kept = np.asarray(tower(features, training=False))
    dropped = np.asarray(tower(zeroed_preference(features), training=False))
    step = tf.function(lambda f: tower(f, training=True))
    fractions, masks = [], []
    for _ in range(2):
        out = np.asarray(step(features))
        is_dropped = np.abs(out - dropped).max(axis=1) < 1e-5
        is_kept = np.abs(out - kept).max(axis=1) < 1e-5
        # Each example keeps or loses its whole preference group, nothing in between.
        assert np.all(is_dropped ^ is_kept)
        fractions.append(is_dropped.mean())
        masks.append(is_dropped)
    # Binomial(4000, 0.5): standard deviation of the fraction 0.008, so 0.04 is 5 sigma.
    assert all(abs(f - 0.5) < 0.04 for f in fractions), fractions
    assert not np.array_equal(*masks)  # a fresh draw on each step of the tf.function


def test_out_of_vocabulary_ids_share_one_bucket():
    tower = Tower(USER, output_dim=8, hidden_units=(16,))
    b = 4
    base = user_features(np.random.default_rng(0), 1)
    features = {name: tf.repeat(value, b, axis=0) for name, value in base.items()}
    features["user_city"] = tf.constant([-1, 20, 21, 10**12], tf.int64)
    features["user_last_anchors"] = tf.constant(
        [[-3, 0, 0, 0, 0], [50, 0, 0, 0, 0], [999, 0, 0, 0, 0], [10**12, 0, 0, 0, 0]], tf.int64)
    out = np.asarray(tower(features))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, np.repeat(out[:1], b, axis=0), atol=1e-6)


def test_sequence_mean_pool_skips_padding():
    encoder = SequenceEncoder(SequenceFeature("seq", vocab_size=10, embedding_dim=3))
    table = np.asarray(encoder.embedding.embeddings)  # row 10 is the OOV bucket
    ids = np.array([[3, 0, 5, 0], [0, 0, 0, 0], [7, 7, 12, 0], [0, 2, 0, 0]], np.int64)
    want = np.stack([
        (table[3] + table[5]) / 2,
        np.zeros(3),
        (2 * table[7] + table[10]) / 3,
        table[2],
    ])
    np.testing.assert_allclose(encoder(ids), want, rtol=1e-6)


def test_numeric_encoder():
    log_counts = NumericEncoder(NumericFeature("n", log1p=True))
    np.testing.assert_allclose(log_counts(np.array([0.0, 1.0, 99.0, -5.0], np.float32)),
                               [[0.0], [np.log(2)], [np.log(100)], [0.0]], rtol=1e-6)
    wide = NumericEncoder(NumericFeature("w", width=2))
    assert wide(np.ones((3, 2), np.float32)).shape == (3, 2)


def test_spec_validation():
    with pytest.raises(ValueError, match="unique"):
        TowerSpec((NumericFeature("x"), NumericFeature("x")))
    with pytest.raises(ValueError, match="group"):
        NumericFeature("x", group="behaviour")
    with pytest.raises(ValueError):
        TowerSpec(())
    with pytest.raises(KeyError, match="user_city"):
        Tower(USER)({"user_age": tf.zeros([2])})


def test_gradients_reach_every_variable():
    rng = np.random.default_rng(0)
    b = 16
    model = TwoTowerModel(USER, ANCHOR, output_dim=8, hidden_units=(16, 8),
                          user_dropout_rate=0.3, anchor_dropout_rate=0.3)
    loss_fn = CombinedLoss(1.0, 0.5, 0.5, softmax=InBatchSoftmaxLoss(3, margin=0.1, t=1.5))
    features = {**user_features(rng, b), **anchor_features(rng, b)}
    labels = tf.constant(rng.integers(0, 2, b), tf.float32)
    variables = model.trainable_variables + loss_fn.trainable_variables
    with tf.GradientTape() as tape:
        user_emb, anchor_emb = model(features, training=True)
        loss, _ = loss_fn(user_emb, anchor_emb, labels)
    grads = tape.gradient(loss, variables)
    assert len(variables) == 3 + 2 * 3 * 2 + 1  # embeddings, 3 dense per tower, pointwise bias
    for variable, grad in zip(variables, grads, strict=True):
        assert grad is not None, variable.path
        values = grad.values if isinstance(grad, tf.IndexedSlices) else grad
        assert np.all(np.isfinite(values)), variable.path


def test_towers_are_separate_models():
    model = TwoTowerModel(USER, ANCHOR, output_dim=8, hidden_units=(16,))
    user_vars = {id(v) for v in model.user_tower.trainable_variables}
    anchor_vars = {id(v) for v in model.anchor_tower.trainable_variables}
    assert user_vars and anchor_vars and not user_vars & anchor_vars
    # Variables exist from construction (under strategy.scope()), not from a first call.
    assert len(model.trainable_variables) == len(user_vars) + len(anchor_vars)
    rng = np.random.default_rng(0)
    features = {**user_features(rng, 3), **anchor_features(rng, 3)}
    user_emb, anchor_emb = model(features)
    np.testing.assert_allclose(user_emb, model.user_tower(user_features(
        np.random.default_rng(0), 3)), atol=1e-6)
    assert anchor_emb.shape == (3, 8)


def test_a_tower_exports_as_its_own_saved_model(tmp_path):
    tower = Tower(ANCHOR, output_dim=8, hidden_units=(16,), preference_dropout_rate=0.5)
    module = tf.Module()
    module.tower = tower
    module.serve = tf.function(lambda features: tower(features, training=False),
                               input_signature=[tower.input_signature()])
    tf.saved_model.save(module, str(tmp_path / "anchor_tower"))
    loaded = tf.saved_model.load(str(tmp_path / "anchor_tower"))
    features = anchor_features(np.random.default_rng(0), 5)
    np.testing.assert_allclose(loaded.serve(features), tower(features), atol=1e-6)


def test_training_step_under_tf_distribute():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = TwoTowerModel(USER, ANCHOR, output_dim=8, hidden_units=(16,),
                              user_dropout_rate=0.5, anchor_dropout_rate=0.5)
        loss_fn = CombinedLoss(1.0, 0.5, 0.5)
        optimizer = keras.optimizers.SGD(0.1)
    variables = model.trainable_variables + loss_fn.trainable_variables
    rng = np.random.default_rng(0)
    b = 8
    batch = {**user_features(rng, b), **anchor_features(rng, b),
             "label": tf.constant(rng.integers(0, 2, b), tf.float32)}

    @tf.function
    def train_step(batch):
        def replica_step(batch):
            with tf.GradientTape() as tape:
                user_emb, anchor_emb = model(batch, training=True)
                per_example, _ = loss_fn(user_emb, anchor_emb, batch["label"])
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=b)
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
            return loss

        losses = strategy.run(replica_step, args=(batch,))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    before = [np.array(v) for v in variables]
    losses = [float(train_step(batch)) for _ in range(2)]
    assert all(np.isfinite(losses))
    assert any(not np.allclose(old, np.array(v)) for old, v in zip(before, variables, strict=True))


def test_forward_and_loss_compile_with_xla():
    # No keras Hashing, no shuffle: ids, shifts and dropout all lower to XLA.
    model = TwoTowerModel(USER, ANCHOR, output_dim=8, hidden_units=(16,),
                          user_dropout_rate=0.5, anchor_dropout_rate=0.5)
    loss_fn = CombinedLoss(1.0, 0.5, 0.5, softmax=InBatchSoftmaxLoss(
        3, remove_accidental_hits=True, logq_correction=True))
    rng = np.random.default_rng(0)
    b = 8
    features = {**user_features(rng, b), **anchor_features(rng, b)}

    @tf.function(jit_compile=True)
    def step(features, labels, ids, log_q):
        user_emb, anchor_emb = model(features, training=True)
        return loss_fn(user_emb, anchor_emb, labels, anchor_ids=ids, anchor_log_q=log_q)[0]

    loss = step(features, tf.constant(rng.integers(0, 2, b), tf.float32),
                features["anchor_category"], tf.fill([b], -2.0))
    assert loss.shape == (b,) and np.all(np.isfinite(loss))


def memory_specs(width: int) -> tuple[TowerSpec, TowerSpec]:
    """USER with a `width`-anchor weighted history, ANCHOR with its id, both as memories."""
    from dataclasses import replace

    from training.models.two_tower.towers import Memory

    user = replace(USER, memory=Memory("user_history", "user_history_weights", width=width))
    anchor = TowerSpec((*ANCHOR.features,
                        CategoricalFeature("anchor_id", 50, 4, group="preference")),
                       Memory("anchor_id"))
    return user, anchor


def test_the_memory_channel_shares_anchor_rows_between_the_towers():
    user, anchor = memory_specs(3)
    model = TwoTowerModel(user, anchor, output_dim=8, hidden_units=(8,), memory_rows=50,
                          memory_dim=6, memory_weight=0.36, seed=0)
    assert model.user_tower.memory_codes is model.anchor_tower.memory_codes
    rng = np.random.default_rng(0)
    users = user_features(rng, 3)
    # user 0 watched anchor 7 only; user 1 watched 7 and 9 (weights 1:3); user 2 nothing
    users["user_history"] = tf.constant([[7, 0, 0], [7, 9, 0], [0, 0, 0]], tf.int64)
    users["user_history_weights"] = tf.constant([[2.0, 0, 0], [1.0, 3.0, 0], [0, 0, 0]])
    anchors = anchor_features(rng, 2)
    anchors["anchor_id"] = tf.constant([7, 9], tf.int64)
    u = model.user_tower(users, training=False).numpy()
    a = model.anchor_tower(anchors, training=False).numpy()
    memory_u, memory_a = u[:, 8:], a[:, 8:]
    # the memory part: sqrt(0.36) * the normalised weighted sum of the shared rows
    np.testing.assert_allclose(memory_u[0], memory_a[0], atol=1e-6)  # same single anchor
    np.testing.assert_allclose(memory_u[0] @ memory_a[0], 0.36, atol=1e-5)
    rows = model.user_tower.memory_codes.random.embeddings.numpy()
    mixed = rows[7] + 3 * rows[9]
    np.testing.assert_allclose(memory_u[1], 0.6 * mixed / np.linalg.norm(mixed), atol=1e-5)
    np.testing.assert_allclose(memory_u[2], 0.0)  # an empty history adds nothing
    np.testing.assert_allclose(np.linalg.norm(u[:2], axis=1), 1.0, atol=1e-5)
    cold = model.anchor_tower(anchors, training=False,
                              preference_mask=tf.constant([0.0, 1.0])).numpy()
    np.testing.assert_allclose(cold[0, 8:], 0.0)  # a cold anchor has no memory row
    with pytest.raises(ValueError, match="both towers"):
        TwoTowerModel(user, ANCHOR, memory_rows=50)


def test_max_scaled_memory_gives_every_history_anchor_its_weight_share():
    user, anchor = memory_specs(4)
    model = TwoTowerModel(user, anchor, output_dim=8, hidden_units=(8,), memory_rows=50,
                          memory_dim=512, memory_weight=0.5, seed=0,
                          memory_pooling="max_scaled")
    rng = np.random.default_rng(0)
    users = user_features(rng, 3)
    # user 0: anchors 7, 9, 11, 13 at weights 4:2:1:1; user 1: anchor 7 alone; user 2: none
    users["user_history"] = tf.constant([[7, 9, 11, 13], [7, 0, 0, 0], [0, 0, 0, 0]],
                                        tf.int64)
    users["user_history_weights"] = tf.constant([[4.0, 2, 1, 1], [5.0, 0, 0, 0], [0, 0, 0, 0]])
    anchors = anchor_features(rng, 5)
    anchors["anchor_id"] = tf.constant([7, 9, 11, 13, 20], tf.int64)
    u = model.user_tower(users, training=False).numpy()
    a = model.anchor_tower(anchors, training=False).numpy()
    rows = model.user_tower.memory_codes.random.embeddings.numpy()
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    # user 0, before the whole row is scaled back to unit norm: [sqrt(.5) mlp, sqrt(.5) m]
    # with m = 1 * row 7 + 0.5 * row 9 + 0.25 * (rows 11 and 13), each row a unit vector
    m = unit[7] + 0.5 * unit[9] + 0.25 * (unit[11] + unit[13])
    length = np.sqrt(0.5 + 0.5 * m @ m)
    np.testing.assert_allclose(u[0, 8:], np.sqrt(0.5) * m / length, atol=1e-5)
    # the memory scores are the weight shares, up to the crosstalk of near-orthogonal rows
    # (512 random dimensions: about 0.05) and the user's own positive scale
    scores = u[0, 8:] @ a[:, 8:].T * length / 0.5
    np.testing.assert_allclose(scores, [1.0, 0.5, 0.25, 0.25, 0.0], atol=0.15)
    assert scores[0] > scores[1] > max(scores[2], scores[3]) > scores[4]
    np.testing.assert_allclose(np.linalg.norm(u, axis=1), [1.0, 1.0, np.sqrt(0.5)], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="memory_pooling"):
        TwoTowerModel(user, anchor, memory_rows=50, memory_pooling="sum")


def gate_strengths(model: TwoTowerModel, weights: np.ndarray, width: int = 4) -> np.ndarray:
    """The strengths the user tower's gate gives a history with these weights (strongest
    first, `width` slots), recomputed from its layer: softplus kernel, sigmoid."""
    from training.models.two_tower.towers import LEARNED_MAX

    x = np.stack([np.log1p(weights), weights / weights.max(),
                  1 - np.arange(len(weights)) / width], axis=1)
    kernel, bias = model.user_tower.memory_gate.get_weights()
    return LEARNED_MAX / (1 + np.exp(-(x @ np.logaddexp(0, kernel) + bias)[:, 0]))


def embed_three_anchor_history(model: TwoTowerModel) -> tuple[np.ndarray, np.ndarray]:
    """(users, anchors) embedded: user 0 watched anchors 7, 9, 11 at weights 4:2:1, user 1
    nothing; the anchors 7, 9, 11 and 20."""
    rng = np.random.default_rng(0)
    users = user_features(rng, 2)
    users["user_history"] = tf.constant([[7, 9, 11, 0], [0, 0, 0, 0]], tf.int64)
    users["user_history_weights"] = tf.constant([[4.0, 2, 1, 0], [0, 0, 0, 0]])
    anchors = anchor_features(rng, 4)
    anchors["anchor_id"] = tf.constant([7, 9, 11, 20], tf.int64)
    return (model.user_tower(users, training=False).numpy(),
            model.anchor_tower(anchors, training=False).numpy())


def test_learned_memory_scores_each_history_anchor_by_its_learned_strength():
    user, anchor = memory_specs(4)
    model = TwoTowerModel(user, anchor, output_dim=8, hidden_units=(8,), memory_rows=50,
                          memory_dim=512, memory_weight=0.5, seed=0, memory_trainable=False,
                          memory_pooling="learned")
    assert model.user_tower.memory_gate is not None and model.anchor_tower.memory_gate is None
    u, a = embed_three_anchor_history(model)
    np.testing.assert_allclose(np.linalg.norm(a[:, 8:], axis=1), np.sqrt(0.5), atol=1e-5)
    # the strengths the gate gives the three history anchors, recomputed from its layers
    w = np.array([4.0, 2, 1])
    strength = gate_strengths(model, w)
    # the memory part of the score is the anchor's strength (512 random dimensions: about
    # 0.05 of crosstalk), scaled by the memory weight on both sides; none for anchor 20
    scores = u[0, 8:] @ a[:, 8:].T / 0.5
    np.testing.assert_allclose(scores, [*strength, 0.0], atol=0.15)
    np.testing.assert_allclose(u[1, 8:], 0.0)  # no history, no memory


@pytest.mark.parametrize("pooling", ["learned", "normalised"])
def test_exact_codes_score_each_history_anchor_exactly(pooling):
    user, anchor = memory_specs(4)
    # anchors 7 and 9 get one-hot codes, the other rows random codes of 512 dimensions
    model = TwoTowerModel(user, anchor, output_dim=8, hidden_units=(8,), memory_rows=50,
                          memory_dim=512, memory_weight=0.5, seed=0, memory_pooling=pooling,
                          exact_rows=[7, 9])
    u, a = embed_three_anchor_history(model)
    assert u.shape == (2, 8 + 2 + 512) and a.shape == (4, 8 + 2 + 512)
    w = np.array([4.0, 2, 1])
    if pooling == "learned":
        expected = gate_strengths(model, w)
    else:  # the unit-norm weighted sum of the raw codes (a random one: not unit length)
        random_row = model.user_tower.memory_codes.random.embeddings.numpy()[11]
        expected = w / np.linalg.norm([4.0, 2.0, np.linalg.norm(random_row)])
    scores = u[0, 8:] @ a[:, 8:].T / 0.5
    # the exact anchors' codes are orthogonal to every other code: their scores carry no
    # crosstalk at all; anchor 11 (random) gets its strength within ~0.05, 20 about nothing
    np.testing.assert_allclose(scores[:2], expected[:2], atol=1e-6)
    np.testing.assert_allclose(scores[2:], [expected[2], 0.0], atol=0.15)
    np.testing.assert_allclose(a[:2, 8:10] / 0.5 ** 0.5, np.eye(2), atol=1e-6)
    np.testing.assert_allclose(a[:2, 10:], 0.0)
    np.testing.assert_allclose(u[1, 8:], 0.0)


def test_every_row_gets_an_exact_code_when_the_vocabulary_fits():
    from training.models.two_tower.features import exact_code_rows

    log_q = np.log(np.array([0.5, 5, 1, 9, 1, 0.5]))  # padding, four anchors, unknown
    np.testing.assert_array_equal(exact_code_rows(log_q, 6), np.arange(6))
    np.testing.assert_array_equal(exact_code_rows(log_q, 2), [1, 3])  # the most rows
    np.testing.assert_array_equal(exact_code_rows(log_q, 3), [1, 2, 3])  # a tie: lower row
    np.testing.assert_array_equal(exact_code_rows(log_q, 0), [])
    user, anchor = memory_specs(2)
    model = TwoTowerModel(user, anchor, output_dim=8, hidden_units=(8,), memory_rows=50,
                          memory_dim=512, memory_weight=0.5, seed=0, exact_rows=range(51))
    assert model.user_tower.memory_codes.random is None
    assert model.user_tower.memory_codes.output_dim == 51


def test_a_stronger_history_anchor_never_scores_below_a_weaker_one():
    user, anchor = memory_specs(6)
    model = TwoTowerModel(user, anchor, output_dim=8, hidden_units=(8,), memory_rows=50,
                          memory_dim=8, memory_weight=0.5, seed=0, memory_pooling="learned",
                          exact_rows=range(51))
    rng = np.random.default_rng(1)
    gate = model.user_tower.memory_gate  # any kernel, negative entries included
    gate.set_weights([rng.normal(0, 3, w.shape) for w in gate.get_weights()])
    users = user_features(rng, 1)
    users["user_history"] = tf.constant([[3, 5, 8, 13, 21, 34]], tf.int64)
    weights = np.sort(rng.exponential(2.0, 6))[::-1]  # strongest first, as profiles hold
    users["user_history_weights"] = tf.constant([weights], tf.float32)
    memory = model.user_tower(users, training=False).numpy()[0, 8:]
    strengths = memory[[3, 5, 8, 13, 21, 34]] / 0.5 ** 0.5
    np.testing.assert_allclose(strengths, gate_strengths(model, weights, 6), rtol=1e-5)
    assert (np.diff(strengths) <= 1e-7).all(), strengths
