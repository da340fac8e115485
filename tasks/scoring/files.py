"""Score one input file into its output, streaming record batches, or skip a current output.

Memory stays flat: rows are read, tokenized, predicted and written one record batch at a time,
and the output goes to a temporary file that is published whole at the end (tasks.scoring.writing).
An input in object storage is first copied to this machine's disk, where it is hashed and read.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage import Location, locate, sha256_of_file
from tasks.contract import (
    DEFAULT_ID_COLUMN,
    HISTOGRAM_BINS,
    POSITIVE_THRESHOLD,
    TextCounts,
    labels_for,
    score_counts,
)
from tasks.scoring.contract import STATS_KEY, OutputLayout, output_layout
from tasks.scoring.encoding import (
    classify_texts,
    encode_and_count,
    flag_repaired_rows,
    repair_other_text_columns,
)
from tasks.scoring.model import ScoringModel
from tasks.scoring.prefetch import PREFETCH_BATCHES, prefetched
from tasks.scoring.records import (
    FileResult,
    InputFileError,
    OutputConflictError,
    ScoringJob,
    total_status_counts,
)
from tasks.scoring.writing import atomic_parquet_writer, read_output_stamp

__all__ = ["score_file"]

# The stamp fields that must match for an existing output to count as current.
_CURRENT_WHEN_EQUAL = (
    "input_sha256",
    "model_name",
    "model_version",
    "model_manifest_sha256",
    "text_column",
    "id_column",
)


def _stamp(
    job: ScoringJob, model: ScoringModel, id_column: str | None, local_input: Path
) -> dict[str, Any]:
    return {
        "input_sha256": _input_sha256(local_input, job),
        "input_path": job.input_path,
        "relative_path": job.relative_path,
        "model_name": model.name,
        "model_version": model.version,
        "model_manifest_sha256": job.model.manifest_sha256,
        "model_store": job.model.store_root,
        "text_column": job.text_column,
        "id_column": id_column,
    }


def _input_sha256(local_input: Path, job: ScoringJob) -> str:
    """sha256 of the input's bytes; a read error names the input."""
    try:
        return sha256_of_file(local_input)
    except OSError as error:
        raise InputFileError(f"{job.input_path}: cannot read the file: {error}") from error


@dataclass(frozen=True)
class _ExistingOutput:
    exists: bool
    current_stats: dict[str, Any] | None = None  # set when made from these bytes by this version


def _existing_output(job: ScoringJob, output: Location, stamp: dict[str, Any]) -> _ExistingOutput:
    """What is at the output path already: nothing, a current output, or the output of this
    same input from other bytes or settings (to be scored again).

    An output made from a different input is never replaced: that would silently lose its rows.
    """
    if not output.exists():
        return _ExistingOutput(exists=False)
    existing = read_output_stamp(output)
    if existing is None:
        raise OutputConflictError(
            f"{output} exists but was not written by review-scoring (or is unreadable); "
            f"refusing to replace it with the predictions of {job.input_path}"
        )
    existing_stamp, existing_stats = existing
    if all(existing_stamp.get(key) == stamp[key] for key in _CURRENT_WHEN_EQUAL):
        return _ExistingOutput(exists=True, current_stats=existing_stats)
    if existing_stamp.get("input_path") != stamp["input_path"]:
        raise OutputConflictError(
            f"{output} holds the predictions of {existing_stamp.get('input_path')}; "
            f"refusing to replace them with those of {job.input_path} (same relative path "
            f"{job.relative_path!r}). Score the two into different output roots, or score their "
            "common parent folder so that their paths differ"
        )
    return _ExistingOutput(exists=True)  # the same input, changed since: score it again


def _open_input(local_input: Path, job: ScoringJob) -> tuple[pq.ParquetFile, str | None]:
    """The file, and the id column it will be read with (None: ids are made from row numbers)."""
    path = job.input_path
    try:
        # pre_buffer (pyarrow's default) keeps every row group it has read buffered until the
        # reader is done, so memory would grow with the file; read one row group at a time.
        parquet = pq.ParquetFile(local_input, pre_buffer=False)
    except (OSError, pa.ArrowException) as error:
        raise InputFileError(f"{path}: not a readable Parquet file: {error}") from error
    names = parquet.schema_arrow.names
    repeated = sorted(name for name, count in Counter(names).items() if count > 1)
    if repeated:
        raise InputFileError(
            f"{path}: column names repeat ({', '.join(repr(name) for name in repeated)}); "
            "each column of an input needs a name of its own"
        )
    if job.text_column not in names:
        raise InputFileError(
            f"{path}: no text column {job.text_column!r} (columns: {', '.join(names) or 'none'})"
        )
    if job.id_column is None:
        return parquet, DEFAULT_ID_COLUMN if DEFAULT_ID_COLUMN in names else None
    if job.id_column not in names:
        raise InputFileError(
            f"{path}: no id column {job.id_column!r} (columns: {', '.join(names)}); "
            "leave id_column unset to number the rows instead"
        )
    return parquet, job.id_column


