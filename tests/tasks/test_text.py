"""The tokenizer follows the Keras IMDB conventions: pinned by examples, and equal to the
rules written in plain Python (Keras's `text_to_word_sequence`) on every code point and on
generated text."""

from __future__ import annotations

import json
import sys
from collections import Counter

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tasks.text
from tasks.text import (
    KERAS_FILTERS,
    OOV_ID,
    PAD_ID,
    START_ID,
    Vocabulary,
    build_word_index,
    encode_texts,
    pad_sequences,
    text_to_words,
    words_of,
)

_KERAS_TRANSLATION = str.maketrans(KERAS_FILTERS, " " * len(KERAS_FILTERS))


def keras_words(text: str) -> list[str]:
    """Keras's rule in plain Python: the definition the vectorized tokenizer must equal."""
    return text.lower().translate(_KERAS_TRANSLATION).split()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("I don't like it", ["i", "don't", "like", "it"]),
        ("Great movie!<br /><br />Loved it.", ["great", "movie", "br", "br", "loved", "it"]),
        ("well...ok,fine;sure", ["well", "ok", "fine", "sure"]),
        ('"Quoted" (aside) [x] {y} a-b a_b', ["quoted", "aside", "x", "y", "a", "b", "a", "b"]),
        ("tab\there\nnew line", ["tab", "here", "new", "line"]),
        ("ÉLAN café", ["élan", "café"]),
        ("", []),
    ],
)
def test_text_to_words_matches_keras_rules(text: str, words: list[str]) -> None:
    assert text_to_words(text) == words


def test_ids_are_rank_plus_three_with_start_and_oov() -> None:
    # "the"=1, "movie"=2, "great"=3, "boring"=4: ids are rank + index_from (3).
    vocabulary = Vocabulary(
        word_index={"the": 1, "movie": 2, "great": 3, "boring": 4}, num_words=7, maxlen=10
    )
    [ids] = encode_texts(["The movie: great, boring, unseen!"], vocabulary).to_pylist()
    # boring has id 7, not below num_words=7, so it is out of vocabulary, as is the unknown word.
    assert ids == [START_ID, 4, 5, 6, OOV_ID, OOV_ID]


def test_num_words_limits_ids() -> None:
    word_index = {f"w{rank}": rank for rank in range(1, 101)}
    vocabulary = Vocabulary(word_index=word_index, num_words=20)
    [ids] = encode_texts([" ".join(word_index)], vocabulary).to_pylist()
    assert max(ids) == 19
    assert ids.count(OOV_ID) == 100 - 16


def test_word_index_ranks_by_frequency_then_first_seen() -> None:
    index = build_word_index(["b a a", "c b a", "d"])
    assert index == {"a": 1, "b": 2, "c": 3, "d": 4}


def test_vocabulary_round_trips_through_json() -> None:
    vocabulary = Vocabulary(word_index={"good": 1}, num_words=50, maxlen=7, source="parquet")
    restored = Vocabulary.from_dict(json.loads(json.dumps(vocabulary.to_dict())))
    assert restored == vocabulary


@pytest.mark.parametrize(
    ("padding", "truncating", "expected"),
    [
        ("pre", "pre", [[PAD_ID, PAD_ID, 1, 2], [3, 4, 5, 6]]),
        ("post", "post", [[1, 2, PAD_ID, PAD_ID], [2, 3, 4, 5]]),
    ],
)
def test_pad_sequences_matches_keras(padding: str, truncating: str, expected: list) -> None:
    sequences = [[1, 2], [2, 3, 4, 5, 6]]
    padded = pad_sequences(sequences, 4, padding, truncating)
    assert padded.dtype == np.int32
    assert padded.tolist() == expected
    import keras

    reference = keras.utils.pad_sequences(
        sequences, maxlen=4, padding=padding, truncating=truncating, value=PAD_ID
    )
    assert padded.tolist() == reference.tolist()


