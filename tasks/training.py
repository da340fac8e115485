"""Build and train the tutorial's classifier (LSTM, or its GRU and bidirectional variants)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from tasks.data import PaddedData
from tasks.evaluation import plot_curves
from tasks.text import Vocabulary

if TYPE_CHECKING:
    import keras

__all__ = [
    "ARCHITECTURES",
    "TrainedModel",
    "TrainingConfig",
    "build_model",
    "set_seed",
    "train_model",
    "train_task",
]

Architecture = Literal["lstm", "gru", "bilstm"]
ARCHITECTURES: tuple[str, ...] = ("lstm", "gru", "bilstm")
# last: the recurrent layer's final state (the tutorial); max: the maximum over every time step.
Pooling = Literal["last", "max"]
POOLINGS: tuple[str, ...] = ("last", "max")


@dataclass(frozen=True)
class TrainingConfig:
    """The tutorial's recipe; every default is the tutorial's."""

    architecture: Architecture = "lstm"
    embedding_dim: int = 32
    units: int = 32
    pooling: Pooling = "last"
    dropout_rate: float = 0.0
    epochs: int = 10
    batch_size: int = 128
    validation_split: float = 0.2
    learning_rate: float = 0.001
    restore_best_weights: bool = True
    seed: int = 42

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"architecture must be one of {', '.join(ARCHITECTURES)}, got {self.architecture!r}"
            )
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {self.pooling!r}")
        for name in ("embedding_dim", "units", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.validation_split < 1:
            raise ValueError(
                f"validation_split must be between 0 and 1 (exclusive), got {self.validation_split}"
            )
        if not 0 <= self.dropout_rate < 1:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")


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


def build_model(
    architecture: Architecture = "lstm",
    num_words: int = 10_000,
    maxlen: int = 250,
    embedding_dim: int = 32,
    units: int = 32,
    pooling: Pooling = "last",
    dropout_rate: float = 0.0,
    learning_rate: float = 0.001,
) -> keras.Model:
    """Embedding -> recurrent layer -> Dense(1, sigmoid), compiled with adam and cross-entropy."""
    import keras

    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    every_step = pooling == "max"
    if architecture == "lstm":
        recurrent: keras.layers.Layer = keras.layers.LSTM(
            units, dropout=dropout_rate, return_sequences=every_step
        )
    elif architecture == "gru":
        recurrent = keras.layers.GRU(units, dropout=dropout_rate, return_sequences=every_step)
    elif architecture == "bilstm":
        recurrent = keras.layers.Bidirectional(
            keras.layers.LSTM(units, dropout=dropout_rate, return_sequences=every_step)
        )
    else:
        raise ValueError(
            f"architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}"
        )
    pooled = [keras.layers.GlobalMaxPooling1D()] if every_step else []
    model = keras.Sequential(
        [
            keras.Input(shape=(maxlen,), dtype="int32", name="token_ids"),
            keras.layers.Embedding(num_words, embedding_dim),
            recurrent,
            *pooled,
            keras.layers.Dense(1, activation="sigmoid"),
        ],
        name=f"review_sentiment_{architecture}",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
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
    """Fit on the train split, holding out the last validation_split for validation."""
    import keras

    set_seed(config.seed)
    model = build_model(
        config.architecture,
        num_words=num_words,
        maxlen=maxlen,
        embedding_dim=config.embedding_dim,
        units=config.units,
        pooling=config.pooling,
        dropout_rate=config.dropout_rate,
        learning_rate=config.learning_rate,
    )
    callbacks: list[keras.callbacks.Callback] = []
    if config.restore_best_weights:
        # Patience equal to the epoch count: never stops early, only keeps the best epoch.
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.epochs, restore_best_weights=True
            )
        )
    if progress is not None:
        callbacks.append(progress)
    # Keras takes the validation rows from the end, so shuffle once with the seed first.
    order = np.random.RandomState(config.seed).permutation(len(data.x_train))
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


def epoch_logger(logger: Any, epochs: int) -> keras.callbacks.Callback:
    """A Keras callback that reports each epoch in the run log and a UI progress artifact."""
    import keras
    from prefect.artifacts import create_progress_artifact, update_progress_artifact

    progress_id = create_progress_artifact(0.0, description=f"training: 0 of {epochs} epochs")

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            shown = ", ".join(f"{key}={value:.4f}" for key, value in (logs or {}).items())
            logger.info("epoch %d/%d: %s", epoch + 1, epochs, shown)
            update_progress_artifact(
                progress_id,
                100.0 * (epoch + 1) / epochs,
                description=f"training: {epoch + 1} of {epochs} epochs",
            )

    return EpochLogger()


@task(name="train", cache_policy=NO_CACHE, persist_result=False)
def train_task(
    data: PaddedData, config: TrainingConfig, num_words: int, maxlen: int
) -> TrainedModel:
    """Train the classifier, logging every epoch."""
    logger = get_run_logger()
    logger.info("training %s on %d reviews", config.architecture, len(data.x_train))
    return train_model(
        data, config, num_words, maxlen, progress=epoch_logger(logger, config.epochs)
    )


PromotionMode = Literal["auto", "always", "never"]


@dataclass(frozen=True)
class PromotionDecision:
    """Whether the new version becomes champion, and why."""

    promote: bool
    reason: str
    previous_champion: int | None


def decide_promotion(
    mode: PromotionMode,
    new_accuracy: float,
    champion_version: int | None,
    champion_accuracy: float | None,
) -> PromotionDecision:
    """`auto` promotes when the new test accuracy is at least the champion's (or there is none)."""
    if mode == "always":
        return PromotionDecision(True, "promotion mode is 'always'", champion_version)
    if mode == "never":
        return PromotionDecision(False, "promotion mode is 'never'", champion_version)
    if mode != "auto":
        raise ValueError(f"promote must be 'auto', 'always' or 'never', got {mode!r}")
    if champion_version is None:
        return PromotionDecision(True, "there is no champion yet", None)
    if champion_accuracy is None:
        return PromotionDecision(
            True, f"champion v{champion_version} has no test accuracy to compare", champion_version
        )
    comparison = (
        f"test accuracy {new_accuracy:.4f} vs champion v{champion_version}'s "
        f"{champion_accuracy:.4f}"
    )
    if new_accuracy >= champion_accuracy:
        return PromotionDecision(True, f"{comparison}: at least as good", champion_version)
    return PromotionDecision(False, f"{comparison}: worse, champion kept", champion_version)


