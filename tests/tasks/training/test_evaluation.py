"""Test-split metrics and the report the Prefect UI shows of a training run."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.contract import EvaluationMetrics
from tasks.training.evaluation import curves_figure, plot_curves, roc_auc, training_report_markdown


def test_roc_auc_against_hand_counts() -> None:
    # 3 positive x 2 negative pairs: 5 ordered right, one tie counted half -> 5.5 / 6.
    labels = np.array([1, 1, 1, 0, 0])
    scores = np.array([0.9, 0.8, 0.3, 0.3, 0.1])
    assert roc_auc(labels, scores) == pytest.approx(5.5 / 6)
    assert roc_auc(labels, -scores) == pytest.approx(0.5 / 6)


def test_curves_are_a_png() -> None:
    png = plot_curves({"loss": [0.7, 0.5], "val_loss": [0.6, 0.55], "accuracy": [0.5, 0.8]})
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000


@pytest.mark.parametrize("epochs", [2, 3, 10])
def test_the_curves_tick_whole_epochs_only(epochs: int) -> None:
    from matplotlib import pyplot

    history = {"loss": [0.5] * epochs, "val_loss": [0.6] * epochs, "accuracy": [0.8] * epochs}
    figure = curves_figure(history)
    try:
        for axis in figure.axes:
            shown = [tick for tick in axis.get_xticks() if 1 <= tick <= epochs]
            assert shown and all(float(tick).is_integer() for tick in shown), shown
    finally:
        pyplot.close(figure)


def test_the_report_embeds_the_stored_curves_and_says_the_decision() -> None:
    metrics = EvaluationMetrics(
        test_loss=0.3,
        test_accuracy=0.9,
        test_auc=0.95,
        test_rows=4,
        confusion_matrix={
            "true_negative": 1,
            "false_positive": 1,
            "false_negative": 0,
            "true_positive": 2,
        },
        test_positive_rate=0.75,
        test_score_histogram=[0.1] * 10,
    )
    png = plot_curves({"loss": [0.7, 0.5], "val_loss": [0.6, 0.55], "accuracy": [0.5, 0.8]})
    report = training_report_markdown(
        "m", 2, "s3://bucket/models/m/versions/2", metrics, True, "no champion", "champion", png
    )
    assert "**promoted to `champion`** by this run: no champion" in report
    assert "`m-registry`" in report  # where to read which version is champion now
    assert "| 0.9000 | 0.9500 | 0.3000 | 4 |" in report
    assert "data:image/png;base64,iVBORw0KGgo" in report
    without = training_report_markdown("m", 2, "/m/2", metrics, False, "worse", "champion", None)
    assert "not promoted" in without and "data:image/png" not in without
