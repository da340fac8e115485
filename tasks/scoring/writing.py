"""Outputs appear whole or not at all: a temporary file, then published in one step.

On a local disk the temporary lies in the output folder and is renamed into place; for object
storage it lies in this machine's private staging folder and is uploaded in one PUT (or one
completed multipart upload), which is atomic. Either way a new output is published only if no
file took its name meanwhile (a link, or If-None-Match: *), so two runs scoring the same input
at once leave one output, never a mix. Temporaries are named
`.<output name>.<host>.<pid>.<random>.tmp` (storage.files.temporary_path), so a rerun can
tell those of a dead writer (removed) from those of a live one (left alone). Readers
(`pyarrow.dataset`, DuckDB, Polars, Spark) skip names starting with `.`, so they never see one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from storage import Location, fault_point, locate
from storage.files import dump_json
from tasks.scoring.contract import COMPLETION_MARKER, STAMP_KEY, STATS_KEY
from tasks.scoring.records import FileFailure, FileResult, ResolvedModel, total_status_counts

__all__ = [
    "atomic_parquet_writer",
    "mark_complete_folders",
    "read_output_stamp",
    "write_completion_marker",
]


@contextmanager
def atomic_parquet_writer(
    output: Location, schema: pa.Schema, *, exclusive: bool
) -> Iterator[pq.ParquetWriter]:
    """A ParquetWriter on a temporary file, published as `output` when the block succeeds.

    With `exclusive`, an output that appeared meanwhile is not replaced: FileExistsError.
    """
    temporary = output.new_temporary()
    writer = pq.ParquetWriter(temporary, schema, compression="zstd")
    try:
        yield writer
        writer.close()
        fault_point("score.before-publish")
        published = output.publish(temporary, exclusive=exclusive)
    except BaseException:
        writer.close()
        temporary.unlink(missing_ok=True)
        raise
    if not published:
        raise FileExistsError(f"{output}: written by another run while this one scored it")


def read_output_stamp(output: Location) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The stamp and stats of a finished output file, or None when there is no usable one."""
    try:
        with output.open_read() as stream:
            metadata = pq.read_metadata(stream).metadata or {}
        return json.loads(metadata[STAMP_KEY]), json.loads(metadata[STATS_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def write_completion_marker(folder: Location, content: Mapping[str, Any]) -> Location:
    """Spark's `_SUCCESS`: written last, atomically, when every file in `folder` is complete."""
    marker = folder / COMPLETION_MARKER
    marker.write_atomically((dump_json(dict(content)) + "\n").encode("utf-8"))
    return marker


def mark_complete_folders(
    results: Sequence[FileResult],
    failures: Sequence[FileFailure],
    model: ResolvedModel,
    run_id: str | None,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> list[str]:
    """Give each output folder whose every input succeeded a `_SUCCESS` with what is in it.

    A folder with a failed input gets none (and keeps none from an earlier run), so a downstream
    job that waits for the marker never reads a half-scored night. Returns the folders marked.
    """
    failed_folders = {locate(failure.output_path).parent for failure in failures}
    by_folder: dict[Location, list[FileResult]] = {}
    for result in results:
        by_folder.setdefault(locate(result.output_path).parent, []).append(result)
    for folder in failed_folders:
        (folder / COMPLETION_MARKER).delete()
    marked: list[str] = []
    for folder, folder_results in sorted(by_folder.items(), key=lambda item: item[0].uri):
        if folder in failed_folders:
            continue
        nothing_new = all(result.outcome == "skipped" for result in folder_results)
        if nothing_new and (folder / COMPLETION_MARKER).exists():
            continue  # the run that scored these files already said so
        write_completion_marker(
            folder,
            {
                "flow_run_id": run_id,
                "model_name": model.name,
                "model_version": model.version,
                "model_manifest_sha256": model.manifest_sha256,
                "model_store": model.store_root,
                "completed_at": clock().isoformat(),
                "rows": sum(result.rows for result in folder_results),
                "status_counts": total_status_counts(
                    result.status_counts for result in folder_results
                ),
                "files": [
                    {"file": locate(result.output_path).name, "rows": result.rows}
                    for result in sorted(folder_results, key=lambda result: result.output_path)
                ],
            },
        )
        marked.append(folder.uri)
    return marked
