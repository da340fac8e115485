"""train_flow: load -> pad -> train -> evaluate -> register -> promote, with its UI report."""

from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger
from pydantic import BaseModel, Field, model_validator

from flows.settings import get_settings
from tasks.data import load_task, pad_task
from tasks.evaluation import evaluate_task, report_task
from tasks.training import TrainingConfig, promote_task, register_task, train_task

__all__ = ["TrainParams", "train_flow"]


class TrainParams(BaseModel):
    """What to train on, the model recipe (the Keras tutorial's defaults), and where it goes."""

    source: Literal["keras", "npz", "parquet"] = Field(
        default="keras",
        description="keras: download the Keras IMDB set; npz: a local imdb.npz; "
        "parquet: labeled review Parquet (text, label)",
    )
    data_path: str | None = Field(
        default=None,
        description="npz file, or Parquet folder/glob/file (a folder with train*.parquet and "
        "test*.parquet is split by name)",
    )
    test_path: str | None = Field(default=None, description="Parquet test split, if separate")
    word_index_path: str | None = Field(
        default=None, description="Keras imdb_word_index.json to use instead of building one"
    )
    num_words: int = Field(default=10_000, ge=4, le=1_000_000, description="Vocabulary size")
    maxlen: int = Field(default=250, ge=1, le=10_000, description="Tokens kept per review")
    architecture: Literal["lstm", "gru", "bilstm"] = Field(default="lstm")
    embedding_dim: int = Field(default=32, ge=1, le=1024)
    units: int = Field(default=32, ge=1, le=1024, description="Recurrent units")
    pooling: Literal["last", "max"] = Field(
        default="last",
        description="last: the recurrent layer's final state (the tutorial); "
        "max: max-pool over every time step",
    )
    dropout_rate: float = Field(default=0.0, ge=0.0, lt=1.0)
    epochs: int = Field(default=10, ge=1, le=1000)
    batch_size: int = Field(default=128, ge=1, le=65_536)
    validation_split: float = Field(default=0.2, gt=0.0, lt=1.0)
    learning_rate: float = Field(default=0.001, gt=0.0, le=1.0)
    restore_best_weights: bool = Field(
        default=True, description="Keep the weights of the epoch with the best validation loss"
    )
    seed: int = Field(default=42, ge=0)
    promote: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="auto: champion moves only if test accuracy is at least the champion's",
    )
    model_name: str | None = Field(default=None, description="Defaults to the settings' name")
    model_store_root: str | None = Field(default=None, description="Defaults to the settings'")

    @model_validator(mode="after")
    def _data_path_needed(self) -> TrainParams:
        if self.source != "keras" and not self.data_path:
            raise ValueError(f"data_path is required when source is {self.source!r}")
        return self

    def training_config(self) -> TrainingConfig:
        """The recipe part of the parameters."""
        return TrainingConfig(
            architecture=self.architecture,
            embedding_dim=self.embedding_dim,
            units=self.units,
            pooling=self.pooling,
            dropout_rate=self.dropout_rate,
            epochs=self.epochs,
            batch_size=self.batch_size,
            validation_split=self.validation_split,
            learning_rate=self.learning_rate,
            restore_best_weights=self.restore_best_weights,
            seed=self.seed,
        )


@flow(name="train", log_prints=True)
def train_flow(params: TrainParams | None = None) -> dict[str, object]:
    """Train the review classifier and register it as a new model version."""
    params = params or TrainParams()
    settings = get_settings()
    model_name = params.model_name or settings.model_name
    store_root = params.model_store_root or str(settings.model_store_root)
    config = params.training_config()

    data = load_task(
        params.source,
        params.data_path,
        params.test_path,
        params.word_index_path,
        params.num_words,
        params.maxlen,
        params.seed,
    )
    padded = pad_task(data)
    trained = train_task(padded, config, params.num_words, params.maxlen)
    metrics = evaluate_task(trained.model, padded)
    registered = register_task(
        store_root,
        model_name,
        trained,
        data.vocabulary,
        metrics,
        params.model_dump(),
        data.fingerprint,
    )
    decision = promote_task(store_root, registered, params.promote)
    report_task(
        model_name, registered.version, registered.path, metrics, decision.promote, decision.reason
    )
    get_run_logger().info(
        "%s v%d: test accuracy %.4f, AUC %.4f",
        model_name,
        registered.version,
        metrics["test_accuracy"],
        metrics["test_auc"],
    )
    return {
        "model_name": model_name,
        "version": registered.version,
        "path": registered.path,
        "metrics": {key: value for key, value in metrics.items() if key != "test_score_histogram"},
        "promoted": decision.promote,
        "promotion_reason": decision.reason,
    }
