"""build_model for each architecture, the n-gram bag, a short training run that learns,
reproducibility, early stopping, metrics."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from tasks.text import DEFAULT_MAXLEN, DEFAULT_NUM_WORDS
from tasks.training import (
    ARCHITECTURES,
    TrainedModel,
    TrainingConfig,
    build_model,
    train_model,
)
from tasks.training.data import PaddedData, load_parquet_reviews, pad_data
from tasks.training.evaluation import evaluate_model
from testkit.synthetic import write_labeled_dataset

# The layers each architecture puts between the input ids and the output.
LAYERS = {
    "lstm": ["Embedding", "LSTM"],
    "gru": ["Embedding", "GRU"],
    "bilstm": ["Embedding", "Bidirectional"],
    "cnn": ["Embedding", "Conv1D", "GlobalMaxPooling1D", "Dropout"],
    "ngrams": ["NgramBag", "Activation", "Dropout"],
}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_build_model_gives_each_architecture_its_layers(architecture: str) -> None:
    config = TrainingConfig(
        architecture=architecture, embedding_dim=6, units=5, kernel_size=3, hash_buckets=32
    )
    model = build_model(config, num_words=100, maxlen=12)
    layers = [type(layer).__name__ for layer in model.layers]
    assert layers == [*LAYERS[architecture], "Dense"]
    assert model.input_shape == (None, 12)
    if architecture == "ngrams":
        assert model.layers[0].kernel.shape == (100 + 32, 5)
    else:
        assert model.layers[0].input_dim == 100 and model.layers[0].output_dim == 6
    assert model.layers[-1].units == 1
    assert model.loss == "binary_crossentropy"
    scores = model.predict(np.zeros((3, 12), dtype=np.int32), verbose=0)
    assert scores.shape == (3, 1) and np.all((scores > 0) & (scores < 1))


def test_max_pooling_reads_every_time_step() -> None:
    config = TrainingConfig(architecture="gru", embedding_dim=6, units=5, pooling="max")
    model = build_model(config, num_words=100, maxlen=12)
    layers = [type(layer).__name__ for layer in model.layers]
    assert layers == ["Embedding", "GRU", "GlobalMaxPooling1D", "Dense"]
    assert model.layers[1].return_sequences is True


def test_defaults_are_the_tutorials() -> None:
    config = TrainingConfig()
    assert (config.architecture, config.embedding_dim, config.units) == ("lstm", 32, 32)
    assert (config.epochs, config.batch_size, config.validation_split) == (10, 128, 0.2)
    assert (config.learning_rate, config.pooling, config.dropout_rate) == (0.001, "last", 0.0)
    assert (DEFAULT_NUM_WORDS, DEFAULT_MAXLEN) == (10_000, 250)
    model = build_model(config, num_words=DEFAULT_NUM_WORDS, maxlen=DEFAULT_MAXLEN)
    assert model.input_shape == (None, 250)
    assert model.layers[0].input_dim == 10_000
    assert type(model.optimizer).__name__ == "Adam"


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"architecture": "transformer"}, "architecture"),
        ({"validation_split": 1.0}, "validation_split"),
        ({"epochs": 0}, "epochs"),
        ({"pooling": "mean"}, "pooling"),
        ({"dropout_rate": 1.0}, "dropout_rate"),
        ({"hash_buckets": 0}, "hash_buckets"),
        ({"ngram_order": 0}, "ngram_order"),
        ({"ngram_weighting": "tfidf"}, "ngram_weighting"),
        ({"early_stopping_patience": 0}, "early_stopping_patience"),
    ],
)
def test_impossible_config_is_named(change: dict, parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        TrainingConfig(**change)


TINY = TrainingConfig(embedding_dim=8, units=8, epochs=3, batch_size=32, learning_rate=0.01)
NUM_WORDS, MAXLEN, TRAIN_ROWS, TEST_ROWS = 60, 16, 400, 100


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> PaddedData:
    folder = write_labeled_dataset(
        tmp_path_factory.mktemp("imdb"), train_rows=TRAIN_ROWS, test_rows=TEST_ROWS
    )
    return pad_data(load_parquet_reviews(folder, num_words=NUM_WORDS, maxlen=MAXLEN))


@pytest.fixture(scope="module")
def trained(small_data: PaddedData) -> TrainedModel:
    """The one tiny training of this module; the tests below read it."""
    return train_model(small_data, TINY, num_words=NUM_WORDS, maxlen=MAXLEN)


def test_training_learns(trained: TrainedModel, small_data: PaddedData) -> None:
    assert trained.history["loss"][-1] < trained.history["loss"][0]
    metrics = evaluate_model(trained.model, small_data)
    assert metrics.test_accuracy > 0.85
    assert 0.0 <= metrics.test_loss < 0.5
    matrix = metrics.confusion_matrix
    assert sum(matrix.model_dump().values()) == metrics.test_rows == TEST_ROWS
    assert abs(sum(metrics.test_score_histogram) - 1.0) < 1e-6


def test_training_is_reproducible(trained: TrainedModel, small_data: PaddedData) -> None:
    again = train_model(small_data, TINY, num_words=NUM_WORDS, maxlen=MAXLEN)
    assert again.history == trained.history
    for left, right in zip(trained.model.get_weights(), again.model.get_weights(), strict=True):
        np.testing.assert_array_equal(left, right)


def test_best_epoch_weights_are_kept(trained: TrainedModel, small_data: PaddedData) -> None:
    best = int(np.argmin(trained.history["val_loss"]))
    assert trained.best_epoch == best + 1
    # The validation rows: the last validation_split of the seeded shuffle.
    order = np.random.RandomState(TINY.seed).permutation(TRAIN_ROWS)
    first_validation_row = round(TRAIN_ROWS * (1 - TINY.validation_split))
    x_validation = small_data.x_train[order][first_validation_row:]
    y_validation = small_data.y_train[order][first_validation_row:]
    loss = trained.model.evaluate(x_validation, y_validation, verbose=0)[0]
    assert loss == pytest.approx(trained.history["val_loss"][best], rel=1e-3)


def test_ngram_bag_counts_unigrams_and_hashed_bigrams_but_not_padding() -> None:
    from tasks.layers import NgramBag

    def bag(layer: NgramBag, ids: np.ndarray) -> np.ndarray:
        """With an identity kernel, the layer's output is the bag itself: column = feature."""
        layer.build(ids.shape)
        layer.kernel.assign(np.eye(*layer.kernel.shape, dtype="float32"))
        return np.asarray(layer(ids))

    ids = np.array([[0, 0, 1, 5, 5, 5], [0, 0, 0, 0, 0, 0]], dtype=np.int32)
    binary = bag(NgramBag(10, units=10 + 8, order=2, hash_buckets=8), ids)
    # Features 1 .. 9 are the unigram ids, 10 .. 17 the bigram buckets; 0 is padding.
    assert binary.shape == (2, 18)
    assert np.flatnonzero(binary[0, :10]).tolist() == [1, 5]  # padding left out
    assert 1 <= binary[0, 10:].sum() <= 2  # bigrams (1, 5) and (5, 5); none touching padding
    assert set(np.unique(binary[0]).tolist()) == {0.0, 1.0}
    assert binary[1].sum() == 0  # all padding: an empty bag
    counts = bag(NgramBag(10, units=10, order=1, weighting="count"), ids)
    assert counts[0].tolist() == [0, 1, 0, 0, 0, 3, 0, 0, 0, 0]


