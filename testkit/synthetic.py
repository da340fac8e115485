"""Small labeled review sets that a tiny model learns in a couple of epochs (no ../shared)."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

POSITIVE_WORDS = ["great", "wonderful", "loved", "brilliant", "superb", "moving", "delightful"]
NEGATIVE_WORDS = ["awful", "boring", "hated", "terrible", "dull", "waste", "clumsy"]
# The tiny model every test trains: its name in the stores tests make, and its recipe.
TINY_MODEL_NAME = "tiny-sentiment"
TINY_NUM_WORDS = 60
TINY_MAXLEN = 16
TINY_RECIPE = {
    "source": "parquet",
    "num_words": TINY_NUM_WORDS,
    "maxlen": TINY_MAXLEN,
    "embedding_dim": 8,
    "units": 8,
    "epochs": 2,
    "batch_size": 32,
    "learning_rate": 0.01,
}
FILLER_WORDS = ["the", "movie", "film", "plot", "actors", "was", "and", "a", "story", "it", "scene"]


def make_review(positive: bool, generator: random.Random) -> str:
    """A short review: filler words with two or three sentiment words mixed in."""
    sentiment = POSITIVE_WORDS if positive else NEGATIVE_WORDS
    words = generator.choices(FILLER_WORDS, k=generator.randint(6, 14))
    for _ in range(generator.randint(2, 3)):
        words.insert(generator.randrange(len(words) + 1), generator.choice(sentiment))
    text = " ".join(words).capitalize() + "."
    return text.replace(" and ", ", and ", 1) + (
        " <br />Really." if generator.random() < 0.3 else ""
    )


def write_labeled_parquet(path: Path, rows: int, seed: int, positive_only: bool = False) -> Path:
    """Balanced labeled reviews with review_id, text and label columns (all positive, a source
    that has changed, with `positive_only`)."""
    generator = random.Random(seed)
    labels = [1 if positive_only else index % 2 for index in range(rows)]
    generator.shuffle(labels)
    table = pa.table(
        {
            "review_id": [f"{path.stem}/{index}" for index in range(rows)],
            "text": [make_review(bool(label), generator) for label in labels],
            "label": pa.array(labels, type=pa.int8()),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def write_labeled_dataset(folder: Path, train_rows: int = 600, test_rows: int = 200) -> Path:
    """A folder with train.parquet and test.parquet, like ../shared/data/imdb."""
    write_labeled_parquet(folder / "train.parquet", train_rows, seed=1)
    write_labeled_parquet(folder / "test.parquet", test_rows, seed=2)
    return folder
