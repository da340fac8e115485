"""Score review Parquet: stream a file in record batches, tokenize, predict, write atomically.

Plain functions do the work and are tested without Prefect; the `@task` wrappers at the end add
logging and names for the UI. Between tasks only paths and small records travel.
"""

from __future__ import annotations

import json
import math
import os
import queue
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from pydantic import BaseModel, Field

from model_store import sha256_of_file
from tasks.data import is_glob, resolve_parquet_paths
from tasks.evaluation import HISTOGRAM_BINS, score_counts
from tasks.text import Vocabulary, encode_texts, pad_sequences

if TYPE_CHECKING:
    import keras
    from prefect.client.schemas.objects import TaskRun
    from prefect.states import State
    from prefect.tasks import Task

__all__ = [
    "HISTOGRAM_BINS",
    "OUTPUT_COLUMNS",
    "POSITIVE_THRESHOLD",
    "STATUS_EMPTY_TEXT",
    "STATUS_NOT_STRING",
    "STATUS_NULL_TEXT",
    "STATUS_OK",
    "DriftReport",
    "FileFailure",
    "FileResult",
    "InputFileError",
    "ModelRef",
    "ScoringJob",
    "ScoringModel",
    "ScoringSummary",
    "atomic_parquet_writer",
    "batch_predict",
    "check_paths_do_not_overlap",
    "classify_texts",
    "compare_score_distributions",
    "discover_inputs",
    "encode_for_model",
    "file_sha256",
    "keras_predictor",
    "load_scoring_model",
    "output_dir_for",
    "parse_model_ref",
    "plan_jobs",
    "plan_jobs_task",
    "population_stability_index",
    "prefetched",
    "publish_summary",
    "read_output_stamp",
    "remove_stale_temporaries",
    "render_distribution_markdown",
    "resolve_model",
    "resolve_model_version",
    "score_counts",
    "score_file",
    "summarize_run",
    "summarize_task",
    "summary_table",
]

POSITIVE_THRESHOLD = 0.5
STATUS_OK = "ok"
STATUS_NULL_TEXT = "null_text"
STATUS_EMPTY_TEXT = "empty_text"
STATUS_NOT_STRING = "not_string"
OUTPUT_COLUMNS = (
    "review_id",
    "score",
    "label",
    "status",
    "model_name",
    "model_version",
    "scored_at",
)
# Schema metadata key of an output file: what it was made from (checked before skipping).
STAMP_KEY = b"review_scoring.stamp"
# Footer metadata key, written when the file is complete: its row counts and score histogram.
STATS_KEY = b"review_scoring.stats"
TEMPORARY_SUFFIX = ".tmp"
# Temporaries older than this are stale even when their writer may live on another machine.
STALE_TEMPORARY_SECONDS = 6 * 3600
# Record batches prepared ahead of the one being predicted: enough to overlap, little memory.
PREFETCH_BATCHES = 2
# Model versions kept loaded per process (a long-lived worker sees few versions at a time).
LOADED_MODELS_KEPT = 2

T = TypeVar("T")


class InputFileError(ValueError):
    """An input file that cannot be scored: not Parquet, corrupt, empty or missing a column."""


# ---------------------------------------------------------------------------------------------
# Small records passed between tasks


class ModelRef(BaseModel):
    """One resolved model version, and what its manifest says about its test split."""

    store_root: str
    name: str
    version: int
    test_score_histogram: list[float] | None = None
    test_positive_rate: float | None = None


class ScoringJob(BaseModel):
    """One input file to score, and where its output goes."""

    input_path: str
    output_path: str
    stem: str
    model: ModelRef
    text_column: str = "text"
    id_column: str = "review_id"
    batch_size: int = 1024


class FileResult(BaseModel):
    """What one `batch-predict` did: scored the file now, or found a current output."""

    input_path: str
    output_path: str
    outcome: Literal["scored", "skipped"]
    rows: int
    status_counts: dict[str, int]
    positives: int
    score_counts: list[int]
    seconds: float
    input_sha256: str


class FileFailure(BaseModel):
    """An input file whose task failed, and why."""

    input_path: str
    error: str


class DriftReport(BaseModel):
    """This run's score distribution next to the one on the model's test split."""

    rows: int
    run_histogram: list[float]
    test_histogram: list[float] | None
    run_positive_share: float | None
    test_positive_rate: float | None
    psi: float | None
    threshold: float
    drifted: bool
    message: str