@pytest.mark.parametrize(("order", "weighting"), [(2, "binary"), (3, "count")])
def test_the_numpy_features_are_the_ones_the_graph_counts(order: int, weighting: str) -> None:
    from tasks.layers import NgramBag

    ids = np.random.default_rng(7).integers(0, 9, size=(40, 15)).astype(np.int32)
    ids[:10, :6] = 0
    layer = NgramBag(9, units=2, order=order, hash_buckets=31, weighting=weighting)
    features, counted = (np.asarray(part) for part in layer.features(ids))
    bag = layer.sparse_features(ids)
    assert bag.num_rows == 40
    for row in range(40):
        graph = sorted(features[row][counted[row]].tolist())
        kept = bag.rows == row
        # Each distinct feature once, with its count as weight (1 when binary).
        numpy = sorted(
            feature
            for feature, weight in zip(bag.features[kept], bag.weights[kept], strict=True)
            for _ in range(int(weight))
        )
        assert numpy == graph, f"row {row}"
        assert list(bag.features[kept]) == sorted(set(graph))


def test_nb_weighting_scales_each_feature_by_its_log_count_ratio() -> None:
    from tasks.layers import NgramBag

    # Word 5 only in positive reviews, 6 only in negative ones, 7 in one of each.
    ids = np.array([[0, 5, 7], [0, 0, 5], [0, 6, 7], [0, 0, 6]], dtype=np.int32)
    labels = np.array([1, 1, 0, 0], dtype=np.float32)
    layer = NgramBag(10, units=10, order=1, weighting="nb")
    layer.fit_to_training_data(ids, labels)
    # With one added to every count, both classes count 13 in all: 5 -> log(3/1), 7 -> log(2/2).
    scale = np.asarray(layer.feature_scale)
    np.testing.assert_allclose(scale[[5, 6, 7]], [np.log(3), -np.log(3), 0.0], atol=1e-6)
    layer.kernel.assign(np.eye(10, dtype="float32"))
    bag = np.asarray(layer(ids[:1]))[0]
    np.testing.assert_allclose(bag[[5, 6, 7]], [np.log(3), 0.0, 0.0], atol=1e-6)


