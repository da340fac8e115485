"""Text to ids as the Keras IMDB dataset was made, so scoring encodes exactly as training did."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = [
    "DEFAULT_MAXLEN",
    "DEFAULT_NUM_WORDS",
    "KERAS_FILTERS",
    "OOV_ID",
    "PAD_ID",
    "START_ID",
    "Vocabulary",
    "build_word_index",
    "encode_texts",
    "is_text_type",
    "pad_sequences",
    "text_to_words",
]

# Keras's old `text_to_word_sequence` filters; the apostrophe is kept.
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
PAD_ID = 0
START_ID = 1
OOV_ID = 2
# The Keras tutorial's tokenizer settings: the 10,000 most frequent words, 250 tokens per review.
DEFAULT_NUM_WORDS = 10_000
DEFAULT_MAXLEN = 250
# The two-string form maps to code points, which str.translate applies faster than strings.
_TRANSLATION = str.maketrans(KERAS_FILTERS, " " * len(KERAS_FILTERS))


def is_text_type(data_type: pa.DataType) -> bool:
    """The one contract for a review text column: string, large_string, string_view or a
    dictionary of those (what DuckDB, Polars and Spark write)."""
    if pa.types.is_dictionary(data_type):
        data_type = data_type.value_type
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
    )


def text_to_words(text: str) -> list[str]:
    """Lower-case, replace every filter character with a space, split on whitespace."""
    return text.lower().translate(_TRANSLATION).split()


@dataclass(frozen=True)
class Vocabulary:
    """A word index plus the tokenizer settings it was trained with; stored with every model."""

    word_index: Mapping[str, int] = field(repr=False)
    num_words: int = DEFAULT_NUM_WORDS
    index_from: int = 3
    maxlen: int = DEFAULT_MAXLEN
    padding: str = "pre"
    truncating: str = "pre"
    source: str = "keras"

    def __post_init__(self) -> None:
        if self.num_words <= self.index_from:
            raise ValueError(
                f"num_words must be greater than index_from={self.index_from}, got {self.num_words}"
            )
        if self.maxlen < 1:
            raise ValueError(f"maxlen must be at least 1, got {self.maxlen}")
        for name in ("padding", "truncating"):
            if getattr(self, name) not in ("pre", "post"):
                raise ValueError(f"{name} must be 'pre' or 'post', got {getattr(self, name)!r}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored as vocabulary.json."""
        data = asdict(self)
        data["word_index"] = dict(self.word_index)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vocabulary:
        """Read the JSON form back."""
        return cls(**data)

    @classmethod
    def from_word_index_file(cls, path: str | Path, **settings: Any) -> Vocabulary:
        """Use a Keras `imdb_word_index.json` (word -> 1-based frequency rank)."""
        path = Path(path)
        try:
            word_index = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read word index {path}: {error}") from error
        if not isinstance(word_index, dict) or not word_index:
            raise ValueError(f"word index {path} is not a non-empty JSON object")
        return cls(word_index=word_index, **settings)

    def id_table(self) -> dict[str, int]:
        """word -> id for the words that fit under num_words; everything else is OOV."""
        limit = self.num_words - self.index_from
        return {
            word: rank + self.index_from for word, rank in self.word_index.items() if rank < limit
        }


def build_word_index(texts: Iterable[str]) -> dict[str, int]:
    """Rank words by frequency (1 = most frequent), ties by first appearance, as Keras did."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(text_to_words(text))
    # Counter.most_common keeps insertion order among equal counts.
    return {word: rank for rank, (word, _) in enumerate(counts.most_common(), start=1)}


def encode_texts(
    texts: Iterable[str], vocabulary: Vocabulary, id_table: Mapping[str, int] | None = None
) -> list[list[int]]:
    """Each text to [START, ids...]; unknown or rare words become OOV, as in imdb.load_data."""
    table = vocabulary.id_table() if id_table is None else id_table
    lookup = table.get
    return [[START_ID, *(lookup(word, OOV_ID) for word in text_to_words(text))] for text in texts]


def pad_sequences(
    sequences: list[list[int]], maxlen: int, padding: str = "pre", truncating: str = "pre"
) -> np.ndarray:
    """Pad with PAD_ID and cut to maxlen, like keras.utils.pad_sequences, into an int32 matrix."""
    if maxlen < 1:
        raise ValueError(f"maxlen must be at least 1, got {maxlen}")
    output = np.full((len(sequences), maxlen), PAD_ID, dtype=np.int32)
    for row, sequence in enumerate(sequences):
        if not sequence:
            continue
        kept = sequence[-maxlen:] if truncating == "pre" else sequence[:maxlen]
        if padding == "pre":
            output[row, maxlen - len(kept) :] = kept
        else:
            output[row, : len(kept)] = kept
    return output
