"""Outputs appear whole or not at all: a temporary file in the output folder, then a rename.

Temporaries are named `.<output name>.<host>.<pid>.<random>.tmp`, so a rerun can tell those of
a dead writer (removed) from those of a live one (left alone). Readers (`pyarrow.dataset`, DuckDB,
Polars, Spark) skip names starting with `.`, so they never see a temporary.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from model_store._fs import fsync_directory, fsync_file, write_json_atomically
from tasks.scoring.contract import COMPLETION_MARKER, STAMP_KEY, STATS_KEY
from tasks.scoring.records import FileFailure, FileResult

__all__ = [
    "atomic_parquet_writer",
    "mark_complete_folders",
    "read_output_stamp",
    "remove_stale_temporaries",
    "write_completion_marker",
]

TEMPORARY_SUFFIX = ".tmp"
# Temporaries older than this are stale even when their writer may live on another machine.
STALE_TEMPORARY_SECONDS = 6 * 3600


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

    A temporary is stale when its process no longer runs on this host, or when it is older
    than STALE_TEMPORARY_SECONDS.
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
        fsync_file(temporary)
        os.replace(temporary, output_path)
    except BaseException:
        writer.close()
        temporary.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # not every filesystem can fsync a folder
        fsync_directory(output_path.parent)


def read_output_stamp(output_path: Path) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The stamp and stats of a finished output file, or None when there is no usable one."""
    try:
        metadata = pq.read_metadata(output_path).metadata or {}
        return json.loads(metadata[STAMP_KEY]), json.loads(metadata[STATS_KEY])
    except (OSError, KeyError, ValueError, pa.ArrowException):
        return None


def write_completion_marker(folder: Path, content: Mapping[str, Any]) -> Path:
    """Spark's `_SUCCESS`: written last, atomically, when every file in `folder` is complete."""
    marker = folder / COMPLETION_MARKER
    write_json_atomically(marker, dict(content))
    return marker


def mark_complete_folders(
    results: Sequence[FileResult],
    failures: Sequence[FileFailure],
    model_name: str,
    model_version: int,
    run_id: str | None,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> list[str]:
    """Give each output folder whose every input succeeded a `_SUCCESS` with what is in it.

    A folder with a failed input gets none (and keeps none from an earlier run), so a downstream
    job that waits for the marker never reads a half-scored night. Returns the folders marked.
    """
    failed_folders = {Path(failure.output_path).parent for failure in failures}
    by_folder: dict[Path, list[FileResult]] = {}
    for result in results:
        by_folder.setdefault(Path(result.output_path).parent, []).append(result)
    for folder in failed_folders:
        (folder / COMPLETION_MARKER).unlink(missing_ok=True)
    marked: list[str] = []
    for folder, folder_results in sorted(by_folder.items()):
        if folder in failed_folders:
            continue
        nothing_new = all(result.outcome == "skipped" for result in folder_results)
        if nothing_new and (folder / COMPLETION_MARKER).exists():
            continue  # the run that scored these files already said so
        status_counts: dict[str, int] = {}
        for result in folder_results:
            for status, count in result.status_counts.items():
                status_counts[status] = status_counts.get(status, 0) + count
        write_completion_marker(
            folder,
            {
                "flow_run_id": run_id,
                "model_name": model_name,
                "model_version": model_version,
                "completed_at": clock().isoformat(),
                "rows": sum(result.rows for result in folder_results),
                "status_counts": dict(sorted(status_counts.items())),
                "files": [
                    {"file": Path(result.output_path).name, "rows": result.rows}
                    for result in sorted(folder_results, key=lambda result: result.output_path)
                ],
            },
        )
        marked.append(str(folder))
    return marked
