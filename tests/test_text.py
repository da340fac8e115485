"""The tokenizer follows the Keras IMDB conventions; pinned by examples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tasks.text import (
    OOV_ID,
    PAD_ID,
    START_ID,
    Vocabulary,
    build_word_index,
    encode_texts,
    pad_sequences,
    text_to_words,
)


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
    [ids] = encode_texts(["The movie: great, boring, unseen!"], vocabulary)
    # boring has id 7, not below num_words=7, so it is out of vocabulary, as is the unknown word.
    assert ids == [START_ID, 4, 5, 6, OOV_ID, OOV_ID]


def test_num_words_limits_ids() -> None:
    word_index = {f"w{rank}": rank for rank in range(1, 101)}
    vocabulary = Vocabulary(word_index=word_index, num_words=20)
    ids = encode_texts([" ".join(word_index)], vocabulary)[0]
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
