"""Behaviour of a trained model (Made-With-ML's model tests): minimum functionality, invariance,
direction (testkit/behaviour.py), here on a small n-gram model trained on the synthetic reviews."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tasks.training import TrainedModel, TrainingConfig, register_version, train_model
from tasks.training.data import LabeledData, load_parquet_reviews, pad_data
from tasks.training.evaluation import evaluate_model
from testkit.behaviour import (
    DIRECTION_TEXTS,
    PLAINLY_NEGATIVE,
    PLAINLY_POSITIVE,
    behaviour_failures,
    scorer,
)
from testkit.synthetic import write_labeled_dataset

SMALL_NGRAMS = TrainingConfig(
    architecture="ngrams",
    ngram_weighting="nb",
    units=8,
    hash_buckets=512,
    dropout_rate=0.2,
    epochs=8,
    early_stopping_patience=2,
    batch_size=32,
    learning_rate=0.01,
)


@pytest.fixture(scope="module")
def labeled(tmp_path_factory: pytest.TempPathFactory) -> LabeledData:
    folder = write_labeled_dataset(tmp_path_factory.mktemp("imdb"), train_rows=600, test_rows=100)
    return load_parquet_reviews(folder, num_words=60, maxlen=24)


@pytest.fixture(scope="module")
def trained(labeled: LabeledData) -> TrainedModel:
    return train_model(pad_data(labeled), SMALL_NGRAMS, num_words=60, maxlen=24)


def test_plainly_positive_and_negative_reviews_get_their_labels(
    trained: TrainedModel, labeled: LabeledData
) -> None:
    score = scorer(trained.model, labeled.vocabulary)
    assert np.all(score(PLAINLY_POSITIVE) > 0.8)
    assert np.all(score(PLAINLY_NEGATIVE) < 0.2)


def test_a_model_that_behaves_passes_every_check(
    trained: TrainedModel, labeled: LabeledData
) -> None:
    assert behaviour_failures(scorer(trained.model, labeled.vocabulary)) == []


def test_the_checks_catch_a_model_that_reads_nothing() -> None:
    def constant(texts: Sequence[str]) -> np.ndarray:
        return np.full(len(texts), 0.7)

    failures = behaviour_failures(constant)
    assert sum(line.startswith("minimum:") for line in failures) == len(PLAINLY_NEGATIVE)
    assert sum(line.startswith("direction:") for line in failures) == len(DIRECTION_TEXTS)


def test_ngram_model_registers_and_loads_in_safe_mode(
    trained: TrainedModel, labeled: LabeledData, tmp_path: Path
) -> None:
    from model_store import ModelStore

    registered = register_version(
        tmp_path,
        "imdb-sentiment",
        trained,
        labeled.vocabulary,
        metrics=evaluate_model(trained.model, pad_data(labeled)),
        params=SMALL_NGRAMS.model_dump(),
        data_fingerprint="synthetic",
        run_id=None,
        curves_png=b"",
    )
    store = ModelStore(tmp_path)
    loaded = store.load("imdb-sentiment", registered.version)
    assert type(loaded.model.layers[0]).__name__ == "NgramBag"
    texts = [*PLAINLY_POSITIVE, *PLAINLY_NEGATIVE]
    np.testing.assert_allclose(
        scorer(loaded.model, labeled.vocabulary)(texts),
        scorer(trained.model, labeled.vocabulary)(texts),
        rtol=1e-6,
        atol=1e-7,  # training predicts through XLA, the loaded version through plain Keras
    )
    params = store.manifest("imdb-sentiment", registered.version)["params"]
    assert params["architecture"] == "ngrams" and params["hash_buckets"] == 512
    assert params["ngram_weighting"] == "nb"
    np.testing.assert_array_equal(
        loaded.model.layers[0].feature_scale, trained.model.layers[0].feature_scale
    )
    assert params["epochs_run"] == len(trained.history["loss"])
    assert store.verify("imdb-sentiment", registered.version) is None
    # Scoring loads the version and takes the n-gram bag's numpy path: the same scores.
    from tasks.scoring import encode_for_model, load_scoring_model, resolve_model

    scoring_model = load_scoring_model(
        resolve_model(str(tmp_path), "imdb-sentiment", str(registered.version))
    )
    np.testing.assert_allclose(
        scoring_model.predict(encode_for_model(pa.array(texts), scoring_model)),
        scorer(trained.model, labeled.vocabulary)(texts),
        rtol=1e-6,
        atol=1e-7,
    )
