"""Build and train the classifier: the tutorial's LSTM, its GRU and bidirectional variants, a
convolutional network, and a bag of n-grams computed inside the model from the padded ids."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tasks.training.data import PaddedData

if TYPE_CHECKING:
    import keras

__all__ = [
    "ARCHITECTURES",
    "Architecture",
    "NgramWeighting",
    "Pooling",
    "TrainedModel",
    "TrainingConfig",
    "build_model",
    "set_seed",
    "train_model",
]

# The one list of model shapes: a new one is its name here and its layers in _ENCODERS below
# (or, for a shape without the embedding, its own builder in _BUILDERS).
Architecture = Literal["lstm", "gru", "bilstm", "cnn", "ngrams"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)
# Trained through XLA: an epoch took half the time (lstm 10.3 s -> 5.2 s, ngrams 5.2 s -> 2.4 s
# on 10k reviews, 2 cores); gru was slower with it, bilstm and cnn no faster.
XLA_TRAINED_ARCHITECTURES = frozenset({"lstm", "ngrams"})
Pooling = Literal["last", "max"]
NgramWeighting = Literal["binary", "count", "nb"]


class TrainingConfig(BaseModel):
    """The model recipe: every default is the Keras tutorial's, every limit is checked here.

    Flow parameters (flows.training.TrainParams), the command line and the Prefect UI form are
    all drawn from these fields.
    """

    model_config = ConfigDict(frozen=True)

    architecture: Architecture = Field(
        default="lstm",
        description="lstm: the tutorial's LSTM; gru: a GRU instead; bilstm: a bidirectional LSTM; "
        "cnn: a 1-D convolution max-pooled over the review; ngrams: a bag of unigrams and hashed "
        "n-grams (no embedding) into one hidden Dense layer",
    )
    embedding_dim: int = Field(default=32, ge=1, le=1024, description="Size of each word vector")
    units: int = Field(
        default=32,
        ge=1,
        le=1024,
        description="Recurrent units (per direction for bilstm), convolution filters (cnn), "
        "or hidden Dense units (ngrams)",
    )
    pooling: Pooling = Field(
        default="last",
        description="last: the recurrent layer's final state (the tutorial); "
        "max: max-pool over every time step",
    )
    dropout_rate: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout on the recurrent layer's inputs; for cnn and ngrams, on the layer "
        "before the output",
    )
    kernel_size: int = Field(
        default=5, ge=1, le=64, description="cnn: tokens each convolution filter reads"
    )
    ngram_order: int = Field(
        default=2, ge=1, le=5, description="ngrams: longest n-gram counted (1: unigrams only)"
    )
    hash_buckets: int = Field(
        default=65_536,
        ge=1,
        le=4_194_304,
        description="ngrams: columns the n-grams of order 2 and up are hashed into",
    )
    ngram_weighting: NgramWeighting = Field(
        default="binary",
        description="ngrams: binary (each n-gram counted once per review), count (as often "
        "as it occurs) or nb (once, scaled by its naive-Bayes log-count ratio on the training "
        "split, as NBSVM does)",
    )
    epochs: int = Field(default=10, ge=1, le=1000, description="Passes over the training split")
    batch_size: int = Field(default=128, ge=1, le=65_536, description="Reviews per gradient step")
    validation_split: float = Field(
        default=0.2,
        gt=0.0,
        lt=1.0,
        description="Share of the training split held out to pick the best epoch",
    )
    learning_rate: float = Field(default=0.001, gt=0.0, le=1.0, description="Adam's step size")
    restore_best_weights: bool = Field(
        default=True, description="Keep the weights of the epoch with the best validation loss"
    )
    early_stopping_patience: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Stop after this many epochs without a better validation loss "
        "(default: run every epoch)",
    )
    seed: int = Field(
        default=42, ge=0, description="Seeds the data split, the weights and the validation shuffle"
    )


@dataclass
class TrainedModel:
    """The fitted model and its per-epoch history."""

    model: keras.Model
    history: dict[str, list[float]]
    best_epoch: int
    seconds: float


def set_seed(seed: int) -> None:
    """The project's one seeding function: Python, NumPy and the backend together."""
    import keras

    keras.utils.set_random_seed(seed)


def _recurrent(config: TrainingConfig, layer: str, bidirectional: bool = False) -> list[Any]:
    """The recurrent layer `keras.layers.<layer>` (LSTM, GRU), then the pooling the config asks
    for over its outputs."""
    import keras

    every_step = config.pooling == "max"
    recurrent = getattr(keras.layers, layer)(
        config.units, dropout=config.dropout_rate, return_sequences=every_step
    )
    if bidirectional:
        recurrent = keras.layers.Bidirectional(recurrent)
    return [recurrent, keras.layers.GlobalMaxPooling1D()] if every_step else [recurrent]


