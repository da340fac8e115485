"""train_flow: check -> load -> pad -> train -> evaluate -> register -> promote, with the model's
registry view and the run's report."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.states import State
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from flows.run_names import training_run_name
from flows.settings import NO_CREDENTIALS_SCHEMA, get_settings
from model_store import PromotionMode
from storage import UserError, refuse_credentials_in
from tasks.artifacts import flow_run_url
from tasks.failures import fail_run, show_user_errors_as_one_line
from tasks.text import DEFAULT_MAXLEN, DEFAULT_NUM_WORDS
from tasks.training.data import DataSource
from tasks.training.model import TrainingConfig
from tasks.training.recipes import RecipeName, fill_recipe
from tasks.training.tasks import (
    check_destination_task,
    evaluate_task,
    load_task,
    pad_task,
    promote_task,
    register_task,
    registry_view_task,
    report_task,
    train_task,
)

__all__ = ["RecipeChoice", "TrainParams", "TrainingData", "train_flow"]


class TrainingData(BaseModel):
    """Where the labeled reviews come from, and how many words and tokens of them are kept."""

    source: DataSource = Field(
        default="keras",
        description="keras: download the Keras IMDB set; npz: a local imdb.npz; "
        "parquet: labeled review Parquet (text, label)",
    )
    data_path: str | None = Field(
        json_schema_extra=NO_CREDENTIALS_SCHEMA,
        default=None,
        min_length=1,
        description="npz file, or Parquet folder/glob/file (a folder's files whose names start "
        "with train and test are its two splits)",
    )
    test_path: str | None = Field(
        json_schema_extra=NO_CREDENTIALS_SCHEMA,
        default=None,
        min_length=1,
        description="Parquet test split, if separate",
    )
    word_index_path: str | None = Field(
        json_schema_extra=NO_CREDENTIALS_SCHEMA,
        default=None,
        min_length=1,
        description="Keras imdb_word_index.json to use instead of building one",
    )
    num_words: int = Field(
        default=DEFAULT_NUM_WORDS, ge=4, le=1_000_000, description="Vocabulary size"
    )
    maxlen: int = Field(
        default=DEFAULT_MAXLEN, ge=1, le=10_000, description="Tokens kept per review"
    )

    @field_validator("data_path", "test_path", "word_index_path")
    @classmethod
    def _no_credentials(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else refuse_credentials_in(value, info.field_name)

    @model_validator(mode="after")
    def _data_path_needed(self) -> TrainingData:
        if self.source != "keras" and not self.data_path:
            raise ValueError(f"data_path is required when source is {self.source!r}")
        return self


class RecipeChoice(BaseModel):
    """The named recipe whose settings fill those left at the tutorial's defaults."""

    recipe: RecipeName = Field(
        default="tutorial",
        description="tutorial: the Keras tutorial's LSTM, every default below; best: the n-gram "
        "bag that scored best (review-scoring recipes lists its settings). A setting left at "
        "its default takes the recipe's value",
    )


# Fields in this order: the recipe's name, the data, the recipe's settings (TrainingConfig's,
# written once there), then these.
class TrainParams(TrainingConfig, TrainingData, RecipeChoice):
    """What to train on, the model recipe (the Keras tutorial's defaults), and where it goes."""

    promote: PromotionMode = Field(
        default="auto",
        description="auto: champion moves only if test accuracy is at least the champion's",
    )
    model_name: str | None = Field(
        default=None,
        min_length=1,
        description="Name in the model store; unset: the setting REVIEW_SCORING_MODEL_NAME",
    )
    model_store_root: str | None = Field(
        json_schema_extra=NO_CREDENTIALS_SCHEMA,
        default=None,
        min_length=1,
        description="Root of the model store; unset: the setting REVIEW_SCORING_MODEL_STORE_ROOT",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_the_recipe(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        return fill_recipe(
            values, {name: field.default for name, field in cls.model_fields.items()}
        )

    @field_validator("model_store_root")
    @classmethod
    def _no_credentials_in_the_store(cls, value: str | None) -> str | None:
        return None if value is None else refuse_credentials_in(value, "model_store_root")

    def training_config(self) -> TrainingConfig:
        """The recipe part of the parameters."""
        return TrainingConfig.model_validate(
            self.model_dump(include=set(TrainingConfig.model_fields))
        )


def train_run_name() -> str:
    """`train lstm on parquet imdb` (flows/run_names.py)."""
    from prefect.runtime import flow_run

    params = flow_run.parameters.get("params")
    if not isinstance(params, TrainParams):
        params = TrainParams.model_validate(params or {})
    return training_run_name(params)


@flow(name="train", flow_run_name=train_run_name, log_prints=True)
def train_flow(params: TrainParams = TrainParams()) -> dict[str, object] | State[Any]:
    """Train the review classifier and register it as a new model version.

    An expected failure (a bad name, an unwritable store, bad data) ends the run Failed with a
    message that says what and where, before any training; only bugs bring a traceback.
    """
    show_user_errors_as_one_line()
    settings = get_settings().resolve(
        model_name=params.model_name, model_store_root=params.model_store_root
    )
    model_name, store_root = settings.model_name, settings.model_store_root
    try:
        # A bad name or an unwritable store fails here, not after the training.
        check_destination_task(store_root, model_name)
        data = load_task(
            params.source,
            params.data_path,
            params.test_path,
            params.word_index_path,
            params.num_words,
            params.maxlen,
            params.seed,
        )
    except UserError as error:
        return fail_run(error)
    padded = pad_task(data)
    trained = train_task(padded, params.training_config(), params.num_words, params.maxlen)
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
    registry_view_task(store_root, registered, metrics, decision)
    report_task(registered, metrics, decision)
    get_run_logger().info(
        "%s v%d: test accuracy %.4f, AUC %.4f",
        model_name,
        registered.version,
        metrics.test_accuracy,
        metrics.test_auc,
    )
    return {
        "model_name": model_name,
        "version": registered.version,
        "path": registered.path,
        "recipe": params.recipe,
        "architecture": params.architecture,
        "epochs_run": len(trained.history.get("loss", [])),
        "best_epoch": trained.best_epoch,
        "training_seconds": round(trained.seconds, 1),
        "metrics": metrics.model_dump(exclude={"test_score_histogram"}),
        "promoted": decision.promote,
        "promotion_reason": decision.reason,
        "flow_run_url": flow_run_url(),
    }
