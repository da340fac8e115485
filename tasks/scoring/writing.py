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
from tasks.scoring.records import (
    FileFailure,
    FileResult,
    FolderReport,
    ResolvedModel,
    ScoringPlan,
    total_status_counts,
)

__all__ = [
    "atomic_parquet_writer",
    "read_output_stamp",
    "settle_output_folders",
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
        # The folder's completion marker goes before any of its outputs changes, so no reader
        # is told a folder is complete while it is being rescored.
        (output.parent / COMPLETION_MARKER).delete()
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


def settle_output_folders(
    plan: ScoringPlan,
    results: Sequence[FileResult],
    failures: Sequence[FileFailure],
    model: ResolvedModel,
    run_id: str | None,
    *,
    retire_vanished: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> FolderReport:
    """Make each output folder of the run describe exactly its input folder's current inputs,
    then give it a `_SUCCESS` when every one of them is scored.

    Only folders whose every input the run planned (`plan.whole_folders_under`) are settled: an
    output there whose input left a folder that is still there (re-landed under new names) is
    removed; one whose whole input folder is gone is kept (predictions outlive raw data) and
    reported, or removed with `retire_vanished`. A folder with a failed input gets no marker
    (and keeps none from an earlier run), so a downstream job that waits for the marker never
    reads a half-scored night; a run of one file or a glob never writes one.
    """
    report = FolderReport()
    failed_folders = {locate(failure.output_path).parent for failure in failures}
    for folder in failed_folders:
        (folder / COMPLETION_MARKER).delete()
    if plan.whole_folders_under is None:
        return report
    output_dir = locate(plan.output_dir)
    results = [*results, *plan.unchanged]  # a folder's marker counts its unchanged files too
    planned = {job.output_path for job in plan.jobs} | {kept.output_path for kept in plan.unchanged}
    planned_folders = {locate(path).parent for path in planned}
    scope = output_dir.joinpath(plan.whole_folders_under)
    for relative in scope.files_below() if scope.is_dir() else []:
        output = scope.joinpath(relative)
        if not _is_output_name(output.name) or output.uri in planned:
            continue
        stamp = read_output_stamp(output)
        if stamp is None:
            continue  # not ours: never removed
        if output.parent in planned_folders:
            (output.parent / COMPLETION_MARKER).delete()
            output.delete()
            report.replaced.append(output.uri)
        elif retire_vanished:
            (output.parent / COMPLETION_MARKER).delete()
            output.delete()
            report.retired.append(output.uri)
        else:
            report.vanished.append(output.uri)
    by_folder: dict[Location, list[FileResult]] = {}
    for result in results:
        by_folder.setdefault(locate(result.output_path).parent, []).append(result)
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
        report.completed.append(folder.uri)
    return report


def _is_output_name(name: str) -> bool:
    """An output file's name: Parquet, not a temporary or a marker (`.` or `_` first)."""
    return name.endswith(".parquet") and not name.startswith((".", "_"))
