"""Which files a run scores, and where each one's output goes.

An output mirrors its input's path under the input root (tasks.parquet_files finds both), so
partitions stay partitions and no two inputs share an output. Hive partition folders
(`day=2026-11-28`) at the end of the input path are kept in that relative path, so scoring one
night's partition writes where scoring the whole dataset would.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from model_store import sha256_of_file
from tasks.parquet_files import IGNORED_PREFIXES, find_parquet_files
from tasks.scoring.records import (
    DEFAULT_BATCH_SIZE,
    InputFileError,
    ResolvedModel,
    ScoringError,
    ScoringJob,
    ScoringPlan,
)

__all__ = [
    "check_paths_do_not_overlap",
    "input_sha256",
    "output_dir_for",
    "partition_input_path",
    "plan_jobs",
]


def _contains(folder: Path, path: Path) -> bool:
    return path == folder or folder in path.parents


def check_paths_do_not_overlap(input_root: Path, inputs: Sequence[Path], output_root: Path) -> None:
    """Refuse an output root inside the input root, or one that holds the inputs."""
    if output_root.exists() and not output_root.is_dir():
        raise NotADirectoryError(f"output_root: {output_root} exists and is not a folder")
    output = output_root.resolve()
    root = input_root.resolve()
    if _contains(root, output) or _contains(output, root):
        raise ScoringError(
            f"input root {input_root} and output root {output_root} overlap; "
            "choose an output root outside the input folder"
        )
    for path in inputs:
        if _contains(output, path.resolve()):
            raise ScoringError(f"input file {path} lies inside the output root {output_root}")


def output_dir_for(output_root: Path, model_name: str, version: int) -> Path:
    """<output root>/<model name>/v<N>/, as docs/design.md fixes it."""
    return output_root / model_name / f"v{version}"


def partition_input_path(input_path: str, partition: str, scheduled_date: date) -> str:
    """`<input_path>/<partition>` with `{scheduled_date}` filled in (YYYY-MM-DD).

    A missing partition is an error, not an empty night: upstream data that did not land is
    something to be told about. The message names the partitions that are there.
    """
    try:
        folder_name = partition.format(scheduled_date=scheduled_date.isoformat())
    except (KeyError, IndexError, ValueError) as error:
        raise ScoringError(
            f"partition: {partition!r} is not a template with only {{scheduled_date}} in it"
        ) from error
    path = Path(input_path) / folder_name
    if not path.exists():
        present = (
            sorted(
                child.name
                for child in Path(input_path).iterdir()
                if child.is_dir() and not child.name.startswith(IGNORED_PREFIXES)
            )
            if Path(input_path).is_dir()
            else []
        )
        latest = f"; the latest there is {present[-1]}" if present else ""
        raise FileNotFoundError(
            f"partition: {folder_name} not found under {input_path} "
            f"(scheduled date {scheduled_date.isoformat()}){latest}"
        )
    return str(path)


def plan_jobs(
    input_path: str,
    output_root: Path,
    model: ResolvedModel,
    text_column: str = "text",
    id_column: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> ScoringPlan:
    """One job per input file, its output at the same relative path under the version's folder."""
    try:
        input_root, inputs, skipped = find_parquet_files(input_path)
    except ValueError as error:
        raise ScoringError(str(error)) from error
    check_paths_do_not_overlap(input_root, inputs, output_root)
    output_dir = output_dir_for(output_root.absolute(), model.name, model.version)
    jobs = []
    for path in inputs:
        relative = path.absolute().relative_to(input_root).as_posix()
        jobs.append(
            ScoringJob(
                input_path=str(path.absolute()),
                relative_path=relative,
                output_path=str(output_dir / relative),
                model=model,
                text_column=text_column,
                id_column=id_column,
                batch_size=batch_size,
            )
        )
    return ScoringPlan(
        input_root=str(input_root), output_dir=str(output_dir), jobs=jobs, skipped=skipped
    )


def input_sha256(path: Path) -> str:
    """sha256 of an input file; a read error names the file."""
    try:
        return sha256_of_file(path)
    except OSError as error:
        raise InputFileError(f"{path}: cannot read the file: {error}") from error
