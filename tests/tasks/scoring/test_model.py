"""The compiled predict path: every architecture scores as plain Keras `predict` does."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from tasks.scoring.model import PREDICT_BLOCK_ROWS, compiled_predictor
from tasks.training import ARCHITECTURES, TrainingConfig, build_model

NUM_WORDS, MAXLEN = 60, 12


def token_ids(rows: int, seed: int = 0) -> np.ndarray:
    ids = np.random.default_rng(seed).integers(0, NUM_WORDS, size=(rows, MAXLEN), dtype=np.int32)
    ids[: rows // 2, : MAXLEN // 3] = 0  # pre-padding, as reviews shorter than maxlen have
    return ids


def tiny_model(architecture: str):
    config = TrainingConfig(
        architecture=architecture, embedding_dim=8, units=8, hash_buckets=64, seed=3
    )
    return build_model(config, num_words=NUM_WORDS, maxlen=MAXLEN)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_each_architecture_scores_as_keras_predict(architecture: str) -> None:
    model = tiny_model(architecture)
    ids = token_ids(70)  # a short block: padded to 128 rows, the padding cut off again
    expected = model.predict(ids, batch_size=1024, verbose=0).reshape(-1)
    scores = compiled_predictor(model)(ids)
    assert scores.dtype == np.float32 and scores.shape == (70,)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)


def test_full_blocks_and_a_tail_and_a_single_row_score_as_keras_predict() -> None:
    model = tiny_model("lstm")
    predict = compiled_predictor(model)
    ids = token_ids(PREDICT_BLOCK_ROWS + 5, seed=1)
    expected = model.predict(ids, batch_size=1024, verbose=0).reshape(-1)
    np.testing.assert_allclose(predict(ids), expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(predict(ids[7:8]), expected[7:8], rtol=0, atol=1e-5)
    assert predict(ids[:0]).shape == (0,)


def test_a_model_xla_cannot_compile_is_scored_without_it(caplog: pytest.LogCaptureFixture) -> None:
    import keras
    import tensorflow as tf

    class HostDouble(keras.layers.Layer):
        """Runs on the host through numpy: XLA has no kernel for it."""

        def call(self, inputs):
            doubled = tf.numpy_function(lambda values: values * 2, [inputs], tf.float32)
            return tf.ensure_shape(doubled, inputs.shape)

    model = keras.Sequential(
        [
            keras.Input((MAXLEN,), dtype="int32"),
            keras.layers.Embedding(NUM_WORDS, 4),
            keras.layers.GlobalAveragePooling1D(),
            HostDouble(),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name="host_double",
    )
    ids = token_ids(20)
    expected = model.predict(ids, verbose=0).reshape(-1)
    with caplog.at_level(logging.WARNING, logger="tasks.scoring.model"):
        predict = compiled_predictor(model)
        np.testing.assert_allclose(predict(ids), expected, rtol=0, atol=1e-5)
        np.testing.assert_allclose(predict(ids[:3]), expected[:3], rtol=0, atol=1e-5)
    warnings = [
        record.getMessage() for record in caplog.records if record.name == "tasks.scoring.model"
    ]
    assert len(warnings) == 1 and "host_double cannot be compiled by XLA" in warnings[0]


@pytest.mark.parametrize(
    ("architecture", "pooling", "folded"),
    [
        ("lstm", "last", True),
        ("bilstm", "last", True),
        ("lstm", "max", False),  # every step's output is pooled: not the last state alone
        ("gru", "last", False),
        ("cnn", "last", False),
    ],
)
def test_the_embedding_is_folded_into_plain_lstms_only(
    architecture: str, pooling: str, folded: bool
) -> None:
    from tasks.scoring.folding import folded_forward

    config = TrainingConfig(architecture=architecture, pooling=pooling, embedding_dim=8, units=8)
    model = build_model(config, num_words=NUM_WORDS, maxlen=MAXLEN)
    forward = folded_forward(model)
    assert (forward is not None) == folded
    if forward is not None:
        ids = token_ids(33, seed=5)
        expected = model.predict(ids, verbose=0).reshape(-1)
        np.testing.assert_allclose(np.asarray(forward(ids)).reshape(-1), expected, atol=1e-5)


@pytest.mark.parametrize(
    ("order", "weighting"),
    [(1, "binary"), (2, "binary"), (2, "count"), (2, "nb"), (3, "binary"), (3, "count")],
)
def test_the_ngram_bag_scores_from_numpy_features_as_keras_predict(
    order: int, weighting: str
) -> None:
    from tasks.layers import NgramBag
    from tasks.scoring.model import scoring_steps

    config = TrainingConfig(
        architecture="ngrams",
        units=8,
        hash_buckets=64,
        ngram_order=order,
        ngram_weighting=weighting,
        seed=3,
    )
    model = build_model(config, num_words=NUM_WORDS, maxlen=MAXLEN)
    ids = token_ids(70, seed=2)  # padding in front and zeros inside rows, words repeated
    if weighting == "nb":
        labels = np.random.default_rng(4).integers(0, 2, size=len(ids)).astype(np.float32)
        model.layers[0].fit_to_training_data(ids, labels)
    expected = model.predict(ids, verbose=0).reshape(-1)
    prepare, predict_prepared = scoring_steps(model)
    assert isinstance(model.layers[0], NgramBag) and prepare == model.layers[0].sparse_features
    scores = predict_prepared(prepare(ids))
    assert scores.dtype == np.float32 and scores.shape == (70,)
    np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-5)
    assert predict_prepared(prepare(ids[:0])).shape == (0,)
