"""Retrieval losses against NumPy loops and hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from training.models.two_tower.losses import (
    CombinedLoss,
    InBatchSoftmaxLoss,
    PairwiseLogisticLoss,
    PointwiseSigmoidLoss,
    rolled_indices,
    sample_shifts,
)

pytestmark = pytest.mark.engine

SEEDS = [0, 1, 2]


def unit_rows(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def np_in_batch_softmax(u, a, labels, shifts, margin=0.0, t=1.0, gamma=20.0, ids=None,
                        log_q=None):
    """The loss spelled out row by row; a masked negative is simply left out of the sum."""
    b = len(u)
    out = np.zeros(b)
    for i in range(b):
        if labels[i] <= 0.5:
            continue
        pos = float(u[i] @ a[i]) - margin
        logits = [gamma * pos - (0.0 if log_q is None else log_q[i])]
        for s in shifts:
            j = (i + s) % b
            if j == i or (ids is not None and ids[j] == ids[i]):
                continue
            neg = float(u[i] @ a[j])
            if neg > pos:
                neg = t * neg + t - 1
            logits.append(gamma * neg - (0.0 if log_q is None else log_q[j]))
        logits = np.array(logits)
        top = logits.max()
        out[i] = top + np.log(np.exp(logits - top).sum()) - logits[0]
    return out


# Tiny batch, B = 3, D = 2, one negative per row with shift 1 (row 0 -> 1, 1 -> 2, 2 -> 0):
#   u = [(1, 0), (0, 1), (1, 0)], a = [(1, 0), (0, 1), (0, 1)], labels = [1, 1, 0]
#   row 0: pos = 1, neg = u0.a1 = 0;  row 1: pos = 1, neg = u1.a2 = 1;  row 2: negative row.
U3 = np.array([[1, 0], [0, 1], [1, 0]], np.float32)
A3 = np.array([[1, 0], [0, 1], [0, 1]], np.float32)
L3 = np.array([1, 1, 0], np.float32)


def test_worked_example_plain_softmax():
    # gamma = 1: row 0 logits [1, 0] -> log(e + 1) - 1 = log(1 + e^-1) = 0.313262
    #            row 1 logits [1, 1] -> log(2e) - 1 = log 2 = 0.693147;  row 2 -> 0.
    loss = InBatchSoftmaxLoss(num_negatives=1, gamma=1.0)(U3, A3, L3, shifts=[1])
    np.testing.assert_allclose(loss, [math.log1p(math.exp(-1)), math.log(2), 0], rtol=1e-6)


def test_worked_example_margin_and_hard_negative():
    # margin 0.5, t = 2, gamma = 2:
    #   row 0: pos' = 0.5, neg 0 is not > 0.5 so stays 0: logits [1, 0] -> 0.313262
    #   row 1: pos' = 0.5, neg 1 > 0.5 is hard: 2 * 1 + 2 - 1 = 3: logits [1, 6]
    #          -> log(e^1 + e^6) - 1 = 5 + log(1 + e^-5) = 5.006715
    loss = InBatchSoftmaxLoss(num_negatives=1, margin=0.5, t=2.0, gamma=2.0)(
        U3, A3, L3, shifts=[1])
    np.testing.assert_allclose(
        loss, [math.log1p(math.exp(-1)), 5 + math.log1p(math.exp(-5)), 0], rtol=1e-6)


def test_worked_example_accidental_hit():
    # Anchor ids [7, 7, 9]: row 0's negative (row 1) is anchor 7 again, so it is masked and
    # row 0 has only its positive: loss 0. Row 1's negative is anchor 9: log 2 as before.
    loss_fn = InBatchSoftmaxLoss(num_negatives=1, gamma=1.0, remove_accidental_hits=True)
    loss = loss_fn(U3, A3, L3, anchor_ids=np.array([7, 7, 9], np.int64), shifts=[1])
    np.testing.assert_allclose(loss, [0, math.log(2), 0], atol=1e-7)


def test_worked_example_logq_after_scaling():
    # log q = log [0.1, 0.5, 0.25]; every candidate's log q is subtracted, after gamma:
    #   gamma 1, row 0: logits [1 + log 10, 0 + log 2] -> log(10e + 2) - 1 - log 10
    #            row 1: logits [1 + log 2, 1 + log 4]  -> log(2e + 4e) - 1 - log 2 = log 3
    #   gamma 2, row 0: logits [2 + log 10, log 2]     -> log(10e^2 + 2) - 2 - log 10
    log_q = np.log([0.1, 0.5, 0.25]).astype(np.float32)
    loss = InBatchSoftmaxLoss(num_negatives=1, gamma=1.0, logq_correction=True)(
        U3, A3, L3, anchor_log_q=log_q, shifts=[1])
    np.testing.assert_allclose(
        loss, [math.log(10 * math.e + 2) - 1 - math.log(10), math.log(3), 0], rtol=1e-6)
    loss = InBatchSoftmaxLoss(num_negatives=1, gamma=2.0, logq_correction=True)(
        U3, A3, L3, anchor_log_q=log_q, shifts=[1])
    np.testing.assert_allclose(loss[0], math.log(10 * math.e ** 2 + 2) - 2 - math.log(10),
                               rtol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_in_batch_softmax_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    b, d, k = 9, 6, 4
    u, a = unit_rows(rng, b, d), unit_rows(rng, b, d)
    labels = rng.integers(0, 2, b).astype(np.float32)
    shifts = rng.permutation(np.arange(1, b))[:k]
    for margin, t, gamma in [(0.0, 1.0, 20.0), (0.2, 1.5, 5.0), (-0.1, 3.0, 1.0)]:
        got = InBatchSoftmaxLoss(k, margin=margin, t=t, gamma=gamma)(u, a, labels, shifts=shifts)
        want = np_in_batch_softmax(u, a, labels, shifts, margin, t, gamma)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_accidental_hits_and_logq_match_numpy(seed):
    rng = np.random.default_rng(seed)
    b, d, k = 10, 5, 5
    u, a = unit_rows(rng, b, d), unit_rows(rng, b, d)
    labels = np.ones(b, np.float32)
    ids = rng.integers(0, 3, b).astype(np.int64)  # 3 anchors over 10 rows: many duplicates
    log_q = np.log(rng.uniform(0.01, 1.0, b)).astype(np.float32)
    shifts = rng.permutation(np.arange(1, b))[:k]
    loss_fn = InBatchSoftmaxLoss(k, margin=0.1, t=1.5, gamma=5.0, remove_accidental_hits=True,
                                 logq_correction=True)
    got = loss_fn(u, a, labels, anchor_ids=ids, anchor_log_q=log_q, shifts=shifts)
    want = np_in_batch_softmax(u, a, labels, shifts, 0.1, 1.5, 5.0, ids=ids, log_q=log_q)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # Removing hits changes exactly the rows with a duplicate among their negatives.
    kept = InBatchSoftmaxLoss(k, margin=0.1, t=1.5, gamma=5.0, logq_correction=True)(
        u, a, labels, anchor_log_q=log_q, shifts=shifts)
    has_hit = np.array([any(ids[(i + s) % b] == ids[i] for s in shifts) for i in range(b)])
    assert has_hit.any()
    np.testing.assert_allclose(np.asarray(got)[~has_hit], np.asarray(kept)[~has_hit], rtol=1e-6)
    assert np.all(np.asarray(got)[has_hit] < np.asarray(kept)[has_hit])


@pytest.mark.parametrize("seed", SEEDS)
def test_only_positive_rows_contribute(seed):
    rng = np.random.default_rng(seed)
    b, d = 8, 4
    u, a = unit_rows(rng, b, d), unit_rows(rng, b, d)
    labels = np.array([1, 0, 1, 0, 0, 1, 1, 0], np.float32)
    shifts = [3, 1, 6]
    loss_fn = InBatchSoftmaxLoss(3, margin=0.1, t=1.2)
    got = np.asarray(loss_fn(u, a, labels, shifts=shifts))
    every_row = np.asarray(loss_fn(u, a, np.ones(b, np.float32), shifts=shifts))
    assert np.all(got[labels == 0] == 0)
    np.testing.assert_allclose(got[labels == 1], every_row[labels == 1], rtol=1e-6)


def test_degenerate_batches_give_finite_zeros_and_gradients():
    rng = np.random.default_rng(0)
    loss_fn = InBatchSoftmaxLoss(4, margin=0.2, t=2.0, remove_accidental_hits=True,
                                 logq_correction=True)
    cases = {
        "single row": (1, np.ones(1, np.float32)),
        "no positive": (6, np.zeros(6, np.float32)),
        "all positive": (6, np.ones(6, np.float32)),
    }
    for name, (b, labels) in cases.items():
        u = tf.constant(unit_rows(rng, b, 3))
        a = tf.constant(unit_rows(rng, b, 3))
        with tf.GradientTape() as tape:
            tape.watch([u, a])
            loss = loss_fn(u, a, labels, anchor_ids=np.zeros(b, np.int64),
                           anchor_log_q=np.zeros(b, np.float32))
        grads = tape.gradient(loss, [u, a])
        assert loss.shape == (b,), name
        assert np.all(np.isfinite(loss)), name
        assert all(np.all(np.isfinite(g)) for g in grads), name
        if name != "all positive":
            # one row has no negative; no positive has nothing to learn from
            np.testing.assert_array_equal(loss, np.zeros(b), err_msg=name)


def test_missing_inputs_for_options_raise():
    u = unit_rows(np.random.default_rng(0), 3, 2)
    with pytest.raises(ValueError, match="anchor_ids"):
        InBatchSoftmaxLoss(1, remove_accidental_hits=True)(u, u, L3)
    with pytest.raises(ValueError, match="anchor_log_q"):
        InBatchSoftmaxLoss(1, logq_correction=True)(u, u, L3)
    with pytest.raises(ValueError):
        InBatchSoftmaxLoss(1, t=0.5)


def test_rolled_indices():
    np.testing.assert_array_equal(rolled_indices(4, [1, 3]), [[1, 3], [2, 0], [3, 1], [0, 2]])


def test_shifts_are_redrawn_inside_tf_function_and_stay_in_range():
    draw = tf.function(lambda b: sample_shifts(b, 5))
    draws = [draw(tf.constant(8)).numpy() for _ in range(20)]
    for shifts in draws:
        assert shifts.shape == (5,)
        assert shifts.min() >= 1 and shifts.max() <= 7
        assert len(set(shifts)) == 5  # distinct while K <= B - 1
    assert len({tuple(s) for s in draws}) > 1
    # More negatives than other rows: repeats, still in [1, B - 1], every shift used.
    over = draw(tf.constant(3)).numpy()
    assert set(over) == {1, 2}
    np.testing.assert_array_equal(draw(tf.constant(1)), np.ones(5))


def test_loss_changes_across_steps_of_one_tf_function():
    rng = np.random.default_rng(0)
    b = 8
    u, a = unit_rows(rng, b, 4), unit_rows(rng, b, 4)
    loss_fn = InBatchSoftmaxLoss(1)

    @tf.function(input_signature=[tf.TensorSpec([None, 4]), tf.TensorSpec([None, 4]),
                                  tf.TensorSpec([None])])
    def step(u, a, labels):
        return loss_fn(u, a, labels)

    losses = {tuple(np.round(step(u, a, np.ones(b, np.float32)).numpy(), 5)) for _ in range(10)}
    assert len(losses) > 1
    # The same trace serves another batch size, including B == 1.
    assert step(u[:3], a[:3], np.ones(3, np.float32)).shape == (3,)
    np.testing.assert_array_equal(step(u[:1], a[:1], np.ones(1, np.float32)), [0.0])


def np_pairwise(logits, labels):
    b = len(labels)
    per_row, pair_losses = np.zeros(b), []
    for i in range(b):
        for j in range(b):
            if labels[i] > labels[j]:
                loss = np.log1p(np.exp(-(logits[i] - logits[j])))
                per_row[i] += loss
                pair_losses.append(loss)
    return per_row * b / max(len(pair_losses), 1), pair_losses


@pytest.mark.parametrize("seed", SEEDS)
def test_pairwise_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    b, d = 7, 5
    u, a = unit_rows(rng, b, d), unit_rows(rng, b, d)
    for labels in [rng.integers(0, 2, b), rng.choice([0.0, 0.5, 1.0], b)]:
        labels = labels.astype(np.float32)
        got = PairwiseLogisticLoss(gamma=3.0)(u, a, labels)
        want, pairs = np_pairwise(3.0 * np.sum(u * a, axis=1), labels)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        if pairs:
            np.testing.assert_allclose(np.mean(got), np.mean(pairs), rtol=1e-5)
    logits = rng.normal(size=b).astype(np.float32)
    labels = rng.integers(0, 2, b).astype(np.float32)
    np.testing.assert_allclose(PairwiseLogisticLoss()(u, a, labels, logits=logits),
                               np_pairwise(logits, labels)[0], rtol=1e-5, atol=1e-6)


def test_pairwise_is_zero_without_pairs():
    u = unit_rows(np.random.default_rng(0), 4, 3)
    for labels in [np.ones(4), np.zeros(4), np.ones(1)]:
        n = len(labels)
        loss = PairwiseLogisticLoss()(u[:n], u[:n], labels.astype(np.float32))
        np.testing.assert_array_equal(loss, np.zeros(n))


@pytest.mark.parametrize("seed", SEEDS)
def test_pointwise_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    b, d = 6, 4
    u, a = unit_rows(rng, b, d), unit_rows(rng, b, d)
    labels = rng.integers(0, 2, b).astype(np.float32)
    x = 4.0 * np.sum(u * a, axis=1) - 0.7
    # sigmoid cross-entropy, stable form: max(x, 0) - x * z + log(1 + exp(-|x|))
    want = np.maximum(x, 0) - x * labels + np.log1p(np.exp(-np.abs(x)))
    got = PointwiseSigmoidLoss(scale=4.0, initial_bias=-0.7)(u, a, labels)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # A given bias replaces the layer's own.
    got = PointwiseSigmoidLoss(scale=4.0, initial_bias=3.0)(u, a, labels, bias=-0.7)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_pointwise_bias_is_trainable():
    u = unit_rows(np.random.default_rng(0), 4, 3)
    loss_fn = PointwiseSigmoidLoss()
    assert len(loss_fn.trainable_variables) == 1
    with tf.GradientTape() as tape:
        loss = loss_fn(u, u, np.array([1, 0, 1, 0], np.float32))
    (grad,) = tape.gradient(loss, loss_fn.trainable_variables)
    assert grad is not None and np.isfinite(grad)
    assert not PointwiseSigmoidLoss(trainable_bias=False).trainable_variables


@pytest.mark.parametrize("seed", SEEDS)
def test_combined_loss_is_the_weighted_sum(seed):
    rng = np.random.default_rng(seed)
    b, d = 8, 4
    u, a = unit_rows(rng, b, d), unit_rows(rng, b, d)
    labels = rng.integers(0, 2, b).astype(np.float32)
    shifts = [2, 5]
    softmax = InBatchSoftmaxLoss(2, margin=0.1)
    combined = CombinedLoss(0.5, 2.0, 0.25, softmax=softmax)
    loss, terms = combined(u, a, labels, shifts=shifts)
    assert set(terms) == {"softmax", "pairwise", "pointwise"}
    np.testing.assert_allclose(terms["softmax"], softmax(u, a, labels, shifts=shifts))
    np.testing.assert_allclose(terms["pairwise"], PairwiseLogisticLoss()(u, a, labels))
    np.testing.assert_allclose(terms["pointwise"], PointwiseSigmoidLoss()(u, a, labels))
    np.testing.assert_allclose(
        loss, 0.5 * terms["softmax"] + 2.0 * terms["pairwise"] + 0.25 * terms["pointwise"],
        rtol=1e-6)

    only_pairwise = CombinedLoss(0.0, 1.0, 0.0)
    loss, terms = only_pairwise(u, a, labels)
    assert set(terms) == {"pairwise"}
    np.testing.assert_allclose(loss, terms["pairwise"])
    assert not only_pairwise.trainable_variables  # the pointwise bias is not even built


def test_combined_loss_degenerate_batches_and_bad_weights():
    u = unit_rows(np.random.default_rng(0), 3, 2)
    combined = CombinedLoss(1.0, 1.0, 1.0)
    for labels in [np.ones(1), np.zeros(3), np.ones(3)]:
        n = len(labels)
        loss, terms = combined(u[:n], u[:n], labels.astype(np.float32))
        assert loss.shape == (n,) and np.all(np.isfinite(loss))
    with pytest.raises(ValueError):
        CombinedLoss(0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        CombinedLoss(1.0, -1.0)