@pytest.mark.parametrize("bad", [{"num_words": 3}, {"maxlen": 0}, {"padding": "middle"}])
def test_vocabulary_rejects_impossible_settings(bad: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        Vocabulary(word_index={"a": 1}, **bad)


# Where Arrow's Unicode rules differ from Python's; each row must still split as Python does.
UNICODE_CASES = [
    "ΟΔΟΣ ΣΑΣ",  # final sigma: Python lowers the last Σ of a word to ς
    "İstanbul KELVIN \u212a",  # dotted capital I lowers to two code points; the Kelvin sign to k
    "non\u00a0breaking\u2028line\u3000ideographic\u0085next",  # whitespace beyond ASCII
    "group\x1cfile\x1dunit\x1erecord\x1fsplit\x0bvertical\x0cfeed\rreturn",
    "straße ǅungla ﬁne",  # ß and ligatures stay one word; titlecase digraph lowers
    "trailing ",
    " leading",
    "!!!",
    "",
]


def test_every_code_point_splits_as_python_does() -> None:
    code_points = "".join(
        chr(code) for code in range(1, sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF
    )
    texts = [code_points[start : start + 97] for start in range(0, len(code_points), 97)]
    assert words_of(texts).to_pylist() == [keras_words(text) for text in texts]


def test_unicode_and_ascii_rows_mixed_split_as_python_does() -> None:
    texts = ["Plain ASCII, first.", *UNICODE_CASES, "plain again"]
    assert words_of(texts).to_pylist() == [keras_words(text) for text in texts]


def test_words_never_run_across_rows() -> None:
    # Each row ends and the next begins inside a word: the bytes touch, the words must not.
    assert words_of(["ab", "cd", "", "ef"]).to_pylist() == [["ab"], ["cd"], [], ["ef"]]


def test_chunks_and_arrow_types_give_the_same_words(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [f"Row {row}: good!" if row % 3 else "ΣΑΣ x" for row in range(25)]
    expected = [keras_words(text) for text in texts]
    monkeypatch.setattr(tasks.text, "ENCODE_CHUNK_ROWS", 4)
    chunked = pa.chunked_array([texts[:10], texts[10:]], type=pa.large_string())
    assert words_of(chunked).to_pylist() == expected
    assert words_of(pa.array(texts).dictionary_encode()).to_pylist() == expected
    assert words_of(pa.array(texts).slice(5)).to_pylist() == expected[5:]


def test_nulls_are_refused() -> None:
    with pytest.raises(ValueError, match="1 nulls"):
        words_of(pa.array(["fine", None]))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"])), max_size=8))
def test_generated_text_splits_as_python_does(texts: list[str]) -> None:
    assert words_of(texts).to_pylist() == [keras_words(text) for text in texts]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(alphabet="aAbB cC,ΣΔ.\u00a0d'", max_size=30), min_size=1, max_size=6),
    st.integers(min_value=4, max_value=12),
)
def test_ids_equal_the_dictionary_lookup(texts: list[str], num_words: int) -> None:
    vocabulary = Vocabulary(word_index=build_word_index(texts), num_words=num_words)
    table = vocabulary.id_table()
    expected = [
        [START_ID, *(table.get(word, OOV_ID) for word in keras_words(text))] for text in texts
    ]
    assert encode_texts(texts, vocabulary).to_pylist() == expected


def test_word_index_equals_counting_in_python() -> None:
    texts = ["b a a", "c b a", "d", "\u03a3\u03b1 \u03c3\u03b1 \u03a3\u0391", "e e f f"]
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(keras_words(text))
    expected = {word: rank for rank, (word, _) in enumerate(counts.most_common(), start=1)}
    assert build_word_index(pa.array(texts)) == expected


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
def test_pad_sequences_of_many_lengths_matches_keras(padding: str, truncating: str) -> None:
    import keras

    rng = np.random.default_rng(7)
    sequences = [rng.integers(1, 50, size=length).tolist() for length in [0, 1, 4, 5, 6, 11, 3]]
    arrow_sequences = pa.array(sequences, type=pa.large_list(pa.int32())).slice(1)
    reference = keras.utils.pad_sequences(
        sequences[1:], maxlen=5, padding=padding, truncating=truncating, value=PAD_ID
    )
    assert pad_sequences(arrow_sequences, 5, padding, truncating).tolist() == reference.tolist()
    empty_row = pad_sequences(pa.array([[]], type=pa.large_list(pa.int32())), 5)
    assert empty_row.tolist() == [[PAD_ID] * 5]
