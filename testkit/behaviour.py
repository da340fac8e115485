"""Behaviour checks of a trained model (Made-With-ML's model tests): minimum functionality,
invariance, direction. The tests run them on a small n-gram model trained on synthetic reviews;
bench/bench_training.py on the full recipes trained on IMDB."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tasks.contract import POSITIVE_THRESHOLD
from tasks.text import Vocabulary, encode_texts, pad_sequences

# Texts to scores in [0, 1]: a trained model with its vocabulary, as scoring encodes.
Scorer = Callable[[Sequence[str]], np.ndarray]

# Minimum functionality: plainly positive, plainly negative.
PLAINLY_POSITIVE = [
    "The movie was great and the story was wonderful, I loved it.",
    "A brilliant, moving film: superb actors and a delightful story.",
]
PLAINLY_NEGATIVE = [
    "The movie was awful and the plot was dull, I hated it.",
    "A boring, clumsy film: terrible actors and a waste of a story.",
]
# Invariance: a name or a number changed, the label stays.
INVARIANT_PAIRS = [
    (
        "John Smith was great in the film, I loved the story.",
        "Maria Garcia was great in the film, I loved the story.",
    ),
    (
        "Tom Hanks was awful and the plot was dull.",
        "Meryl Streep was awful and the plot was dull.",
    ),
    (
        "I saw it 3 times, a wonderful and moving story.",
        "I saw it 12 times, a wonderful and moving story.",
    ),
    ("The 2 hours of this movie were boring.", "The 3 hours of this movie were boring."),
]
# Direction: appending this lowers the score.
NEGATIVE_TAIL = " a terrible, boring waste of time"
DIRECTION_TEXTS = [*PLAINLY_POSITIVE, "The movie was good, the actors were fine."]


def scorer(model: object, vocabulary: Vocabulary) -> Scorer:
    """Scores of raw texts, encoded with the model's vocabulary and settings."""

    def score(texts: Sequence[str]) -> np.ndarray:
        ids = pad_sequences(
            encode_texts(texts, vocabulary),
            vocabulary.maxlen,
            padding=vocabulary.padding,
            truncating=vocabulary.truncating,
        )
        return np.asarray(model.predict(ids, verbose=0)).reshape(-1)  # type: ignore[attr-defined]

    return score


def behaviour_failures(score: Scorer) -> list[str]:
    """Every broken expectation as one line; empty when the model behaves."""
    failures: list[str] = []
    for text, positive in [(t, True) for t in PLAINLY_POSITIVE] + [
        (t, False) for t in PLAINLY_NEGATIVE
    ]:
        value = float(score([text])[0])
        if (value >= POSITIVE_THRESHOLD) != positive:
            wanted = "positive" if positive else "negative"
            failures.append(f"minimum: {text!r} scored {value:.3f}, not {wanted}")
    for left, right in INVARIANT_PAIRS:
        left_score, right_score = (float(value) for value in score([left, right]))
        if (left_score >= POSITIVE_THRESHOLD) != (right_score >= POSITIVE_THRESHOLD):
            failures.append(
                f"invariance: {left!r} {left_score:.3f} but {right!r} {right_score:.3f}"
            )
    for text in DIRECTION_TEXTS:
        before, after = (float(value) for value in score([text, text + NEGATIVE_TAIL]))
        if not after < before:
            failures.append(f"direction: {text!r} {before:.3f} -> {after:.3f} with the tail")
    return failures


# The fastest recipe (and the best), small: a bag of unigrams and hashed bigrams weighted by
# their naive-Bayes ratios, on the synthetic reviews.