@contextlib.contextmanager
def _local_input(job: ScoringJob) -> Iterator[Path]:
    """The input on this machine's disk: itself, or a private copy of an object."""
    location = locate(job.input_path)
    if location.is_local:
        yield location.local_path
        return
    location.sweep_temporaries()
    try:
        with location.local_copy() as copy:
            yield copy
    except FileNotFoundError as error:
        raise InputFileError(f"{job.input_path}: the object is gone: {error}") from error


@dataclass
class _PreparedBatch:
    batch: pa.RecordBatch
    first_row: int
    statuses: pa.Array
    ok_mask: np.ndarray
    rows_to_score: int
    model_inputs: Any  # what the model's prepare step made of the padded ids
    text_counts: TextCounts


def _read_batches(
    parquet: pq.ParquetFile, path: str, job: ScoringJob
) -> Iterator[tuple[pa.RecordBatch, int]]:
    """Each record batch with the number of its first row."""
    first_row = 0
    batches = parquet.iter_batches(batch_size=job.batch_size, use_threads=False)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as error:
            raise InputFileError(
                f"{path}: cannot read rows from {first_row} on: {error}"
            ) from error
        yield batch, first_row
        first_row += batch.num_rows


def _preparer(
    job: ScoringJob, model: ScoringModel
) -> Callable[[tuple[pa.RecordBatch, int]], _PreparedBatch]:
    def prepare(read: tuple[pa.RecordBatch, int]) -> _PreparedBatch:
        """Classify and tokenize one record batch."""
        batch, first_row = read
        batch, repaired = repair_other_text_columns(batch, job.text_column)
        statuses, ok_mask, texts = flag_repaired_rows(
            *classify_texts(batch.column(job.text_column)), repaired
        )
        token_ids, text_counts = encode_and_count(texts, model)
        return _PreparedBatch(
            batch,
            first_row,
            statuses,
            ok_mask,
            len(token_ids),
            model.prepare(token_ids),
            text_counts,
        )

    return prepare


def _review_ids(
    batch: pa.RecordBatch, id_column: str | None, first_row: int, job: ScoringJob
) -> pa.Array:
    if id_column is not None:
        try:
            return batch.column(id_column).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise InputFileError(
                f"{job.input_path}: id column {id_column!r} of type "
                f"{batch.schema.field(id_column).type} cannot be read as text: {error}"
            ) from error
    name = job.relative_path.rsplit(".", 1)[0]
    return pa.array(
        [f"{name}:{row}" for row in range(first_row, first_row + batch.num_rows)], type=pa.string()
    )


class _Tally:
    """Counts over a file's batches: rows, statuses, positives, score bins and review ids."""

    def __init__(self) -> None:
        self.rows = 0
        self.positives = 0
        self.counts = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        self.batch_status_counts: list[dict[str, int]] = []
        self.ids: list[pa.Array] = []
        self.text_counts = TextCounts()

    def add(self, statuses: pa.Array, predicted: np.ndarray, review_ids: pa.Array) -> None:
        self.rows += len(statuses)
        self.counts += score_counts(predicted)
        self.positives += int((predicted >= POSITIVE_THRESHOLD).sum())
        self.batch_status_counts.append(
            {entry["values"]: entry["counts"] for entry in pc.value_counts(statuses).to_pylist()}
        )
        self.ids.append(review_ids)

    def stats(self, input_sha256: str, ids_are_row_numbers: bool) -> dict[str, Any]:
        ids = pa.chunked_array(self.ids, type=pa.string())
        null_ids = ids.null_count
        distinct = pc.count_distinct(ids, mode="only_valid").as_py() if self.rows else 0
        return {
            "rows": self.rows,
            "status_counts": total_status_counts(self.batch_status_counts),
            "positives": self.positives,
            "score_counts": self.counts.tolist(),
            "null_ids": null_ids,
            "duplicate_ids": 0 if ids_are_row_numbers else self.rows - null_ids - distinct,
            "input_sha256": input_sha256,
            "text_counts": self.text_counts.model_dump(),
        }