# The layers between the embedding and the output, for each Architecture.
_ENCODERS: dict[str, Callable[[TrainingConfig], list[Any]]] = {
    "lstm": lambda config: _recurrent(config, "LSTM"),
    "gru": lambda config: _recurrent(config, "GRU"),
    "bilstm": lambda config: _recurrent(config, "LSTM", bidirectional=True),
    "cnn": lambda config: _convolution(config),
}


def _convolution(config: TrainingConfig) -> list[Any]:
    """Conv1D(units, kernel_size, relu), max-pooled over the review, then dropout."""
    import keras

    return [
        keras.layers.Conv1D(config.units, config.kernel_size, activation="relu"),
        keras.layers.GlobalMaxPooling1D(),
        keras.layers.Dropout(config.dropout_rate),
    ]


def _embedded(config: TrainingConfig, num_words: int) -> list[Any]:
    """Embedding -> the architecture's layers from _ENCODERS."""
    import keras

    return [
        keras.layers.Embedding(num_words, config.embedding_dim),
        *_ENCODERS[config.architecture](config),
    ]


def _ngram_bag(config: TrainingConfig, num_words: int) -> list[Any]:
    """A Dense(units) layer over the bag of unigrams and hashed n-grams of the ids, computed
    sparsely (tasks.layers.NgramBag), then relu and dropout."""
    import keras

    from tasks.layers import NgramBag

    return [
        NgramBag(
            num_words,
            config.units,
            order=config.ngram_order,
            hash_buckets=config.hash_buckets,
            weighting=config.ngram_weighting,
        ),
        keras.layers.Activation("relu"),
        keras.layers.Dropout(config.dropout_rate),
    ]


# The layers between the input ids and the output, for each Architecture.
_BUILDERS: dict[str, Callable[[TrainingConfig, int], list[Any]]] = {
    **{architecture: _embedded for architecture in _ENCODERS},
    "ngrams": _ngram_bag,
}


def build_model(config: TrainingConfig, num_words: int, maxlen: int) -> keras.Model:
    """The architecture's layers (an embedding and an encoder, or the n-gram bag) ->
    Dense(1, sigmoid), compiled with adam and binary cross-entropy; input: `maxlen` token ids
    below `num_words`."""
    import keras

    model = keras.Sequential(
        [
            keras.Input(shape=(maxlen,), dtype="int32", name="token_ids"),
            *_BUILDERS[config.architecture](config, num_words),
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name=f"review_sentiment_{config.architecture}",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=config.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train_model(
    data: PaddedData,
    config: TrainingConfig,
    num_words: int,
    maxlen: int,
    progress: keras.callbacks.Callback | None = None,
) -> TrainedModel:
    """Fit on the train split, holding out the last validation_split for validation; stop
    after early_stopping_patience epochs without a better validation loss, if set."""
    import keras

    set_seed(config.seed)
    model = build_model(config, num_words=num_words, maxlen=maxlen)
    # Set here, not in compile(): a saved version then predicts as plain Keras does, without
    # an XLA compile for each new batch shape (scoring compiles its own fixed shapes).
    model.jit_compile = config.architecture in XLA_TRAINED_ARCHITECTURES
    callbacks: list[keras.callbacks.Callback] = []
    if config.restore_best_weights or config.early_stopping_patience is not None:
        # Without a patience, one equal to the epoch count: never stops, only keeps the best.
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=config.early_stopping_patience or config.epochs,
                restore_best_weights=config.restore_best_weights,
            )
        )
    if progress is not None:
        callbacks.append(progress)
    # Keras takes the validation rows from the end, so shuffle once with the seed first.
    order = np.random.RandomState(config.seed).permutation(len(data.x_train))
    # Layers that learn from the training rows before fitting (the n-gram bag's nb weights)
    # see the rows Keras trains on, never the validation rows.
    training_rows = order[: math.floor(len(order) * (1.0 - config.validation_split))]
    for layer in model.layers:
        if hasattr(layer, "fit_to_training_data"):
            layer.fit_to_training_data(data.x_train[training_rows], data.y_train[training_rows])
    started = time.perf_counter()
    fit = model.fit(
        data.x_train[order],
        data.y_train[order],
        epochs=config.epochs,
        batch_size=config.batch_size,
        validation_split=config.validation_split,
        callbacks=callbacks,
        verbose=0,
    )
    seconds = time.perf_counter() - started
    history = {key: [float(value) for value in values] for key, values in fit.history.items()}
    best_epoch = (
        int(np.argmin(history["val_loss"])) + 1
        if config.restore_best_weights
        else len(history["val_loss"])
    )
    return TrainedModel(model=model, history=history, best_epoch=best_epoch, seconds=seconds)