@pytest.mark.slow
def test_nb_weights_come_from_the_training_rows_only(small_data: PaddedData) -> None:
    config = TrainingConfig(
        architecture="ngrams", ngram_weighting="nb", units=4, hash_buckets=64, epochs=1, seed=5
    )
    trained = train_model(small_data, config, num_words=NUM_WORDS, maxlen=MAXLEN)
    [bag] = [layer for layer in trained.model.layers if hasattr(layer, "feature_scale")]
    order = np.random.RandomState(5).permutation(len(small_data.x_train))
    training_rows = order[: math.floor(len(order) * (1.0 - config.validation_split))]
    from tasks.layers import NgramBag

    expected = NgramBag(NUM_WORDS, units=4, hash_buckets=64, weighting="nb")
    expected.fit_to_training_data(
        small_data.x_train[training_rows], small_data.y_train[training_rows]
    )
    np.testing.assert_allclose(bag.feature_scale, expected.feature_scale, atol=1e-6)


@pytest.mark.slow
def test_early_stopping_stops_after_patience_and_keeps_the_best(small_data: PaddedData) -> None:
    # Shuffled labels: whatever the model learns, the validation loss soon gets worse.
    noise = np.random.RandomState(0).permutation(small_data.y_train)
    config = TrainingConfig(
        architecture="ngrams",
        units=8,
        hash_buckets=64,
        epochs=30,
        learning_rate=0.05,
        early_stopping_patience=1,
    )
    stopped = train_model(dataclasses.replace(small_data, y_train=noise), config, NUM_WORDS, MAXLEN)
    epochs_run = len(stopped.history["val_loss"])
    assert epochs_run < config.epochs
    # It stopped one epoch after the best, whose weights it kept.
    assert stopped.best_epoch == epochs_run - 1
    assert stopped.best_epoch == int(np.argmin(stopped.history["val_loss"])) + 1


def test_no_patience_runs_every_epoch(trained: TrainedModel) -> None:
    assert TINY.early_stopping_patience is None
    assert len(trained.history["val_loss"]) == TINY.epochs
