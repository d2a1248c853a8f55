"""The serving encoder: raw columns become tower inputs the same way in training and in the
SavedModel (vocabulary ids, nulls, id-list width, the preference mask)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from training.models.two_tower.encoder import RawFeatureEncoder
from training.models.two_tower.features import Vocabularies, anchor_log_q, raw_columns
from training.models.two_tower.towers import (
    PREFERENCE,
    CategoricalFeature,
    NumericFeature,
    SequenceFeature,
    TowerSpec,
)

pytestmark = pytest.mark.engine

VOCAB = Vocabularies({"user_city": ["c01", "c02", "c03"]}, categories=2,
                     anchor_ids=np.arange(1, 50), last_k=3)  # ids 1..49 are rows 1..49
SPEC = TowerSpec((
    CategoricalFeature("user_city", 3, 4),
    NumericFeature("user_sessions", PREFERENCE, log1p=True),
    NumericFeature("user_category_shares", PREFERENCE, width=2),
    SequenceFeature("user_last_anchors", 50, 4, PREFERENCE),
))


def _encode(raw):
    return RawFeatureEncoder(SPEC, VOCAB)({k: tf.constant(v) for k, v in raw.items()})


def test_the_encoder_maps_strings_nulls_lists_and_history():
    out, mask = _encode({
        "user_city": np.array([b"c02", b"zz", b""]),
        "user_sessions": np.array([3.0, np.nan, 1.0]),
        "user_category_shares": np.array([[0.5, 0.5], [np.nan, 1.0], [0.0, 0.0]]),
        "user_last_anchors": np.array([[7, 8, 9, 10, 11], [4, -1, -1, -1, -1], [-1] * 5],
                                      dtype=np.int64),
        "user_has_history": np.array([True, True, False]),
    })
    assert out["user_city"].numpy().tolist() == [1, -1, -1]  # unknown -> out-of-vocabulary
    assert out["user_sessions"].numpy().tolist() == [3.0, 0.0, 1.0]  # a null counts as 0
    assert out["user_category_shares"].numpy().tolist() == [[0.5, 0.5], [0.0, 1.0], [0, 0]]
    assert out["user_last_anchors"].numpy().tolist() == [[7, 8, 9], [4, 0, 0], [0, 0, 0]]
    assert mask.numpy().tolist() == [1.0, 1.0, 0.0]


def test_short_id_lists_are_padded_to_k():
    out, _ = _encode({"user_city": np.array([b"c01"]), "user_sessions": np.array([1.0]),
                      "user_category_shares": np.array([[1.0, 0.0]]),
                      "user_last_anchors": np.array([[5]], dtype=np.int64),
                      "user_has_history": np.array([True])})
    assert out["user_last_anchors"].numpy().tolist() == [[5, 0, 0]]


def test_anchor_ids_are_looked_up_never_used_as_indices():
    """Id 0 and an id of 10^12 are ordinary ids: each gets its own row, unknown ids share one."""
    vocab = Vocabularies({}, categories=1, anchor_ids=np.array([10**12, 0, 5, 5]), last_k=4)
    assert vocab.anchor_rows == 4  # padding row 0, three ids, then out-of-vocabulary
    assert vocab.anchor_index(np.array([0, 5, 10**12, 7])).tolist() == [1, 2, 3, 4]
    spec = TowerSpec((SequenceFeature("user_last_anchors", vocab.anchor_rows, 2, PREFERENCE),))
    encoder = RawFeatureEncoder(spec, vocab)
    out, _ = encoder({"user_last_anchors": tf.constant([[0, 10**12, 7, -1]], tf.int64),
                      "user_has_history": tf.constant([True])})
    assert out["user_last_anchors"].numpy().tolist() == [[1, 3, 4, 0]]


def test_raw_columns_add_the_history_flag_and_log_q_is_a_finite_share():
    assert raw_columns(SPEC)[-1] == "user_has_history"
    log_q = anchor_log_q(np.array([1, 1, 2, 3]), anchor_rows=4)
    assert log_q.shape == (5,) and np.isfinite(log_q).all()
    np.testing.assert_allclose(np.exp(log_q[[1, 2, 3]]), [0.5, 0.25, 0.25], rtol=1e-6)
    assert log_q[4] == pytest.approx(np.log(0.5 / 4))  # unseen: half a count
