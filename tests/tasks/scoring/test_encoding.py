"""Row statuses and encoding (tasks.scoring.encoding), without Prefect or TensorFlow."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from tasks.scoring import (
    STATUS_EMPTY_TEXT,
    STATUS_INVALID_UTF8,
    STATUS_NOT_STRING,
    STATUS_NULL_TEXT,
    STATUS_OK,
    classify_texts,
    encode_for_model,
)
from tasks.text import encode_texts, pad_sequences
from testkit.scoring import VOCABULARY, fake_model, invalid_utf8_strings


def test_each_row_gets_a_status() -> None:
    column = pa.array(["good", None, "", "  ", "\u3000", "!!!", "é"], type=pa.string())
    statuses, ok_mask, texts = classify_texts(column)
    assert statuses.to_pylist() == [
        STATUS_OK,
        STATUS_NULL_TEXT,
        STATUS_EMPTY_TEXT,
        STATUS_EMPTY_TEXT,
        STATUS_EMPTY_TEXT,
        STATUS_OK,
        STATUS_OK,
    ]
    assert ok_mask.tolist() == [True, False, False, False, False, True, True]
    assert texts.to_pylist() == ["good", "!!!", "é"]


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1, None, 3], type=pa.int64()),
        pa.array([b"bytes", None, b"x"], type=pa.binary()),
        pa.array([1.5, None, 2.0]),
    ],
)
def test_a_column_that_is_not_text_is_rejected_row_by_row(column: pa.Array) -> None:
    statuses, ok_mask, texts = classify_texts(column)
    assert statuses.to_pylist() == [STATUS_NOT_STRING, STATUS_NULL_TEXT, STATUS_NOT_STRING]
    assert not ok_mask.any() and texts.to_pylist() == []


@pytest.mark.parametrize(
    "column",
    [
        pa.array(["a", None, "b"]).dictionary_encode(),
        pa.array(["a", None, "b"], type=pa.large_string()),
        pa.array(["a", None, "b"], type=pa.string_view()),
    ],
    ids=["dictionary", "large_string", "string_view"],
)
def test_every_arrow_text_type_is_text(column: pa.Array) -> None:
    statuses, _, texts = classify_texts(column)
    assert statuses.to_pylist() == [STATUS_OK, STATUS_NULL_TEXT, STATUS_OK]
    assert texts.to_pylist() == ["a", "b"]


def test_a_row_of_invalid_utf8_gets_its_own_status_and_the_rest_are_scored() -> None:
    column = invalid_utf8_strings([b"great movie", b"bad \xff\xfe bytes", None, b"", b"fine"])
    statuses, ok_mask, texts = classify_texts(column)
    assert statuses.to_pylist() == [
        STATUS_OK,
        STATUS_INVALID_UTF8,
        STATUS_NULL_TEXT,
        STATUS_EMPTY_TEXT,
        STATUS_OK,
    ]
    assert ok_mask.tolist() == [True, False, False, False, True]
    assert texts.to_pylist() == ["great movie", "fine"]


def test_encoding_is_the_training_code_path() -> None:
    texts = ["The movie was GREAT!<br />", "awful, the plot the plot the plot the plot"]
    expected = pad_sequences(encode_texts(texts, VOCABULARY), maxlen=6)
    assert np.array_equal(encode_for_model(pa.array(texts), fake_model()), expected)
