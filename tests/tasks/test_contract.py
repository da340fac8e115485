"""What training and scoring agree on: the score histogram, the labels, the metrics record."""

from __future__ import annotations

import numpy as np

from model_store import PROMOTION_METRIC
from tasks.contract import (
    EvaluationMetrics,
    count_shares,
    labels_for,
    score_counts,
    score_histogram,
)

METRICS = {
    "test_loss": 0.3,
    "test_accuracy": 0.9,
    "test_auc": 0.95,
    "test_rows": 100,
    "confusion_matrix": {
        "true_negative": 45,
        "false_positive": 5,
        "false_negative": 5,
        "true_positive": 45,
    },
    "test_positive_rate": 0.5,
    "test_score_histogram": [0.1] * 10,
}


def test_score_histogram_counts_one_in_the_last_bin() -> None:
    scores = np.array([0.0, 0.05, 0.5, 1.0])
    assert score_counts(scores, bins=4).tolist() == [2, 0, 1, 1]
    assert score_histogram(scores, bins=4) == [0.5, 0.0, 0.25, 0.25]


def test_count_shares_rounds_to_six_places_and_survives_nothing() -> None:
    assert count_shares([1, 2]) == [0.333333, 0.666667]
    assert count_shares(np.array([0, 3], dtype=np.int64)) == [0.0, 1.0]
    assert count_shares([0, 0, 0]) == [0.0, 0.0, 0.0]
    scores = np.random.RandomState(0).uniform(size=101)
    assert score_histogram(scores) == count_shares(score_counts(scores))


def test_labels_split_at_the_one_threshold() -> None:
    assert labels_for(np.array([0.0, 0.4999, 0.5, 1.0])).tolist() == [
        "negative",
        "negative",
        "positive",
        "positive",
    ]


def test_the_metrics_record_round_trips_through_a_manifest_and_holds_the_promotion_metric() -> None:
    metrics = EvaluationMetrics.model_validate(METRICS)
    assert EvaluationMetrics.from_manifest(metrics.model_dump()) == metrics
    assert PROMOTION_METRIC in metrics.headline()
    assert "test_score_histogram" not in metrics.headline()
    # A version that recorded other metrics (or a histogram of other bins) has none of these.
    assert EvaluationMetrics.from_manifest({"accuracy": 0.9}) is None
    assert EvaluationMetrics.from_manifest({**METRICS, "test_score_histogram": [1.0]}) is None


def test_text_counts_count_words_unknown_words_and_lengths_and_add_up() -> None:
    import pyarrow as pa

    from tasks.contract import LENGTH_EDGES, TextCounts

    # [START, ids...]: OOV is 2; the reviews have 3 words (one unknown) and 12 words (none).
    ids = pa.array([[1, 5, 2, 7], [1, *range(4, 16)]], type=pa.large_list(pa.int32()))
    counts = TextCounts.of(ids)
    assert (counts.words, counts.oov_words) == (15, 1)
    assert counts.length_counts == [1, 1] + [0] * (len(LENGTH_EDGES) - 1)
    both = counts + counts
    assert (both.words, both.oov_words, both.length_counts[:2]) == (30, 2, [2, 2])
    profile = both.profile()
    assert (profile.reviews, profile.oov_share) == (4, round(2 / 30, 6))
    assert profile.length_histogram[:2] == [0.5, 0.5]
