"""Text to ids as the Keras IMDB dataset was made, so scoring encodes exactly as training did.

The rules are Keras's `text_to_word_sequence`: lower-case, every filter character becomes a
space, split on whitespace (Python's `str.lower` and `str.split`). They run over whole Arrow
arrays: the byte-level steps in numpy and Arrow kernels, Python only for the rows that are not
ASCII (whose lower-casing has Unicode rules that Arrow's does not follow).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from storage import BadDataError

__all__ = [
    "DEFAULT_MAXLEN",
    "DEFAULT_NUM_WORDS",
    "KERAS_FILTERS",
    "OOV_ID",
    "PAD_ID",
    "START_ID",
    "TextInput",
    "Vocabulary",
    "WordIndex",
    "build_word_index",
    "encode_texts",
    "is_text_type",
    "pad_sequences",
    "text_to_words",
    "words_of",
]

# Keras's old `text_to_word_sequence` filters; the apostrophe is kept.
KERAS_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
PAD_ID = 0
START_ID = 1
OOV_ID = 2
# The Keras tutorial's tokenizer settings: the 10,000 most frequent words, 250 tokens per review.
DEFAULT_NUM_WORDS = 10_000
DEFAULT_MAXLEN = 250
# Rows tokenized at a time: the byte masks cost a few bytes per text byte, so memory stays bounded.
ENCODE_CHUNK_ROWS = 10_000

# Bytes that end a word: the filters and the ASCII whitespace str.split splits on (\x1c-\x1f too).
_SEPARATORS = (KERAS_FILTERS + " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f").encode("ascii")
# bytes.translate tables: 1 for a byte inside a word, 0 for a separator.
_WORD_BYTE = bytes(0 if byte in _SEPARATORS else 1 for byte in range(256))
# Whitespace beyond ASCII that str.split also splits on (NBSP, U+2028, U+3000, ...).
_UNICODE_SPACE = re.compile(
    "[" + "".join(chr(code) for code in range(128, sys.maxunicode + 1) if chr(code).isspace()) + "]"
)

TextInput = pa.Array | pa.ChunkedArray | Sequence[str]


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


def _string_chunks(texts: TextInput) -> list[pa.StringArray]:
    """Plain `string` arrays of at most ENCODE_CHUNK_ROWS rows; nulls are refused."""
    if isinstance(texts, pa.ChunkedArray):
        arrays = texts.chunks
    elif isinstance(texts, pa.Array):
        arrays = [texts]
    else:
        arrays = [pa.array(list(texts), type=pa.string())]
    chunks = []
    for array in arrays:
        if not is_text_type(array.type):
            raise TypeError(f"texts must be strings, not {array.type}")
        if array.null_count:
            raise ValueError(f"texts hold {array.null_count} nulls; only strings can be encoded")
        for start in range(0, len(array), ENCODE_CHUNK_ROWS):
            chunk = array.slice(start, ENCODE_CHUNK_ROWS)
            chunk = chunk if chunk.type == pa.string() else chunk.cast(pa.string())
            if len(chunk) and _first_byte_offset(chunk):
                # pyarrow 26's ascii_lower misreads data that does not start at byte 0.
                chunk = pa.concat_arrays([chunk])
            chunks.append(chunk)
    return chunks


def _first_byte_offset(texts: pa.StringArray) -> int:
    return int(np.frombuffer(texts.buffers()[1], dtype=np.int32)[texts.offset])


def _lowered(texts: pa.StringArray) -> pa.StringArray:
    """str.lower per row, with non-ASCII whitespace made a plain space."""
    lowered = pc.ascii_lower(texts)
    not_ascii = np.flatnonzero(~pc.string_is_ascii(texts).to_numpy(zero_copy_only=False))
    if not not_ascii.size:
        return lowered
    # Python's own rules where they differ from Arrow's (final sigma, dotted capital I, ...).
    fixed = pa.array(
        [_UNICODE_SPACE.sub(" ", text.lower()) for text in texts.take(not_ascii).to_pylist()],
        type=pa.string(),
    )
    order = np.arange(len(texts))
    order[not_ascii] = len(texts) + np.arange(not_ascii.size)
    return pa.concat_arrays([lowered, fixed]).take(order)


def _chunk_words(texts: pa.StringArray) -> tuple[pa.StringArray, np.ndarray]:
    """Every word of every row in order, and where each row's words begin (rows + 1 offsets)."""
    # A space after every row: no word runs from one row into the next.
    spaced = pc.binary_join_element_wise(_lowered(texts), "", " ")
    offsets = np.frombuffer(spaced.buffers()[1], dtype=np.int32)[
        spaced.offset : spaced.offset + len(spaced) + 1
    ].astype(np.int64)
    text_bytes = bytes(memoryview(spaced.buffers()[2])[offsets[0] : offsets[-1]])
    offsets -= offsets[0]
    in_word = np.frombuffer(text_bytes.translate(_WORD_BYTE), dtype=np.int8)
    edges = np.diff(in_word, prepend=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    word_offsets = np.zeros(starts.size + 1, dtype=np.int32)
    np.cumsum((ends - starts).astype(np.int32), out=word_offsets[1:])
    # The words' bytes are the text's bytes without its separators, in order.
    word_bytes = text_bytes.translate(None, _SEPARATORS)
    words = pa.Array.from_buffers(
        pa.string(), starts.size, [None, pa.py_buffer(word_offsets), pa.py_buffer(word_bytes)]
    )
    return words, np.searchsorted(starts, offsets)


def words_of(texts: TextInput) -> pa.LargeListArray:
    """Each text's words: lower-cased, filter characters removed, split on whitespace."""
    values, offsets = [], [np.zeros(1, dtype=np.int64)]
    done = 0
    for chunk in _string_chunks(texts):
        words, row_offsets = _chunk_words(chunk)
        values.append(words)
        offsets.append(row_offsets[1:] + done)
        done += len(words)
    return pa.LargeListArray.from_arrays(
        np.concatenate(offsets), pa.concat_arrays(values) if values else pa.array([], pa.string())
    )


def text_to_words(text: str) -> list[str]:
    """One text's words (see words_of)."""
    return words_of([text])[0].as_py()


class WordIndex(Mapping[str, int]):
    """word -> frequency rank, read-only. Not a dict on purpose: Prefect walks every item of a
    dict passed between tasks (a second per walk for IMDB's 88,000 words), but not a Mapping."""

    def __init__(self, ranks: Mapping[str, int]) -> None:
        self._ranks = dict(ranks)

    def __getitem__(self, word: str) -> int:
        return self._ranks[word]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ranks)

    def __len__(self) -> int:
        return len(self._ranks)

    def __repr__(self) -> str:
        return f"WordIndex({len(self._ranks)} words)"


