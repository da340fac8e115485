"""Each row's status, and the ids of the rows that can be scored, by training's own tokenizer."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.scoring.contract import (
    STATUS_EMPTY_TEXT,
    STATUS_INVALID_UTF8,
    STATUS_NOT_STRING,
    STATUS_NULL_TEXT,
    STATUS_OK,
)
from tasks.scoring.model import ScoringModel
from tasks.text import encode_texts, is_text_type, pad_sequences

__all__ = ["classify_texts", "encode_for_model"]


def _invalid_utf8_mask(text: pa.Array) -> np.ndarray:
    """Rows whose bytes are not UTF-8 (Parquet readers do not check; Python decoding does)."""
    try:
        text.validate(full=True)
        return np.zeros(len(text), dtype=bool)
    except pa.ArrowInvalid:
        pass
    invalid = np.zeros(len(text), dtype=bool)
    for row, value in enumerate(text.view(pa.binary()).to_pylist()):
        if value is not None:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                invalid[row] = True
    return invalid


def classify_texts(column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, pa.Array]:
    """Each row's status, a mask of the rows to score, and their texts (in row order)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    rows = len(column)
    null_mask = column.is_null().to_numpy(zero_copy_only=False)
    statuses = np.full(rows, STATUS_OK, dtype=object)
    if not is_text_type(column.type):
        statuses[~null_mask] = STATUS_NOT_STRING
        statuses[null_mask] = STATUS_NULL_TEXT
        return (
            pa.array(statuses, type=pa.string()),
            np.zeros(rows, dtype=bool),
            pa.array([], type=pa.string()),
        )
    text = column.cast(pa.string()) if column.type != pa.string() else column
    invalid_mask = _invalid_utf8_mask(text)
    if invalid_mask.any():
        # Blank the bad rows so the string kernels below never see their bytes.
        text = pc.if_else(
            pa.array(invalid_mask), pa.scalar("", pa.string()), text.view(pa.binary())
        )
        text = text.cast(pa.string())
    # Empty, or nothing but whitespace: nothing to read, so no score.
    blank = pc.or_(pc.equal(pc.utf8_length(text), 0), pc.utf8_is_space(text))
    blank_mask = blank.fill_null(False).to_numpy(zero_copy_only=False) & ~invalid_mask
    statuses[blank_mask] = STATUS_EMPTY_TEXT
    statuses[invalid_mask] = STATUS_INVALID_UTF8
    statuses[null_mask] = STATUS_NULL_TEXT
    ok_mask = ~(null_mask | blank_mask | invalid_mask)
    texts = text.filter(pa.array(ok_mask))
    return pa.array(statuses, type=pa.string()), ok_mask, texts


def encode_for_model(texts: pa.Array, model: ScoringModel) -> np.ndarray:
    """The training code path: encode_texts then pad_sequences with the version's vocabulary."""
    vocabulary = model.vocabulary
    sequences = encode_texts(texts, vocabulary)
    return pad_sequences(
        sequences, vocabulary.maxlen, padding=vocabulary.padding, truncating=vocabulary.truncating
    )
