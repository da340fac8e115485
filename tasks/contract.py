"""What training and scoring agree on, declared once: the columns of review Parquet, the alias
scoring reads and training promotes to, the threshold between the labels, the test metrics a
version records, the score histogram that drift is judged on, and the words of the reviews
(vocabulary coverage, lengths) that a change of language or source shows in first. No Prefect,
no Keras.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from model_store import CHAMPION, PROMOTION_METRIC

__all__ = [
    "CHAMPION",
    "DEFAULT_ID_COLUMN",
    "HISTOGRAM_BINS",
    "LABEL_COLUMN",
    "LENGTH_EDGES",
    "NEGATIVE_LABEL",
    "POSITIVE_LABEL",
    "POSITIVE_THRESHOLD",
    "PROMOTION_METRIC",
    "TEXT_COLUMN",
    "ConfusionMatrix",
    "EvaluationMetrics",
    "TextCounts",
    "TextProfile",
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
# Review lengths in words, binned at these edges (below 10, 10-24, ..., 800 and more).
LENGTH_EDGES = (10, 25, 50, 100, 200, 400, 800)
# Token ids that say something of the text (tasks/text.py): every review starts with START,
# and a word outside the vocabulary is OOV.
_START_ID, _OOV_ID = 1, 2


class TextCounts(BaseModel):
    """Counts over reviews' token ids: words, words outside the vocabulary, and reviews per
    length bin. Adds up over batches and files."""

    words: int = 0
    oov_words: int = 0
    length_counts: list[int] = Field(default_factory=lambda: [0] * (len(LENGTH_EDGES) + 1))

    @classmethod
    def of(cls, ids: pa.ListArray | pa.LargeListArray) -> TextCounts:
        """The counts of encoded reviews ([START, word ids...], before padding)."""
        lengths = np.diff(ids.offsets.to_numpy()) - 1
        values = ids.flatten()
        bins = np.searchsorted(np.array(LENGTH_EDGES), lengths, side="right")
        return cls(
            words=int(lengths.sum()),
            oov_words=int(pc.sum(pc.equal(values, _OOV_ID)).as_py() or 0),
            length_counts=np.bincount(bins, minlength=len(LENGTH_EDGES) + 1).tolist(),
        )

    def __add__(self, other: TextCounts) -> TextCounts:
        return TextCounts(
            words=self.words + other.words,
            oov_words=self.oov_words + other.oov_words,
            length_counts=[
                a + b for a, b in zip(self.length_counts, other.length_counts, strict=True)
            ],
        )

    def profile(self) -> TextProfile:
        return TextProfile(
            reviews=int(sum(self.length_counts)),
            oov_share=round(self.oov_words / self.words, 6) if self.words else 0.0,
            length_histogram=count_shares(self.length_counts),
        )


class TextProfile(BaseModel):
    """What a set of reviews looks like to a version's vocabulary: the share of its words the
    vocabulary does not know, and how long the reviews are (shares per LENGTH_EDGES bin)."""

    model_config = ConfigDict(frozen=True)

    reviews: int
    oov_share: float
    length_histogram: list[float]


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
    # The training split's words: what scoring compares its inputs with (None: older versions).
    training_text: TextProfile | None = None

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
