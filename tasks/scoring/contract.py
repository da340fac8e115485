"""The output contract: columns, row statuses, labels, and the metadata stamped on each file.

docs/design.md ("Review Parquet in, labeled predictions out") fixes these; readers downstream rely
on them, so they are declared here once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from tasks.contract import DEFAULT_ID_COLUMN

__all__ = [
    "COMPLETION_MARKER",
    "OUTPUT_COLUMNS",
    "STAMP_KEY",
    "STATS_KEY",
    "STATUS_EMPTY_TEXT",
    "STATUS_INVALID_UTF8",
    "STATUS_INVALID_UTF8_IN",
    "STATUS_NOT_STRING",
    "STATUS_NULL_TEXT",
    "STATUS_OK",
    "OutputLayout",
    "output_layout",
]

STATUS_OK = "ok"
STATUS_NULL_TEXT = "null_text"
STATUS_EMPTY_TEXT = "empty_text"
STATUS_NOT_STRING = "not_string"
STATUS_INVALID_UTF8 = "invalid_utf8"
# A row whose id or carried column held bytes that are not UTF-8: `invalid_utf8_in_<column>`.
STATUS_INVALID_UTF8_IN = "invalid_utf8_in_"
# Schema metadata key of an output file: what it was made from (checked before skipping).
STAMP_KEY = b"review_scoring.stamp"
# Footer metadata key, written when the file is complete: its row counts and score histogram.
STATS_KEY = b"review_scoring.stats"
# Spark's convention: a folder whose files are all complete carries this file.
COMPLETION_MARKER = "_SUCCESS"

_FIXED_FIELDS = (
    pa.field(DEFAULT_ID_COLUMN, pa.string()),
    pa.field("score", pa.float32()),
    pa.field("label", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("model_name", pa.string(), nullable=False),
    pa.field("model_version", pa.int64(), nullable=False),
    # What the version is (its manifest's sha256): another store's `v1` is another model.
    pa.field("model_manifest_sha256", pa.string()),
    pa.field("scored_at", pa.timestamp("us", tz="UTC"), nullable=False),
)
# The columns every output file starts with, in this order; carried input columns follow.
OUTPUT_COLUMNS = tuple(field.name for field in _FIXED_FIELDS)


@dataclass(frozen=True)
class OutputLayout:
    """The output schema, and which input columns are carried into it under which names."""

    schema: pa.Schema
    carried: list[tuple[str, str]]  # (input column, output column)


def output_layout(
    input_schema: pa.Schema, skipped_columns: tuple[str, ...], stamp_json: bytes
) -> OutputLayout:
    """The fixed columns, then every other input column carried through.

    An input column named like an output column (IMDB's `label`) keeps its data, renamed
    `input_<name>`.
    """
    taken = set(OUTPUT_COLUMNS)
    carried: list[tuple[str, str]] = []
    carried_fields: list[pa.Field] = []
    for input_field in input_schema:
        if input_field.name in skipped_columns:
            continue
        output_name = input_field.name
        while output_name in taken:
            output_name = f"input_{output_name}"
        taken.add(output_name)
        carried.append((input_field.name, output_name))
        carried_fields.append(input_field.with_name(output_name))
    schema = pa.schema([*_FIXED_FIELDS, *carried_fields], metadata={STAMP_KEY: stamp_json})
    return OutputLayout(schema, carried)
