"""The training steps as Prefect tasks: thin wrappers that add names, retries, logging and the
artifacts the UI shows. Arrays move between these tasks in memory: never hashed for caching,
never persisted (NO_CACHE, persist_result=False)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from model_store import CHAMPION, PromotionDecision, PromotionMode
from tasks.artifacts import run_artifact
from tasks.contract import EvaluationMetrics
from tasks.failures import RETRY_ON_IO_HICCUPS
from tasks.text import Vocabulary
from tasks.training.data import DataSource, LabeledData, PaddedData, load_labeled_data, pad_data
from tasks.training.evaluation import evaluate_model, plot_curves, training_report_markdown
from tasks.training.model import TrainedModel, TrainingConfig, train_model
from tasks.training.registry import (
    RegisteredVersion,
    check_destination,
    promote_version,
    read_curves,
    register_version,
)

if TYPE_CHECKING:
    import keras

__all__ = [
    "check_destination_task",
    "evaluate_task",
    "load_task",
    "pad_task",
    "promote_task",
    "register_task",
    "report_task",
    "train_task",
]


@task(name="check-destination", cache_policy=NO_CACHE, **RETRY_ON_IO_HICCUPS)
def check_destination_task(store_root: str, model_name: str) -> None:
    """Before any data is loaded: a name the store takes, and a store root this run can write."""
    check_destination(store_root, model_name)


@task(name="load", cache_policy=NO_CACHE, persist_result=False, **RETRY_ON_IO_HICCUPS)
def load_task(
    source: DataSource,
    data_path: str | None,
    test_path: str | None,
    word_index_path: str | None,
    num_words: int,
    maxlen: int,
    seed: int,
) -> LabeledData:
    """Load labeled reviews as ids with their vocabulary; log where they came from."""
    data = load_labeled_data(source, data_path, test_path, word_index_path, num_words, maxlen, seed)
    get_run_logger().info(
        "loaded %s; vocabulary of %d words", data.description, len(data.vocabulary.word_index)
    )
    return data


@task(name="pad", cache_policy=NO_CACHE, persist_result=False)
def pad_task(data: LabeledData) -> PaddedData:
    """Pad and truncate to the vocabulary's maxlen."""
    return pad_data(data)


def epoch_logger(logger: Any, epochs: int) -> keras.callbacks.Callback:
    """A Keras callback that reports each epoch in the run log and a UI progress artifact
    (key `training-progress`, as the scoring run's is `scoring-progress`)."""
    import keras
    from prefect.artifacts import update_progress_artifact

    progress_id = run_artifact(
        "progress", "training-progress", 0.0, f"training: 0 of {epochs} epochs"
    )

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


@task(name="evaluate", cache_policy=NO_CACHE, persist_result=False)
def evaluate_task(model: keras.Model, data: PaddedData) -> EvaluationMetrics:
    """Score the test split and compute its metrics."""
    return evaluate_model(model, data)


@task(name="register", cache_policy=NO_CACHE, persist_result=False, **RETRY_ON_IO_HICCUPS)
def register_task(
    store_root: str,
    model_name: str,
    trained: TrainedModel,
    vocabulary: Vocabulary,
    metrics: EvaluationMetrics,
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


@task(name="promote", cache_policy=NO_CACHE, **RETRY_ON_IO_HICCUPS)
def promote_task(
    store_root: str, registered: RegisteredVersion, mode: PromotionMode, alias: str = CHAMPION
) -> PromotionDecision:
    """Move the alias to the new version if the promotion rule says so; log the reason."""
    decision = promote_version(store_root, registered, mode, alias)
    verb = "promoted to" if decision.promote else "not promoted to"
    get_run_logger().info("v%d %s %s: %s", registered.version, verb, alias, decision.reason)
    return decision


@task(name="registry-view", cache_policy=NO_CACHE)
def registry_view_task(
    store_root: str,
    registered: RegisteredVersion,
    metrics: EvaluationMetrics,
    decision: PromotionDecision,
    alias: str = CHAMPION,
) -> None:
    """Add this run's registration and promotion decision to the model's registry view
    (tasks/registry_view.py). A failure is logged: the version is registered either way."""
    from prefect.runtime import flow_run

    from tasks.registry_view import publish_registry, registry_key, training_changes

    changes = training_changes(
        registered.model_name,
        registered.version,
        metrics.test_accuracy,
        decision.promote,
        decision.reason,
        decision.previous_champion,
        by=f"training run {flow_run.name}",
        alias=alias,
    )
    try:
        description = publish_registry(store_root, registered.model_name, changes)
    except Exception as error:  # the version is registered: the view is not worth failing it
        get_run_logger().warning("the registry view was not updated: %s", error)
        return
    get_run_logger().info("registry view %s: %s", registry_key(registered.model_name), description)


@task(name="report", cache_policy=NO_CACHE, **RETRY_ON_IO_HICCUPS)
def report_task(
    registered: RegisteredVersion,
    metrics: EvaluationMetrics,
    decision: PromotionDecision,
    alias: str = CHAMPION,
) -> None:
    """Publish the metrics table and the version/promotion markdown, with the curves stored in
    the version, as artifacts of the run."""
    model_name, version = registered.model_name, registered.version
    outcome = "promoted" if decision.promote else "not promoted"
    key = model_name.lower().replace("_", "-").replace(".", "-")
    run_artifact(
        "table",
        f"{key}-metrics",
        [{"metric": name, "value": value} for name, value in metrics.headline().items()],
        f"Test metrics of {model_name} v{version}",
    )
    run_artifact(
        "markdown",
        f"{key}-training",
        training_report_markdown(
            model_name,
            version,
            registered.path,
            metrics,
            decision.promote,
            decision.reason,
            alias,
            read_curves(registered),
        ),
        f"{model_name} v{version}: {outcome}",
    )