@dataclass(frozen=True)
class _IdLookup:
    words: pa.StringArray  # the words that have an id of their own
    ids: np.ndarray  # their ids, then OOV_ID for every other word


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
        if not isinstance(self.word_index, WordIndex):
            object.__setattr__(self, "word_index", WordIndex(self.word_index))
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
            raise BadDataError(f"cannot read word index {path}: {error}") from error
        if not isinstance(word_index, dict) or not word_index:
            raise BadDataError(f"word index {path} is not a non-empty JSON object")
        return cls(word_index=word_index, **settings)

    def id_table(self) -> dict[str, int]:
        """word -> id for the words that fit under num_words; everything else is OOV."""
        limit = self.num_words - self.index_from
        return {
            word: rank + self.index_from for word, rank in self.word_index.items() if rank < limit
        }

    @cached_property
    def _lookup(self) -> _IdLookup:
        table = self.id_table()
        return _IdLookup(
            words=pa.array(list(table), type=pa.string()),
            ids=np.array([*table.values(), OOV_ID], dtype=np.int32),
        )


def build_word_index(texts: TextInput) -> dict[str, int]:
    """Rank words by frequency (1 = most frequent), ties by first appearance, as Keras did."""
    counts = pc.value_counts(words_of(texts).flatten())  # in order of first appearance
    if not len(counts):
        return {}
    order = np.argsort(-counts.field("counts").to_numpy(), kind="stable")
    words = counts.field("values").take(order).to_pylist()
    return {word: rank for rank, word in enumerate(words, start=1)}


def encode_texts(texts: TextInput, vocabulary: Vocabulary) -> pa.LargeListArray:
    """Each text to [START, ids...]; unknown or rare words become OOV, as in imdb.load_data."""
    lookup = vocabulary._lookup
    words = words_of(texts)
    positions = pc.index_in(words.values, value_set=lookup.words)
    word_ids = lookup.ids[positions.fill_null(len(lookup.ids) - 1).to_numpy()]
    word_offsets = words.offsets.to_numpy()
    rows = len(words)
    # Each row gains START in front: word k of row r moves r + 1 places on.
    ids = np.empty(word_ids.size + rows, dtype=np.int32)
    row_of_word = np.repeat(np.arange(1, rows + 1), np.diff(word_offsets))
    ids[np.arange(word_ids.size) + row_of_word] = word_ids
    offsets = word_offsets + np.arange(rows + 1)
    ids[offsets[:-1]] = START_ID
    return pa.LargeListArray.from_arrays(offsets, pa.array(ids, type=pa.int32()))


def pad_sequences(
    sequences: pa.ListArray | pa.LargeListArray | Sequence[Sequence[int]],
    maxlen: int,
    padding: str = "pre",
    truncating: str = "pre",
) -> np.ndarray:
    """Pad with PAD_ID and cut to maxlen, like keras.utils.pad_sequences, into an int32 matrix."""
    if maxlen < 1:
        raise ValueError(f"maxlen must be at least 1, got {maxlen}")
    if not isinstance(sequences, pa.ListArray | pa.LargeListArray):
        sequences = pa.array(list(map(list, sequences)), type=pa.large_list(pa.int32()))
    values = sequences.flatten().to_numpy(zero_copy_only=False)
    offsets = sequences.offsets.to_numpy().astype(np.int64)
    first, lengths = offsets[:-1] - offsets[0], np.diff(offsets)
    rows = len(sequences)
    kept = np.minimum(lengths, maxlen)
    skipped = lengths - kept if truncating == "pre" else np.zeros_like(lengths)
    pad_before = maxlen - kept if padding == "pre" else np.zeros_like(lengths)
    row_start = np.arange(rows, dtype=np.int64) * maxlen
    # Value k of row r lands at r*maxlen + pad_before + (k - first - skipped) if it is kept.
    shift = np.repeat(row_start + pad_before - skipped - first, lengths)
    destination = np.arange(values.size) + shift
    lowest = np.repeat(row_start, lengths)
    kept_values = (destination >= lowest) & (destination < lowest + maxlen)
    output = np.full(rows * maxlen, PAD_ID, dtype=np.int32)
    output[destination[kept_values]] = values[kept_values]
    return output.reshape(rows, maxlen)
