"""Test-split metrics, the confusion matrix, the per-epoch curves as a PNG, and the report the
Prefect UI shows of a training run. No Prefect here: tasks/training/tasks.py publishes it."""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import numpy as np

from tasks.contract import (
    POSITIVE_THRESHOLD,
    ConfusionMatrix,
    EvaluationMetrics,
    score_histogram,
)
from tasks.registry_view import registry_key
from tasks.training.data import PaddedData

if TYPE_CHECKING:
    import keras
    from matplotlib.figure import Figure

__all__ = ["curves_figure", "evaluate_model", "plot_curves", "roc_auc", "training_report_markdown"]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Exact ROC AUC: the Mann-Whitney statistic, with ties counted half."""
    labels = np.asarray(labels).astype(bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("ROC AUC needs both classes in the labels")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(scores), dtype=np.float64)
    # Average ranks over ties so equal scores count half.
    _, first_index, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average_rank = first_index + (counts + 1) / 2.0
    ranks[order] = np.repeat(average_rank, counts)
    rank_sum = ranks[labels].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def evaluate_model(
    model: keras.Model,
    data: PaddedData,
    batch_size: int = 1024,
    threshold: float = POSITIVE_THRESHOLD,
) -> EvaluationMetrics:
    """Loss, accuracy, ROC AUC, confusion matrix and score distribution on the test split."""
    scores = model.predict(data.x_test, batch_size=batch_size, verbose=0).reshape(-1)
    labels = data.y_test.astype(np.int64)
    predicted = (scores >= threshold).astype(np.int64)
    clipped = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    loss = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    return EvaluationMetrics(
        test_loss=round(float(loss), 6),
        test_accuracy=round(float((predicted == labels).mean()), 6),
        test_auc=round(roc_auc(labels, scores), 6),
        test_rows=len(labels),
        confusion_matrix=ConfusionMatrix(
            true_negative=int(((predicted == 0) & (labels == 0)).sum()),
            false_positive=int(((predicted == 1) & (labels == 0)).sum()),
            false_negative=int(((predicted == 0) & (labels == 1)).sum()),
            true_positive=int(((predicted == 1) & (labels == 1)).sum()),
        ),
        test_positive_rate=round(float(predicted.mean()), 6),
        test_score_histogram=score_histogram(scores),
        training_text=data.training_text,
    )


def curves_figure(history: dict[str, list[float]], title: str = "") -> Figure:
    """Accuracy and loss per epoch, train against validation; epochs are whole on the x axis."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    from matplotlib import pyplot
    from matplotlib.ticker import MaxNLocator

    figure, (accuracy_axis, loss_axis) = pyplot.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for axis, metric in ((accuracy_axis, "accuracy"), (loss_axis, "loss")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                axis.plot(epochs, history[key], marker="o", label=label)
        axis.set_title(metric)
        axis.set_xlabel("epoch")
        # Matplotlib would tick a 2-epoch run at 1.0, 1.2, ...: there is no epoch 1.2.
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend()
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_curves(history: dict[str, list[float]], title: str = "") -> bytes:
    """curves_figure as PNG bytes."""
    from matplotlib import pyplot

    figure = curves_figure(history, title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    pyplot.close(figure)
    return buffer.getvalue()


def training_report_markdown(
    model_name: str,
    version: int,
    version_path: str,
    metrics: EvaluationMetrics,
    promoted: bool,
    reason: str,
    alias: str,
    curves_png: bytes | None,
) -> str:
    """The markdown shown in the Prefect UI: the new version, the promotion decision, the
    curves stored with the version (local or in object storage)."""
    matrix = metrics.confusion_matrix
    curves = ""
    if curves_png:
        encoded = base64.b64encode(curves_png).decode()
        curves = f"\n![accuracy and loss per epoch](data:image/png;base64,{encoded})\n"
    decision = f"**promoted to `{alias}`**" if promoted else f"**not promoted** to `{alias}`"
    return (
        f"# {model_name} v{version}\n\n"
        f"Stored at `{version_path}`; {decision} by this run: {reason}. Which version is "
        f"`{alias}` now (after later trainings, promotions or rollbacks) is in the artifact "
        f"`{registry_key(model_name)}`.\n\n"
        f"| test accuracy | ROC AUC | loss | rows |\n|---|---|---|---|\n"
        f"| {metrics.test_accuracy:.4f} | {metrics.test_auc:.4f} | "
        f"{metrics.test_loss:.4f} | {metrics.test_rows} |\n\n"
        "Confusion matrix (rows: true label, columns: predicted):\n\n"
        "| | predicted negative | predicted positive |\n|---|---|---|\n"
        f"| negative | {matrix.true_negative} | {matrix.false_positive} |\n"
        f"| positive | {matrix.false_negative} | {matrix.true_positive} |\n"
        f"{curves}"
    )
