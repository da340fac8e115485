"""The predictions table: every model's current outputs under an output root, as one Delta Lake
table that downstream jobs read without knowing about `v<N>/` folders.

`<output root>/_predictions` (delta-rs, no JVM; a local folder or `s3://`) holds the rows of each
output the scoring history lists, with the output's columns (model name, version and manifest
sha256 in every row) and where they came from: the input's path under the input root, its
folder, and the run that scored it. The per-file Parquet outputs stay the source; the table
follows them, one commit per run that changed any (the first run also makes the table, empty):

- an input scored by the run (new, re-landed, rescored with a new champion) has its rows
  replaced: the commit removes the input's old rows and adds its new ones at once, so no
  reader sees an input twice or half;
- an input whose output the run removed (`history.table_removals`) loses its rows in the same
  commit;
- outputs the table does not hold yet (a commit refused last night, a table made anew) are
  added by the next run, so nothing scored is lost from it.

Rows are replaced by input, never wholesale, so a commit's conflicts are delta-rs's to see: two
runs committing at once both land when they touch different inputs (delta-rs retries on the
table's log, with conditional writes on S3); when they touch the same input, the later is worked
out again from the table and history as they are then, and after a few refusals its run fails
saying so and the next run adds its rows. The commit's metadata names the run, the model and
what changed, so the table's history says which run wrote what; `DeltaTable(uri, version=N)` or
`load_as_version` reads an earlier table.
"""

from __future__ import annotations

import posixpath
import random
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from storage import Location, fault_point, locate
from tasks.scoring.contract import OUTPUT_COLUMNS
from tasks.scoring.history import ScoringHistory, history_location
from tasks.scoring.records import FileResult, ResolvedModel, ScoringError, TableCommit

if TYPE_CHECKING:
    from deltalake import DeltaTable

__all__ = [
    "PROVENANCE_COLUMNS",
    "TABLE_FOLDER",
    "TableCommitError",
    "sync_predictions_table",
    "table_location",
]

TABLE_FOLDER = "_predictions"  # `_` first: readers of the output root's Parquet files skip it
# Where each row came from, after the output's fixed columns: the input's path under the input
# root, its folder ('' at the root), the run that scored it.
PROVENANCE_COLUMNS = ("input_file", "input_folder", "flow_run_id")
# A commit refused because another run's touched the same inputs is worked out again this often.
_ATTEMPTS = 5
_PROVENANCE_FIELDS = [
    pa.field("input_file", pa.string(), nullable=False),
    pa.field("input_folder", pa.string(), nullable=False),
    pa.field("flow_run_id", pa.string()),
]


class _Addition(NamedTuple):
    """An output whose rows go into the table, and the run that scored it."""

    output_path: str
    run_id: str | None


class TableCommitError(ScoringError):
    """The run's commit to the predictions table was refused or failed; its outputs are written
    and the next run adds them to the table."""


def table_location(output_root: str) -> Location:
    """Where the predictions table of `output_root` lives."""
    return locate(output_root, "output_root").joinpath(TABLE_FOLDER)


def sync_predictions_table(
    output_root: str,
    model: ResolvedModel,
    run_id: str | None,
    results: Sequence[FileResult] = (),
) -> TableCommit:
    """Bring the table up to `model`'s scoring history and this run's `results` in one commit,
    then mark in the history what the table holds. A commit that another run's beat to the
    same inputs is worked out again from the table and history as they are then;
    TableCommitError when it is still refused after a few tries, or fails."""
    from deltalake.exceptions import CommitFailedError, DeltaError

    table = table_location(output_root)
    refusal = ""
    for attempt in range(_ATTEMPTS):
        try:
            commit = _commit(table, output_root, model, run_id, results)
            return commit.model_copy(update={"refusals": attempt})
        except CommitFailedError as error:
            refusal = _first_line(error)
            # Apart, so the run that won has marked what it committed before this one looks.
            time.sleep(random.uniform(0.5, 1.5) * (attempt + 1))
        except (DeltaError, pa.ArrowException, OSError) as error:
            raise TableCommitError(
                f"predictions table {table.uri}: the commit failed: {_first_line(error)}; this "
                "run's outputs are written, and the next run tries the table again"
            ) from None
    raise TableCommitError(
        f"predictions table {table.uri}: other runs committed the same inputs at the same time, "
        f"so this run's commit was refused {_ATTEMPTS} times ({refusal}); its outputs are "
        "written, and the next run adds them to the table"
    )