@dataclass(frozen=True)
class RegisteredVersion:
    """A small record of what was registered, passed on to promotion and the report."""

    model_name: str
    version: int
    path: str


def register_version(
    store_root: str | Path,
    model_name: str,
    trained: TrainedModel,
    vocabulary: Vocabulary,
    metrics: dict[str, Any],
    params: dict[str, Any],
    data_fingerprint: str,
    run_id: str | None,
    curves_png: bytes,
) -> RegisteredVersion:
    """Publish the model, its vocabulary, history and curves as a new version in the store."""
    from model_store import ModelStore

    history = {"epochs": trained.history, "best_epoch": trained.best_epoch}
    registered = ModelStore(store_root).register(
        model_name,
        trained.model,
        vocabulary.to_dict(),
        params={**params, "best_epoch": trained.best_epoch, "train_seconds": trained.seconds},
        metrics=metrics,
        data_fingerprint=data_fingerprint,
        run_id=run_id,
        extra_files={
            "history.json": json.dumps(history, indent=2).encode(),
            "curves.png": curves_png,
        },
    )
    return RegisteredVersion(model_name, registered.version, str(registered.path))


def promote_version(
    store_root: str | Path, registered: RegisteredVersion, mode: PromotionMode, alias: str
) -> PromotionDecision:
    """Apply the promotion rule against the current holder of `alias`."""
    from model_store import ModelStore, NotFoundError

    store = ModelStore(store_root)
    try:
        champion_version: int | None = store.resolve(registered.model_name, alias)
    except NotFoundError:
        champion_version = None
    champion_accuracy = None
    if champion_version is not None:
        metrics = store.manifest(registered.model_name, champion_version).get("metrics", {})
        champion_accuracy = metrics.get("test_accuracy")
    new_accuracy = store.manifest(registered.model_name, registered.version)["metrics"][
        "test_accuracy"
    ]
    decision = decide_promotion(mode, new_accuracy, champion_version, champion_accuracy)
    if decision.promote:
        store.set_alias(registered.model_name, alias, registered.version)
    return decision


@task(name="register", cache_policy=NO_CACHE, persist_result=False)
def register_task(
    store_root: str,
    model_name: str,
    trained: TrainedModel,
    vocabulary: Vocabulary,
    metrics: dict[str, Any],
    params: dict[str, Any],
    data_fingerprint: str,
) -> RegisteredVersion:
    """Register the trained model as a new version, tagged with this flow run's id."""
    from prefect.runtime import flow_run

    curves = plot_curves(trained.history, title=f"{model_name} ({params.get('architecture')})")
    registered = register_version(
        store_root,
        model_name,
        trained,
        vocabulary,
        metrics,
        params,
        data_fingerprint,
        run_id=str(flow_run.id) if flow_run.id else None,
        curves_png=curves,
    )
    get_run_logger().info(
        "registered %s v%d at %s", model_name, registered.version, registered.path
    )
    return registered


@task(name="promote", cache_policy=NO_CACHE)
def promote_task(
    store_root: str, registered: RegisteredVersion, mode: PromotionMode, alias: str = "champion"
) -> PromotionDecision:
    """Move the alias to the new version if the promotion rule says so; log the reason."""
    decision = promote_version(store_root, registered, mode, alias)
    verb = "promoted to" if decision.promote else "not promoted to"
    get_run_logger().info("v%d %s %s: %s", registered.version, verb, alias, decision.reason)
    return decision
