"""Test-split metrics, the confusion matrix, and the per-epoch curves as a PNG."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.data import PaddedData

if TYPE_CHECKING:
    import keras

__all__ = [
    "HISTOGRAM_BINS",
    "POSITIVE_THRESHOLD",
    "count_shares",
    "evaluate_model",
    "evaluate_task",
    "plot_curves",
    "report_task",
    "roc_auc",
    "score_counts",
    "score_histogram",
    "training_report_markdown",
]

HISTOGRAM_BINS = 10
# A score at or above this is a positive label, in evaluation and in scoring alike.
POSITIVE_THRESHOLD = 0.5


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


def score_counts(scores: np.ndarray, bins: int = HISTOGRAM_BINS) -> np.ndarray:
    """Scores counted in `bins` equal bins over [0, 1] (the last bin includes 1.0)."""
    counts, _ = np.histogram(np.clip(scores, 0.0, 1.0), bins=bins, range=(0.0, 1.0))
    return counts.astype(np.int64)


def count_shares(counts: Sequence[int]) -> list[float]:
    """Each bin's share of the total, rounded to 6 places (all 0.0 when nothing was counted)."""
    total = int(sum(counts))
    return [round(int(count) / total, 6) if total else 0.0 for count in counts]


def score_histogram(scores: np.ndarray, bins: int = HISTOGRAM_BINS) -> list[float]:
    """Share of scores in each bin of `score_counts`: the test split's distribution, for drift."""
    return count_shares(score_counts(scores, bins).tolist())


def evaluate_model(
    model: keras.Model,
    data: PaddedData,
    batch_size: int = 1024,
    threshold: float = POSITIVE_THRESHOLD,
) -> dict[str, Any]:
    """Loss, accuracy, ROC AUC, confusion matrix and score distribution on the test split."""
    scores = model.predict(data.x_test, batch_size=batch_size, verbose=0).reshape(-1)
    labels = data.y_test.astype(np.int64)
    predicted = (scores >= threshold).astype(np.int64)
    clipped = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    loss = -np.mean(labels * np.log(clipped) + (1 - labels) * np.log(1 - clipped))
    true_negative = int(((predicted == 0) & (labels == 0)).sum())
    false_positive = int(((predicted == 1) & (labels == 0)).sum())
    false_negative = int(((predicted == 0) & (labels == 1)).sum())
    true_positive = int(((predicted == 1) & (labels == 1)).sum())
    return {
        "test_loss": round(float(loss), 6),
        "test_accuracy": round(float((predicted == labels).mean()), 6),
        "test_auc": round(roc_auc(labels, scores), 6),
        "test_rows": len(labels),
        "confusion_matrix": {
            "true_negative": true_negative,
            "false_positive": false_positive,
            "false_negative": false_negative,
            "true_positive": true_positive,
        },
        "test_positive_rate": round(float(predicted.mean()), 6),
        "test_score_histogram": score_histogram(scores),
    }


def plot_curves(history: dict[str, list[float]], title: str = "") -> bytes:
    """Accuracy and loss per epoch, train against validation, as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    from matplotlib import pyplot

    figure, (accuracy_axis, loss_axis) = pyplot.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history.get("loss", [])) + 1)
    for axis, metric in ((accuracy_axis, "accuracy"), (loss_axis, "loss")):
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in history:
                axis.plot(epochs, history[key], marker="o", label=label)
        axis.set_title(metric)
        axis.set_xlabel("epoch")
        axis.legend()
        axis.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80)
    pyplot.close(figure)
    return buffer.getvalue()


@task(name="evaluate", cache_policy=NO_CACHE, persist_result=False)
def evaluate_task(model: keras.Model, data: PaddedData) -> dict[str, Any]:
    """Score the test split and compute its metrics."""
    return evaluate_model(model, data)


def training_report_markdown(
    model_name: str,
    version: int,
    version_path: str,
    metrics: dict[str, Any],
    promoted: bool,
    reason: str,
    alias: str,
) -> str:
    """The markdown shown in the Prefect UI: the new version, the promotion decision, the curves."""
    matrix = metrics["confusion_matrix"]
    curves_path = Path(version_path) / "curves.png"
    curves = ""
    if curves_path.is_file():
        encoded = base64.b64encode(curves_path.read_bytes()).decode()
        curves = f"\n![accuracy and loss per epoch](data:image/png;base64,{encoded})\n"
    decision = f"**promoted to `{alias}`**" if promoted else f"**not promoted** to `{alias}`"
    return (
        f"# {model_name} v{version}\n\n"
        f"Stored at `{version_path}`; {decision}: {reason}.\n\n"
        f"| test accuracy | ROC AUC | loss | rows |\n|---|---|---|---|\n"
        f"| {metrics['test_accuracy']:.4f} | {metrics['test_auc']:.4f} | "
        f"{metrics['test_loss']:.4f} | {metrics['test_rows']} |\n\n"
        "Confusion matrix (rows: true label, columns: predicted):\n\n"
        "| | predicted negative | predicted positive |\n|---|---|---|\n"
        f"| negative | {matrix['true_negative']} | {matrix['false_positive']} |\n"
        f"| positive | {matrix['false_negative']} | {matrix['true_positive']} |\n"
        f"{curves}"
    )


@task(name="report", cache_policy=NO_CACHE)
def report_task(
    model_name: str,
    version: int,
    version_path: str,
    metrics: dict[str, Any],
    promoted: bool,
    reason: str,
    alias: str = "champion",
) -> None:
    """Publish the metrics table and the version/promotion markdown as Prefect artifacts."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = model_name.lower().replace("_", "-").replace(".", "-")
    create_table_artifact(
        key=f"{key}-metrics",
        table=[
            {"metric": name, "value": value}
            for name, value in metrics.items()
            if isinstance(value, (int, float))
        ],
        description=f"Test metrics of {model_name} v{version}",
    )
    create_markdown_artifact(
        key=f"{key}-training",
        markdown=training_report_markdown(
            model_name, version, version_path, metrics, promoted, reason, alias
        ),
        description=f"{model_name} v{version}: {'promoted' if promoted else 'not promoted'}",
    )
