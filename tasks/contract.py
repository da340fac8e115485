"""What training and scoring agree on, declared once: the columns of review Parquet, the alias
scoring reads and training promotes to, the threshold between the labels, the test metrics a
version records, and the score histogram that drift is judged on. No Prefect, no Keras.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model_store import CHAMPION, PROMOTION_METRIC

__all__ = [
    "CHAMPION",
    "DEFAULT_ID_COLUMN",
    "HISTOGRAM_BINS",
    "LABEL_COLUMN",
    "NEGATIVE_LABEL",
    "POSITIVE_LABEL",
    "POSITIVE_THRESHOLD",
    "PROMOTION_METRIC",
    "TEXT_COLUMN",
    "ConfusionMatrix",
    "EvaluationMetrics",
    "count_shares",
    "labels_for",
    "score_counts",
    "score_histogram",
]

TEXT_COLUMN = "text"
LABEL_COLUMN = "label"  # labeled training data: 0 negative, 1 positive
DEFAULT_ID_COLUMN = "review_id"
# A score at or above this is a positive label, in evaluation and in scoring alike.
POSITIVE_THRESHOLD = 0.5
POSITIVE_LABEL = "positive"
NEGATIVE_LABEL = "negative"
HISTOGRAM_BINS = 10


def labels_for(scores: np.ndarray) -> np.ndarray:
    """ "positive" at or above POSITIVE_THRESHOLD, else "negative"."""
    return np.where(scores >= POSITIVE_THRESHOLD, POSITIVE_LABEL, NEGATIVE_LABEL)


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


class ConfusionMatrix(BaseModel):
    """Test rows by true label and predicted label."""

    model_config = ConfigDict(frozen=True)

    true_negative: int
    false_positive: int
    false_negative: int
    true_positive: int


class EvaluationMetrics(BaseModel):
    """A version's metrics on the test split, as its manifest records them."""

    model_config = ConfigDict(frozen=True)

    test_loss: float
    test_accuracy: float
    test_auc: float
    test_rows: int
    confusion_matrix: ConfusionMatrix
    test_positive_rate: float
    test_score_histogram: list[float] = Field(min_length=HISTOGRAM_BINS, max_length=HISTOGRAM_BINS)

    @classmethod
    def from_manifest(cls, metrics: Mapping[str, Any]) -> EvaluationMetrics | None:
        """The metrics a manifest holds, or None for a version that recorded others."""
        try:
            return cls.model_validate(dict(metrics))
        except ValidationError:
            return None

    def headline(self) -> dict[str, float | int]:
        """The single-number metrics, for tables and the run's result."""
        return {
            name: value
            for name, value in self.model_dump().items()
            if isinstance(value, (int, float))
        }
