"""build_model for each architecture, a short training run that learns, reproducibility, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tasks.data import load_parquet_reviews, pad_data
from tasks.evaluation import evaluate_model, plot_curves, roc_auc, score_histogram
from tasks.training import TrainingConfig, build_model, decide_promotion, train_model
from tests.synthetic import write_labeled_dataset


@pytest.mark.parametrize(
    ("architecture", "recurrent"), [("lstm", "LSTM"), ("gru", "GRU"), ("bilstm", "Bidirectional")]
)
def test_build_model_follows_the_tutorial(architecture: str, recurrent: str) -> None:
    model = build_model(architecture, num_words=100, maxlen=12, embedding_dim=6, units=5)
    layers = [type(layer).__name__ for layer in model.layers]
    assert layers == ["Embedding", recurrent, "Dense"]
    assert model.input_shape == (None, 12)
    assert model.layers[0].input_dim == 100 and model.layers[0].output_dim == 6
    assert model.layers[-1].units == 1
    assert model.loss == "binary_crossentropy"
    scores = model.predict(np.zeros((3, 12), dtype=np.int32), verbose=0)
    assert scores.shape == (3, 1) and np.all((scores > 0) & (scores < 1))


def test_max_pooling_reads_every_time_step() -> None:
    model = build_model("gru", num_words=100, maxlen=12, embedding_dim=6, units=5, pooling="max")
    layers = [type(layer).__name__ for layer in model.layers]
    assert layers == ["Embedding", "GRU", "GlobalMaxPooling1D", "Dense"]
    assert model.layers[1].return_sequences is True


def test_defaults_are_the_tutorials() -> None:
    config = TrainingConfig()
    assert (config.architecture, config.embedding_dim, config.units) == ("lstm", 32, 32)
    assert (config.epochs, config.batch_size, config.validation_split) == (10, 128, 0.2)
    model = build_model()
    assert model.input_shape == (None, 250)
    assert model.layers[0].input_dim == 10_000


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"architecture": "transformer"}, "architecture"),
        ({"validation_split": 1.0}, "validation_split"),
        ({"epochs": 0}, "epochs"),
        ({"pooling": "mean"}, "pooling"),
    ],
)
def test_impossible_config_is_named(change: dict, parameter: str) -> None:
    with pytest.raises(ValueError, match=parameter):
        TrainingConfig(**change)


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory):
    folder = write_labeled_dataset(tmp_path_factory.mktemp("imdb"), train_rows=400, test_rows=100)
    return pad_data(load_parquet_reviews(folder, num_words=60, maxlen=16))


TINY = TrainingConfig(embedding_dim=8, units=8, epochs=3, batch_size=32, learning_rate=0.01)


def test_training_learns_and_is_reproducible(small_data) -> None:
    first = train_model(small_data, TINY, num_words=60, maxlen=16)
    assert first.history["loss"][-1] < first.history["loss"][0]
    metrics = evaluate_model(first.model, small_data)
    assert metrics["test_accuracy"] > 0.85
    assert 0.0 <= metrics["test_loss"] < 0.5
    matrix = metrics["confusion_matrix"]
    assert sum(matrix.values()) == metrics["test_rows"] == 100
    assert abs(sum(metrics["test_score_histogram"]) - 1.0) < 1e-6
    second = train_model(small_data, TINY, num_words=60, maxlen=16)
    assert second.history == first.history
    for left, right in zip(first.model.get_weights(), second.model.get_weights(), strict=True):
        np.testing.assert_array_equal(left, right)


def test_best_epoch_weights_are_kept(small_data) -> None:
    trained = train_model(small_data, TINY, num_words=60, maxlen=16)
    best = int(np.argmin(trained.history["val_loss"]))
    assert trained.best_epoch == best + 1
    x_validation = small_data.x_train[np.random.RandomState(TINY.seed).permutation(400)][320:]
    y_validation = small_data.y_train[np.random.RandomState(TINY.seed).permutation(400)][320:]
    loss = trained.model.evaluate(x_validation, y_validation, verbose=0)[0]
    assert loss == pytest.approx(trained.history["val_loss"][best], rel=1e-3)


def test_roc_auc_against_hand_counts() -> None:
    # 3 positive x 2 negative pairs: 5 ordered right, one tie counted half -> 5.5 / 6.
    labels = np.array([1, 1, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.3, 0.1])
    assert roc_auc(labels, scores) == pytest.approx(5.5 / 6)
    assert roc_auc(labels, -scores) == pytest.approx(0.5 / 6)


def test_score_histogram_counts_one_in_the_last_bin() -> None:
    assert score_histogram(np.array([0.0, 0.05, 0.5, 1.0]), bins=4) == [0.5, 0.0, 0.25, 0.25]


def test_curves_are_a_png(tmp_path: Path) -> None:
    png = plot_curves({"loss": [0.7, 0.5], "val_loss": [0.6, 0.55], "accuracy": [0.5, 0.8]})
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


@pytest.mark.parametrize(
    ("mode", "new", "champion", "champion_accuracy", "promote"),
    [
        ("auto", 0.80, None, None, True),
        ("auto", 0.80, 2, 0.80, True),
        ("auto", 0.79, 2, 0.80, False),
        ("always", 0.10, 2, 0.90, True),
        ("never", 0.99, 2, 0.10, False),
    ],
)
def test_promotion_rule(mode, new, champion, champion_accuracy, promote) -> None:
    decision = decide_promotion(mode, new, champion, champion_accuracy)
    assert decision.promote is promote
    assert decision.reason