class ScoringSummary(BaseModel):
    """The run's result: counts, throughput, failures and the drift check."""

    model_name: str
    model_version: int
    output_dir: str
    files_total: int
    files_scored: int
    files_skipped: int
    files_failed: int
    rows: int = Field(description="Rows in the outputs of this run's inputs (scored or skipped)")
    rows_scored: int = Field(description="Rows scored by this run")
    rows_ok: int
    rejected_by_reason: dict[str, int]
    positive_share: float | None
    rows_per_second: float
    seconds: float
    drift: DriftReport
    failures: list[FileFailure]
    files: list[FileResult]


# ---------------------------------------------------------------------------------------------
# The model, loaded once per process


@dataclass(frozen=True)
class ScoringModel:
    """What scoring needs from a model version: its tokenizer and a batch predict function."""

    name: str
    version: int
    vocabulary: Vocabulary
    predict: Callable[[np.ndarray], np.ndarray]
    id_table: Mapping[str, int] = field(repr=False)
    manifest: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def create(
        cls,
        name: str,
        version: int,
        vocabulary: Vocabulary,
        predict: Callable[[np.ndarray], np.ndarray],
        manifest: Mapping[str, Any] | None = None,
    ) -> ScoringModel:
        """Build one, computing the word -> id table once rather than per batch."""
        return cls(
            name=name,
            version=version,
            vocabulary=vocabulary,
            predict=predict,
            id_table=vocabulary.id_table(),
            manifest=dict(manifest or {}),
        )