def _write_batches(
    writer: pq.ParquetWriter,
    prepared_batches: Iterator[_PreparedBatch],
    model: ScoringModel,
    layout: OutputLayout,
    job: ScoringJob,
    id_column: str | None,
    clock: Callable[[], datetime],
) -> _Tally:
    tally = _Tally()
    for prepared in prepared_batches:
        size = prepared.batch.num_rows
        scores = np.zeros(size, dtype=np.float32)
        predicted = np.zeros(0, dtype=np.float32)
        if prepared.rows_to_score:
            predicted = model.predict_prepared(prepared.model_inputs)
            if predicted.shape[0] != prepared.rows_to_score:
                raise ValueError(
                    f"model returned {predicted.shape[0]} scores for "
                    f"{prepared.rows_to_score} rows of {job.input_path}"
                )
            scores[prepared.ok_mask] = predicted
        not_scored = ~prepared.ok_mask
        review_ids = _review_ids(prepared.batch, id_column, prepared.first_row, job)
        columns: list[pa.Array] = [
            review_ids,
            pa.array(scores, type=pa.float32(), mask=not_scored),
            pa.array(labels_for(scores), type=pa.string(), mask=not_scored),
            prepared.statuses,
            pa.array([model.name] * size, type=pa.string()),
            pa.array(np.full(size, model.version, dtype=np.int64)),
            pa.array([job.model.manifest_sha256] * size, type=pa.string()),
            pa.array([clock()] * size, type=pa.timestamp("us", tz="UTC")),
        ]
        columns.extend(prepared.batch.column(name) for name, _ in layout.carried)
        writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=layout.schema))
        tally.add(prepared.statuses, predicted, review_ids)
        tally.text_counts += prepared.text_counts
    return tally


def _file_result(
    job: ScoringJob, outcome: Literal["scored", "skipped"], stats: dict[str, Any], started: float
) -> FileResult:
    return FileResult(
        input_path=job.input_path,
        relative_path=job.relative_path,
        output_path=job.output_path,
        outcome=outcome,
        rows=int(stats["rows"]),
        status_counts={key: int(value) for key, value in stats["status_counts"].items()},
        positives=int(stats["positives"]),
        score_counts=[int(count) for count in stats["score_counts"]],
        null_ids=int(stats.get("null_ids", 0)),
        duplicate_ids=int(stats.get("duplicate_ids", 0)),
        seconds=round(time.perf_counter() - started, 3),
        input_sha256=str(stats["input_sha256"]),
        # Outputs written before the words were counted have none: an empty count.
        text_counts=TextCounts.model_validate(stats.get("text_counts") or {}),
    )


def score_file(
    job: ScoringJob,
    model: ScoringModel,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    prefetch_batches: int = PREFETCH_BATCHES,
) -> FileResult:
    """Score one file into its output, or skip it when a current output already exists.

    Raises InputFileError for an input that cannot be scored (naming the file, and the row
    where one is to blame) and OutputConflictError when the output holds another input's rows.
    """
    started = time.perf_counter()
    if model.name != job.model.name or model.version != job.model.version:
        raise ValueError(
            f"job is for {job.model.name} v{job.model.version} but the model given is "
            f"{model.name} v{model.version}"
        )
    output = locate(job.output_path)
    with _local_input(job) as local_input:
        parquet, id_column = _open_input(local_input, job)
        stamp = _stamp(job, model, id_column, local_input)
        existing = _existing_output(job, output, stamp)
        if existing.current_stats is not None:
            return _file_result(job, "skipped", existing.current_stats, started)
        try:
            stats = _score_into(
                output, parquet, job, model, stamp, id_column, existing, clock, prefetch_batches
            )
        except FileExistsError:
            # Another run published this output while this one scored it: if it is current,
            # the rows are there exactly once; anything else is a conflict to be told about.
            again = _existing_output(job, output, stamp)
            if again.current_stats is None:
                raise OutputConflictError(
                    f"{output} was written by another run while this one scored "
                    f"{job.input_path}, from other bytes or settings; score it again"
                ) from None
            return _file_result(job, "skipped", again.current_stats, started)
    return _file_result(job, "scored", stats, started)


def _score_into(
    output: Location,
    parquet: pq.ParquetFile,
    job: ScoringJob,
    model: ScoringModel,
    stamp: dict[str, Any],
    id_column: str | None,
    existing: _ExistingOutput,
    clock: Callable[[], datetime],
    prefetch_batches: int,
) -> dict[str, Any]:
    """Write the scored rows of `parquet` to `output`; return the output's stats."""
    layout = output_layout(
        parquet.schema_arrow,
        (job.text_column,) + ((id_column,) if id_column else ()),
        json.dumps(stamp, sort_keys=True).encode(),
    )
    output.sweep_temporaries()
    # A new output only where none is; an output of this same input from other bytes is
    # replaced (the check above refused one of another input).
    with atomic_parquet_writer(output, layout.schema, exclusive=not existing.exists) as writer:
        batches = prefetched(
            _read_batches(parquet, job.input_path, job), _preparer(job, model), prefetch_batches
        )
        tally = _write_batches(writer, batches, model, layout, job, id_column, clock)
        if tally.rows != parquet.metadata.num_rows:
            raise InputFileError(
                f"{job.input_path}: read {tally.rows} rows but the footer says "
                f"{parquet.metadata.num_rows}"
            )
        stats = tally.stats(stamp["input_sha256"], ids_are_row_numbers=id_column is None)
        writer.add_key_value_metadata({STATS_KEY: json.dumps(stats, sort_keys=True).encode()})
    return stats
