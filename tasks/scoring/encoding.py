"""Each row's status, and the ids of the rows that can be scored, by training's own tokenizer."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tasks.contract import TextCounts
from tasks.scoring.contract import (
    STATUS_EMPTY_TEXT,
    STATUS_INVALID_UTF8,
    STATUS_INVALID_UTF8_IN,
    STATUS_NOT_STRING,
    STATUS_NULL_TEXT,
    STATUS_OK,
)
from tasks.scoring.model import ScoringModel
from tasks.text import encode_texts, is_text_type, pad_sequences

__all__ = [
    "classify_texts",
    "encode_and_count",
    "encode_for_model",
    "repair_other_text_columns",
]


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


def repair_other_text_columns(
    batch: pa.RecordBatch, text_column: str
) -> tuple[pa.RecordBatch, dict[str, np.ndarray]]:
    """The batch with invalid UTF-8 in every string column but the text replaced by its lossy
    decoding (U+FFFD for each bad byte), so that every reader can read the output; and, for
    each column that had any, the mask of its rows."""
    bad: dict[str, np.ndarray] = {}
    columns = list(batch.columns)
    for index, field in enumerate(batch.schema):
        if field.name == text_column or field.type not in (pa.string(), pa.large_string()):
            continue
        mask = _invalid_utf8_mask(columns[index])
        if not mask.any():
            continue
        bad[field.name] = mask
        raw = columns[index].view(
            pa.large_binary() if pa.types.is_large_string(field.type) else pa.binary()
        )
        columns[index] = pa.array(
            [
                None if value is None else value.decode("utf-8", "replace")
                for value in raw.to_pylist()
            ],
            type=field.type,
        )
    if not bad:
        return batch, bad
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema), bad


def flag_repaired_rows(
    statuses: pa.Array, ok_mask: np.ndarray, texts: pa.Array, repaired: dict[str, np.ndarray]
) -> tuple[pa.Array, np.ndarray, pa.Array]:
    """Rows that `repair_other_text_columns` changed are not scored: their status names the
    first such column (a status the text already earned stays)."""
    if not repaired:
        return statuses, ok_mask, texts
    flagged = np.zeros(len(ok_mask), dtype=bool)
    status_values = np.array(statuses.to_pylist(), dtype=object)
    for column, mask in repaired.items():
        newly = mask & ok_mask & ~flagged
        status_values[newly] = f"{STATUS_INVALID_UTF8_IN}{column}"
        flagged |= newly
    kept_texts = texts.filter(pa.array(~flagged[ok_mask]))
    return pa.array(status_values, type=pa.string()), ok_mask & ~flagged, kept_texts


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
    return encode_and_count(texts, model)[0]


def encode_and_count(texts: pa.Array, model: ScoringModel) -> tuple[np.ndarray, TextCounts]:
    """encode_for_model, and what the texts' words look like to the vocabulary (before the
    padding cuts them): words, words it does not know, review lengths."""
    vocabulary = model.vocabulary
    sequences = encode_texts(texts, vocabulary)
    padded = pad_sequences(
        sequences, vocabulary.maxlen, padding=vocabulary.padding, truncating=vocabulary.truncating
    )
    return padded, TextCounts.of(sequences)