def keras_predictor(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """Scores for a padded id matrix, one model call per batch (no `predict` loop overhead)."""
    # Build the compiled predict function now, so concurrent first calls do not race to build it.
    model.make_predict_function()

    def predict(token_ids: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_on_batch(token_ids), dtype=np.float32).reshape(-1)

    return predict


_loaded_models: OrderedDict[tuple[str, str, int], ScoringModel] = OrderedDict()
_loaded_models_lock = threading.Lock()


def load_scoring_model(store_root: str, name: str, version: int) -> ScoringModel:
    """Load a version from the store once per process (sha256 checked by the store)."""
    key = (str(Path(store_root).resolve()), name, int(version))
    with _loaded_models_lock:
        if key in _loaded_models:
            _loaded_models.move_to_end(key)
            return _loaded_models[key]
        from model_store import ModelStore

        loaded = ModelStore(Path(store_root)).load(name, int(version))
        scoring_model = ScoringModel.create(
            name=name,
            version=int(loaded.version),
            vocabulary=Vocabulary.from_dict(loaded.vocabulary),
            predict=keras_predictor(loaded.model),
            manifest=loaded.manifest,
        )
        _loaded_models[key] = scoring_model
        while len(_loaded_models) > LOADED_MODELS_KEPT:
            _loaded_models.popitem(last=False)
        return scoring_model


def parse_model_ref(ref: str | int) -> str | int:
    """'3' is version 3; anything else is an alias such as 'champion' or 'latest'."""
    if isinstance(ref, int):
        return ref
    text = ref.strip()
    if not text:
        raise ValueError("model_ref is empty: give a version number or an alias")
    return int(text) if text.isascii() and text.isdigit() else text


def resolve_model_version(store_root: str, name: str, ref: str | int) -> ModelRef:
    """Resolve an alias to a version once, and check its files, so a bad model fails early.

    The model itself is loaded where files are scored (once per worker process), so a flow
    that sends its files to Dask never needs TensorFlow in its own process.
    """
    from model_store import ModelStore

    store = ModelStore(Path(store_root))
    version = store.resolve(name, parse_model_ref(ref))
    store.verify(name, version)
    metrics = store.manifest(name, version).get("metrics") or {}
    histogram = metrics.get("test_score_histogram")
    positive_rate = metrics.get("test_positive_rate")
    valid_histogram = (
        isinstance(histogram, list)
        and len(histogram) == HISTOGRAM_BINS
        and all(isinstance(share, int | float) for share in histogram)
    )
    return ModelRef(
        store_root=str(Path(store_root).absolute()),  # workers may run elsewhere than here
        name=name,
        version=version,
        test_score_histogram=[float(share) for share in histogram] if valid_histogram else None,
        test_positive_rate=float(positive_rate) if isinstance(positive_rate, int | float) else None,
    )


# ---------------------------------------------------------------------------------------------
# Finding the inputs and placing the outputs


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    parts: list[str] = []
    for part in Path(pattern).parts:
        if is_glob(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def discover_inputs(input_path: str) -> list[Path]:
    """The Parquet files a folder (non-recursive), glob or file names, sorted; stems unique."""
    inputs = resolve_parquet_paths(input_path, "input_path")
    seen: dict[str, Path] = {}
    for path in inputs:
        if path.stem in seen:
            raise ValueError(
                f"two inputs have the same stem {path.stem!r}, so their outputs would collide: "
                f"{seen[path.stem]} and {path}"
            )
        seen[path.stem] = path
    return inputs


def _contains(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def check_paths_do_not_overlap(input_path: str, inputs: Sequence[Path], output_root: Path) -> None:
    """Refuse an output root that lies inside the inputs' folder, or holds inputs itself."""
    output = output_root.resolve()
    if is_glob(input_path):
        input_folder: Path | None = _glob_base(input_path).resolve()
    elif Path(input_path).is_dir():
        input_folder = Path(input_path).resolve()
    else:
        input_folder = None
    if input_folder is not None and (
        _contains(input_folder, output) or _contains(output, input_folder)
    ):
        raise ValueError(
            f"input path {input_path} and output root {output_root} overlap; "
            "choose an output root outside the input folder"
        )
    for path in inputs:
        if _contains(output, path.resolve()):
            raise ValueError(f"input file {path} lies inside the output root {output_root}")


def output_dir_for(output_root: Path, model_name: str, version: int) -> Path:
    """<output root>/<model name>/v<N>/, as design.md fixes it."""
    return output_root / model_name / f"v{version}"


def plan_jobs(
    input_path: str,
    output_root: Path,
    model: ModelRef,
    text_column: str = "text",
    id_column: str = "review_id",
    batch_size: int = 1024,
) -> list[ScoringJob]:
    """One job per input file; refuses overlapping paths and colliding stems."""
    inputs = discover_inputs(input_path)
    check_paths_do_not_overlap(input_path, inputs, output_root)
    output_dir = output_dir_for(output_root, model.name, model.version)
    return [
        ScoringJob(
            input_path=str(path.absolute()),
            output_path=str((output_dir / f"{path.stem}.parquet").absolute()),
            stem=path.stem,
            model=model,
            text_column=text_column,
            id_column=id_column,
            batch_size=batch_size,
        )
        for path in inputs
    ]


# ---------------------------------------------------------------------------------------------
# Reading, classifying and encoding


def file_sha256(path: Path) -> str:
    """sha256 of an input file; a read error names the file."""
    try:
        return sha256_of_file(path)
    except OSError as error:
        raise InputFileError(f"{path}: cannot read the file: {error}") from error


def classify_texts(column: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, list[str]]:
    """Each row's status, a mask of the rows to score, and their texts (in row order)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    rows = len(column)
    null_mask = column.is_null().to_numpy(zero_copy_only=False)
    statuses = np.full(rows, STATUS_OK, dtype=object)
    value_type = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    is_text = (
        pa.types.is_string(value_type)
        or pa.types.is_large_string(value_type)
        or pa.types.is_string_view(value_type)
    )
    if not is_text:
        statuses[~null_mask] = STATUS_NOT_STRING
        statuses[null_mask] = STATUS_NULL_TEXT
        return pa.array(statuses, type=pa.string()), np.zeros(rows, dtype=bool), []
    text = column.cast(pa.string()) if column.type != pa.string() else column
    # Empty, or nothing but whitespace: nothing to read, so no score.
    blank = pc.or_(pc.equal(pc.utf8_length(text), 0), pc.utf8_is_space(text))
    blank_mask = blank.fill_null(False).to_numpy(zero_copy_only=False)
    statuses[blank_mask] = STATUS_EMPTY_TEXT
    statuses[null_mask] = STATUS_NULL_TEXT
    ok_mask = ~(null_mask | blank_mask)
    texts = text.filter(pa.array(ok_mask)).to_pylist()
    return pa.array(statuses, type=pa.string()), ok_mask, texts


def encode_for_model(texts: list[str], model: ScoringModel) -> np.ndarray:
    """The training code path: encode_texts then pad_sequences with the version's vocabulary."""
    vocabulary = model.vocabulary
    sequences = encode_texts(texts, vocabulary, model.id_table)
    return pad_sequences(
        sequences, vocabulary.maxlen, padding=vocabulary.padding, truncating=vocabulary.truncating
    )


def prefetched(items: Iterator[T], depth: int = PREFETCH_BATCHES) -> Iterator[T]:
    """Produce `items` in a background thread, `depth` ahead of the consumer (0: no thread).

    Tokenizing holds the GIL while TensorFlow's predict releases it, so preparing the next batch
    while the current one is predicted uses both cores. The queue bound keeps memory flat.
    """
    if depth < 1:
        yield from items
        return
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(("error", error))

    producer = threading.Thread(target=produce, name="scoring-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            kind, payload = handoff.get()
            if kind == "done":
                return
            if kind == "error":
                raise payload
            yield payload
    finally:
        stop.set()
        producer.join()


# ---------------------------------------------------------------------------------------------
# Writing


def _temporary_prefix(output_path: Path) -> str:
    return f".{output_path.name}."


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(output_path: Path) -> list[Path]:
    """Delete temporaries of this output left by a writer that died (a crash, a SIGKILL).

    A temporary is named `.<output name>.<host>.<pid>.<random>.tmp`; it is stale when its
    process no longer runs on this host, or when it is older than STALE_TEMPORARY_SECONDS.
    """
    removed: list[Path] = []
    if not output_path.parent.is_dir():
        return removed
    host = socket.gethostname()
    prefix = _temporary_prefix(output_path)
    for candidate in output_path.parent.iterdir():
        name = candidate.name
        if not (name.startswith(prefix) and name.endswith(TEMPORARY_SUFFIX)):
            continue
        parts = name[len(prefix) : -len(TEMPORARY_SUFFIX)].rsplit(".", 2)
        try:
            age = time.time() - candidate.stat().st_mtime
        except FileNotFoundError:
            continue
        same_host_dead = (
            len(parts) == 3
            and parts[0] == host
            and parts[1].isdigit()
            and not _process_is_alive(int(parts[1]))
        )
        if same_host_dead or age > STALE_TEMPORARY_SECONDS:
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
    return removed


@contextmanager
def atomic_parquet_writer(output_path: Path, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A ParquetWriter on a temporary file in the output folder, renamed into place on success."""
    output_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = output_path.parent / (
        f"{_temporary_prefix(output_path)}{socket.gethostname()}.{os.getpid()}."
        f"{uuid.uuid4().hex[:12]}{TEMPORARY_SUFFIX}"
    )
    writer = pq.ParquetWriter(temporary, schema, compression="zstd")
    try:
        yield writer
        writer.close()
        with temporary.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, output_path)
    except BaseException:
        writer.close()
        temporary.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not every filesystem allows it
        directory = os.open(output_path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except OSError:
        pass


def read_output_stamp(output_path: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The stamp and stats of a finished output file, or None when there is no usable one."""
    try:
        metadata = pq.read_metadata(output_path).metadata or {}
        return json.loads(metadata[STAMP_KEY]), json.loads(metadata[STATS_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


@dataclass(frozen=True)
class _OutputLayout:
    schema: pa.Schema
    carried: list[tuple[str, str]]  # (input column, output column)


def _output_layout(
    input_schema: pa.Schema, job: ScoringJob, stamp: dict[str, Any]
) -> _OutputLayout:
    """The output schema: the fixed columns, then every other input column carried through."""
    fixed = [
        pa.field("review_id", pa.string()),
        pa.field("score", pa.float32()),
        pa.field("label", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("model_name", pa.string(), nullable=False),
        pa.field("model_version", pa.int64(), nullable=False),
        pa.field("scored_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
    taken = set(OUTPUT_COLUMNS)
    carried: list[tuple[str, str]] = []
    carried_fields: list[pa.Field] = []
    for input_field in input_schema:
        if input_field.name in (job.text_column, job.id_column):
            continue
        # An input column named like an output column (IMDB's `label`) keeps its data, renamed.
        output_name = input_field.name
        while output_name in taken:
            output_name = f"input_{output_name}"
        taken.add(output_name)
        carried.append((input_field.name, output_name))
        carried_fields.append(input_field.with_name(output_name))
    metadata = {STAMP_KEY: json.dumps(stamp, sort_keys=True).encode()}
    return _OutputLayout(pa.schema(fixed + carried_fields, metadata=metadata), carried)


def _review_ids(batch: pa.RecordBatch, job: ScoringJob, first_row: int, path: Path) -> pa.Array:
    if job.id_column in batch.schema.names:
        try:
            return batch.column(job.id_column).cast(pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise InputFileError(
                f"{path}: id column {job.id_column!r} of type "
                f"{batch.schema.field(job.id_column).type} cannot be read as text: {error}"
            ) from error
    stem = Path(job.input_path).stem
    return pa.array(
        [f"{stem}:{row}" for row in range(first_row, first_row + batch.num_rows)], type=pa.string()
    )


@dataclass
class _PreparedBatch:
    batch: pa.RecordBatch
    first_row: int
    statuses: pa.Array
    ok_mask: np.ndarray
    token_ids: np.ndarray


def _open_input(path: Path, job: ScoringJob) -> pq.ParquetFile:
    try:
        # pre_buffer (pyarrow's default) keeps every row group it has read buffered until the
        # reader is done, so memory would grow with the file; read one row group at a time.
        parquet = pq.ParquetFile(path, pre_buffer=False)
    except (OSError, pa.ArrowException) as error:
        raise InputFileError(f"{path}: not a readable Parquet file: {error}") from error
    names = parquet.schema_arrow.names
    if job.text_column not in names:
        raise InputFileError(
            f"{path}: no text column {job.text_column!r} (columns: {', '.join(names) or 'none'})"
        )
    if parquet.metadata.num_rows == 0:
        raise InputFileError(f"{path}: the file has no rows")
    return parquet


def _prepared_batches(
    parquet: pq.ParquetFile, path: Path, job: ScoringJob, model: ScoringModel
) -> Iterator[_PreparedBatch]:
    """Read, classify and tokenize one record batch at a time."""
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
        statuses, ok_mask, texts = classify_texts(batch.column(job.text_column))
        token_ids = encode_for_model(texts, model)
        yield _PreparedBatch(batch, first_row, statuses, ok_mask, token_ids)
        first_row += batch.num_rows


def _file_result(
    job: ScoringJob, outcome: Literal["scored", "skipped"], stats: dict[str, Any], seconds: float
) -> FileResult:
    return FileResult(
        input_path=job.input_path,
        output_path=job.output_path,
        outcome=outcome,
        rows=int(stats["rows"]),
        status_counts={key: int(value) for key, value in stats["status_counts"].items()},
        positives=int(stats["positives"]),
        score_counts=[int(count) for count in stats["score_counts"]],
        seconds=round(seconds, 3),
        input_sha256=str(stats["input_sha256"]),
    )


def score_file(
    job: ScoringJob,
    model: ScoringModel,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    prefetch_batches: int = PREFETCH_BATCHES,
) -> FileResult:
    """Score one file into its output, or skip it when a current output already exists.

    Memory stays flat: rows are read, tokenized, predicted and written one record batch at a
    time, and the output goes to a temporary file that is renamed into place at the end.
    """
    started = time.perf_counter()
    input_path = Path(job.input_path)
    output_path = Path(job.output_path)
    if model.name != job.model.name or model.version != job.model.version:
        raise ValueError(
            f"job is for {job.model.name} v{job.model.version} but the model given is "
            f"{model.name} v{model.version}"
        )
    stamp = {
        "input_sha256": file_sha256(input_path),
        "input_path": str(input_path),
        "model_name": model.name,
        "model_version": model.version,
        "text_column": job.text_column,
        "id_column": job.id_column,
    }
    existing = read_output_stamp(output_path)
    if existing is not None:
        existing_stamp, existing_stats = existing
        unchanged = all(
            existing_stamp.get(key) == stamp[key]
            for key in ("input_sha256", "model_name", "model_version", "text_column", "id_column")
        )
        if unchanged:
            return _file_result(job, "skipped", existing_stats, time.perf_counter() - started)

    parquet = _open_input(input_path, job)
    layout = _output_layout(parquet.schema_arrow, job, stamp)
    remove_stale_temporaries(output_path)
    rows = 0
    positives = 0
    counts = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
    status_counts: dict[str, int] = {}
    with atomic_parquet_writer(output_path, layout.schema) as writer:
        batches = _prepared_batches(parquet, input_path, job, model)
        for prepared in prefetched(batches, prefetch_batches):
            size = prepared.batch.num_rows
            scores = np.zeros(size, dtype=np.float32)
            if prepared.token_ids.shape[0]:
                predicted = model.predict(prepared.token_ids)
                if predicted.shape[0] != prepared.token_ids.shape[0]:
                    raise ValueError(
                        f"model returned {predicted.shape[0]} scores for "
                        f"{prepared.token_ids.shape[0]} rows of {input_path}"
                    )
                scores[prepared.ok_mask] = predicted
                counts += score_counts(predicted)
                positives += int((predicted >= POSITIVE_THRESHOLD).sum())
            not_scored = ~prepared.ok_mask
            labels = np.where(scores >= POSITIVE_THRESHOLD, "positive", "negative")
            columns: list[pa.Array] = [
                _review_ids(prepared.batch, job, prepared.first_row, input_path),
                pa.array(scores, type=pa.float32(), mask=not_scored),
                pa.array(labels, type=pa.string(), mask=not_scored),
                prepared.statuses,
                pa.array([model.name] * size, type=pa.string()),
                pa.array(np.full(size, model.version, dtype=np.int64)),
                pa.array([clock()] * size, type=pa.timestamp("us", tz="UTC")),
            ]
            columns.extend(prepared.batch.column(name) for name, _ in layout.carried)
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=layout.schema))
            for status, count in zip(
                *np.unique(prepared.statuses.to_numpy(zero_copy_only=False), return_counts=True),
                strict=True,
            ):
                status_counts[str(status)] = status_counts.get(str(status), 0) + int(count)
            rows += size
        if rows != parquet.metadata.num_rows:
            raise InputFileError(
                f"{input_path}: read {rows} rows but the footer says {parquet.metadata.num_rows}"
            )
        stats = {
            "rows": rows,
            "status_counts": status_counts,
            "positives": positives,
            "score_counts": counts.tolist(),
            "input_sha256": stamp["input_sha256"],
        }
        writer.add_key_value_metadata({STATS_KEY: json.dumps(stats, sort_keys=True).encode()})
    return _file_result(job, "scored", stats, time.perf_counter() - started)


# ---------------------------------------------------------------------------------------------
# The run's summary and drift check


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [round(count / total, 6) if total else 0.0 for count in counts]


def population_stability_index(
    actual: Sequence[float], expected: Sequence[float], floor: float = 1e-4
) -> float:
    """PSI between two binned distributions; empty bins are floored so the log stays finite."""
    total = 0.0
    for actual_share, expected_share in zip(actual, expected, strict=True):
        a = max(actual_share, floor)
        e = max(expected_share, floor)
        total += (a - e) * math.log(a / e)
    return total


def compare_score_distributions(
    run_counts: Sequence[int],
    run_positives: int,
    model: ModelRef,
    threshold: float,
) -> DriftReport:
    """Compare this run's scores with the model's test split (PSI over the 10 score bins)."""
    rows = int(sum(run_counts))
    run_histogram = _shares(run_counts)
    run_positive_share = round(run_positives / rows, 6) if rows else None
    test_histogram = model.test_score_histogram
    if test_histogram is None:
        message = (
            f"{model.name} v{model.version} has no test_score_histogram in its manifest, "
            "so this run's scores cannot be compared with its test split"
        )
        psi = None
        drifted = False
    elif rows == 0:
        message = "no rows were scored by this run, so there is nothing to compare"
        psi = None
        drifted = False
    else:
        psi = round(population_stability_index(run_histogram, test_histogram), 4)
        drifted = psi > threshold
        target = f"the test split of {model.name} v{model.version}"
        if drifted:
            message = (
                f"the scores of {rows} rows have drifted from {target} "
                f"(PSI {psi:.4f}, above the threshold {threshold})"
            )
        else:
            message = (
                f"the scores of {rows} rows are close to {target} "
                f"(PSI {psi:.4f}, threshold {threshold})"
            )
        if rows < 1000:
            message += f"; only {rows} rows, so the comparison is noisy"
    return DriftReport(
        rows=rows,
        run_histogram=run_histogram,
        test_histogram=test_histogram,
        run_positive_share=run_positive_share,
        test_positive_rate=model.test_positive_rate,
        psi=psi,
        threshold=threshold,
        drifted=drifted,
        message=message,
    )


def summarize_run(
    model: ModelRef,
    output_dir: str,
    results: Sequence[FileResult],
    failures: Sequence[FileFailure],
    seconds: float,
    drift_threshold: float,
) -> ScoringSummary:
    """Totals over the files, and the drift check over the rows this run scored."""
    scored = [result for result in results if result.outcome == "scored"]
    skipped = [result for result in results if result.outcome == "skipped"]
    status_counts: dict[str, int] = {}
    for result in results:
        for status, count in result.status_counts.items():
            status_counts[status] = status_counts.get(status, 0) + count
    rows_ok = status_counts.get(STATUS_OK, 0)
    positives = sum(result.positives for result in results)
    rows_scored = sum(result.rows for result in scored)
    # Drift is about new data: the rows scored now; a run that only skipped compares those.
    drift_files = scored or skipped
    drift_counts = [
        sum(column) for column in zip(*(r.score_counts for r in drift_files), strict=True)
    ]
    drift = compare_score_distributions(
        drift_counts or [0] * HISTOGRAM_BINS,
        sum(result.positives for result in drift_files),
        model,
        drift_threshold,
    )
    if not scored and skipped:
        drift = drift.model_copy(
            update={
                "message": drift.message + " (every input was already scored; these are "
                "the stored outputs' scores)"
            }
        )
    return ScoringSummary(
        model_name=model.name,
        model_version=model.version,
        output_dir=output_dir,
        files_total=len(results) + len(failures),
        files_scored=len(scored),
        files_skipped=len(skipped),
        files_failed=len(failures),
        rows=sum(result.rows for result in results),
        rows_scored=rows_scored,
        rows_ok=rows_ok,
        rejected_by_reason={
            status: count for status, count in sorted(status_counts.items()) if status != STATUS_OK
        },
        positive_share=round(positives / rows_ok, 6) if rows_ok else None,
        rows_per_second=round(rows_scored / seconds, 1) if seconds > 0 else 0.0,
        seconds=round(seconds, 3),
        drift=drift,
        failures=list(failures),
        files=list(results),
    )


def _rejected_text(status_counts: Mapping[str, int]) -> str:
    rejected = {key: value for key, value in status_counts.items() if key != STATUS_OK}
    return ", ".join(f"{key}: {value}" for key, value in sorted(rejected.items())) or "none"


def summary_table(summary: ScoringSummary) -> list[dict[str, Any]]:
    """One row per file, then a total row: what the UI's summary table shows."""
    table: list[dict[str, Any]] = []
    for result in summary.files:
        ok = result.status_counts.get(STATUS_OK, 0)
        table.append(
            {
                "file": Path(result.input_path).name,
                "outcome": result.outcome,
                "rows": result.rows,
                "rejected": _rejected_text(result.status_counts),
                "positive_share": round(result.positives / ok, 4) if ok else None,
                "rows_per_second": round(result.rows / result.seconds, 1)
                if result.outcome == "scored" and result.seconds > 0
                else None,
                "error": "",
            }
        )
    for failure in summary.failures:
        table.append(
            {
                "file": Path(failure.input_path).name,
                "outcome": "failed",
                "rows": None,
                "rejected": "",
                "positive_share": None,
                "rows_per_second": None,
                "error": failure.error,
            }
        )
    table.append(
        {
            "file": f"total ({summary.files_total} files)",
            "outcome": f"{summary.files_scored} scored, {summary.files_skipped} skipped, "
            f"{summary.files_failed} failed",
            "rows": summary.rows,
            "rejected": _rejected_text(summary.rejected_by_reason),
            "positive_share": summary.positive_share,
            "rows_per_second": summary.rows_per_second,
            "error": "",
        }
    )
    return table


def _bar(share: float, width: int = 20) -> str:
    return "█" * round(share * width)


def render_distribution_markdown(summary: ScoringSummary) -> str:
    """Markdown: this run's score histogram next to the test split's, and the verdict."""
    drift = summary.drift
    lines = [f"## Scores of {summary.model_name} v{summary.model_version}", ""]
    sentence = drift.message[:1].upper() + drift.message[1:] + "."
    if drift.drifted:
        lines += [f"> **Warning: drift.** {sentence}", ""]
    else:
        lines += [sentence, ""]
    test = drift.test_histogram
    lines += ["| score | this run | | test split | |", "|---|---:|---|---:|---|"]
    for index, share in enumerate(drift.run_histogram):
        low, high = index / HISTOGRAM_BINS, (index + 1) / HISTOGRAM_BINS
        bracket = "]" if index == HISTOGRAM_BINS - 1 else ")"
        test_cells = f"{test[index]:.1%} | {_bar(test[index])}" if test else "n/a | "
        lines.append(
            f"| [{low:.1f}, {high:.1f}{bracket} | {share:.1%} | {_bar(share)} | {test_cells} |"
        )
    lines.append("")

    def share_text(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    lines += [
        f"Positive share: this run {share_text(drift.run_positive_share)}, "
        f"test split {share_text(drift.test_positive_rate)}.",
        "",
        f"Files: {summary.files_scored} scored, {summary.files_skipped} skipped, "
        f"{summary.files_failed} failed. Rows: {summary.rows} ({summary.rows_scored} scored now, "
        f"{summary.rows_per_second} rows/s); "
        f"rejected: {_rejected_text(summary.rejected_by_reason)}.",
    ]
    if summary.failures:
        lines += ["", "### Failed files", ""]
        lines += [f"- `{failure.input_path}`: {failure.error}" for failure in summary.failures]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Prefect tasks: thin wrappers


def _is_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry I/O hiccups (a full disk, a network share), never a bad input file."""
    error = state.data
    return (
        isinstance(error, OSError)
        and not isinstance(error, FileNotFoundError | PermissionError)
        and not isinstance(error, InputFileError)
    )


@task(
    name="resolve-model",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=_is_transient,
)
def resolve_model(store_root: str, name: str, ref: str) -> ModelRef:
    """Resolve the version or alias once, and check that the version loads."""
    model = resolve_model_version(store_root, name, ref)
    get_run_logger().info("scoring with %s v%d (asked for %r)", name, model.version, ref)
    return model


@task(name="plan-jobs", cache_policy=NO_CACHE)
def plan_jobs_task(
    input_path: str,
    output_root: str,
    model: ModelRef,
    text_column: str,
    id_column: str,
    batch_size: int,
) -> list[ScoringJob]:
    """Find the input files and give each its output path."""
    jobs = plan_jobs(input_path, Path(output_root), model, text_column, id_column, batch_size)
    get_run_logger().info("%d input file(s) under %s", len(jobs), input_path)
    return jobs


@task(
    name="batch-predict",
    task_run_name="batch-predict-{job.stem}",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=5,
    retry_condition_fn=_is_transient,
)
def batch_predict(job: ScoringJob) -> FileResult:
    """Score one file with the job's model version (loaded once per worker process)."""
    logger = get_run_logger()
    model = load_scoring_model(job.model.store_root, job.model.name, job.model.version)
    result = score_file(job, model)
    if result.outcome == "skipped":
        logger.info("%s: output for this input and version exists, skipped", job.input_path)
    else:
        logger.info(
            "%s: %d rows (rejected: %s) in %.1fs -> %s",
            job.input_path,
            result.rows,
            _rejected_text(result.status_counts),
            result.seconds,
            job.output_path,
        )
    return result


@task(name="summarize", cache_policy=NO_CACHE)
def summarize_task(
    model: ModelRef,
    output_dir: str,
    results: list[FileResult],
    failures: list[FileFailure],
    seconds: float,
    drift_threshold: float,
) -> ScoringSummary:
    """Add up the files' results and compare the score distribution with the test split."""
    return summarize_run(model, output_dir, results, failures, seconds, drift_threshold)


@task(name="publish-summary", cache_policy=NO_CACHE)
def publish_summary(summary: ScoringSummary) -> None:
    """The summary table and score-distribution artifacts, and the warnings in the log."""
    logger = get_run_logger()
    create_table_artifact(
        table=summary_table(summary),
        key="scoring-summary",
        description=f"Scoring with {summary.model_name} v{summary.model_version}",
    )
    create_markdown_artifact(
        markdown=render_distribution_markdown(summary),
        key="scoring-score-distribution",
        description="This run's score distribution next to the test split's",
    )
    logger.info(
        "%d files (%d scored, %d skipped, %d failed), %d rows, %.1f rows/s, positive share %s",
        summary.files_total,
        summary.files_scored,
        summary.files_skipped,
        summary.files_failed,
        summary.rows,
        summary.rows_per_second,
        summary.positive_share,
    )
    if summary.drift.drifted:
        logger.warning("drift: %s", summary.drift.message)
    elif summary.drift.psi is None:
        logger.info("%s", summary.drift.message)
    for failure in summary.failures:
        logger.error("failed: %s: %s", failure.input_path, failure.error)