def _commit(
    table: Location,
    output_root: str,
    model: ResolvedModel,
    run_id: str | None,
    results: Sequence[FileResult],
) -> TableCommit:
    from deltalake import CommitProperties, DeltaTable, write_deltalake
    from deltalake.exceptions import TableNotFoundError

    target = str(table.local_path) if table.is_local else table.uri
    options = table.object_store_options()
    try:
        current: DeltaTable | None = DeltaTable(target, storage_options=options)
    except TableNotFoundError:
        current = None
    table_id = current.metadata().id if current is not None else None
    location = history_location(output_root, model.name)
    history = ScoringHistory.read(location)
    anew = table_id is None or table_id != history.table_id
    additions = {
        relative: _Addition(scored.result.output_path, scored.run_id)
        for relative, scored in history.inputs.items()
        if anew or scored.table_version is None
    }
    # This run's own outputs whatever the history says (a run finishing at the same time may
    # have written it without them).
    for result in results:
        if result.outcome == "scored":
            additions[result.relative_path] = _Addition(result.output_path, run_id)
    missing = [
        relative
        for relative, addition in additions.items()
        if not locate(addition.output_path).is_file()
    ]
    for relative in missing:
        del additions[relative]
    removals = sorted((set(history.table_removals) | set(missing)) - set(additions))
    if not additions and (current is None or (not anew and not removals)):
        version = current.version() if current is not None else None
        return TableCommit(table=table.uri, version=version)

    schema = _table_schema(additions, current)
    if current is None:
        # Made empty first: two runs making it at once both land, and their rows then go in
        # by the commit below, whose conflicts delta-rs sees (two appends would not).
        write_deltalake(target, schema.empty_table(), mode="append", storage_options=options)
        current = DeltaTable(target, storage_options=options)
    rows = _RowCounter()
    reader = pa.RecordBatchReader.from_batches(schema, rows.count(_rows(additions, schema)))
    # Rows are replaced by input, never by model: a run replaces only what it read.
    touched = sorted(set(additions) | set(removals))
    predicate = (
        f"model_name = {_sql_text(model.name)} "
        f"AND input_file IN ({', '.join(map(_sql_text, touched))})"
    )
    metadata = {
        "flow_run_id": run_id or "",
        "model_name": model.name,
        "model_version": str(model.version),
        "model_manifest_sha256": model.manifest_sha256 or "",
        "files_added": str(len(additions)),
        "files_removed": str(len(removals)),
    }
    fault_point("table.before-commit")
    write_deltalake(
        current,  # the version the rows were worked out on: a commit since is a conflict to see
        reader,
        mode="overwrite",
        predicate=predicate,
        schema_mode="merge",
        commit_properties=CommitProperties(custom_metadata=metadata),
    )
    committed = DeltaTable(target, storage_options=options)
    _mark(location, committed.metadata().id, committed.version(), additions, removals)
    return TableCommit(
        table=table.uri,
        version=committed.version(),
        committed=True,
        files_added=len(additions),
        rows_added=rows.total,
        files_removed=len(removals),
    )


def _mark(
    location: Location,
    table_id: str,
    version: int,
    additions: dict[str, _Addition],
    removals: Sequence[str],
) -> None:
    """Record what the table now holds, in the history as it is now (a run that finished
    meanwhile keeps its entries; one whose entry changed since is added again next time)."""
    history = ScoringHistory.read(location)
    if history.table_id != table_id:
        history = history.model_copy(update={"table_id": table_id})
        for scored in history.inputs.values():
            scored.table_version = None
    for relative, added in additions.items():
        scored = history.inputs.get(relative)
        if scored is not None and scored.result.output_path == added.output_path:
            scored.table_version = version
    done = set(removals)
    history.table_removals = [path for path in history.table_removals if path not in done]
    history.write(location)


def _table_schema(additions: dict[str, _Addition], current: DeltaTable | None) -> pa.Schema:
    """The output's fixed columns, then where each row came from, then every carried input
    column any of the outputs has (read from their footers), promoted to one type each."""
    if not additions:
        assert current is not None
        return pa.schema(current.schema().to_arrow())  # only removals: an empty write
    schemas = []
    for addition in additions.values():
        with locate(addition.output_path).open_read() as stream:
            schemas.append(pq.read_schema(stream).remove_metadata())
    try:
        merged = pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise TableCommitError(
            f"predictions table: the outputs' columns do not agree: {_first_line(error)}"
        ) from None
    fixed = [merged.field(name) for name in OUTPUT_COLUMNS]
    carried = [field for field in merged if field.name not in OUTPUT_COLUMNS]
    return pa.schema([*fixed, *_PROVENANCE_FIELDS, *carried])


def _rows(additions: dict[str, _Addition], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Each addition's output rows, batch by batch (a night's worth is never held at once),
    with where they came from, in the table's schema."""
    for relative, addition in sorted(additions.items()):
        provenance = {
            "input_file": relative,
            "input_folder": posixpath.dirname(relative),
            "flow_run_id": addition.run_id,
        }
        with locate(addition.output_path).open_read() as stream:
            for batch in pq.ParquetFile(stream).iter_batches():
                columns = []
                for field in schema:
                    if field.name in provenance:
                        value = provenance[field.name]
                        columns.append(pa.array([value] * batch.num_rows, field.type))
                    elif field.name in batch.schema.names:
                        columns.append(batch.column(field.name).cast(field.type))
                    else:
                        columns.append(pa.nulls(batch.num_rows, field.type))
                yield pa.RecordBatch.from_arrays(columns, schema=schema)


class _RowCounter:
    def __init__(self) -> None:
        self.total = 0

    def count(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self.total += batch.num_rows
            yield batch


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
