"""Which files a run scores, and where each one's output goes.

An output mirrors its input's path under the input root (tasks.parquet_files finds both), so
partitions stay partitions and no two inputs share an output. Hive partition folders
(`day=2026-11-28`) at the end of the input path are kept in that relative path, so scoring one
night's partition writes where scoring the whole dataset would. Inputs and outputs may each be
on the local disk or in object storage (storage/location.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import date

from storage import InvalidParameterError, Location, MissingPathError, NotAFolderError, locate
from tasks.contract import TEXT_COLUMN
from tasks.parquet_files import IGNORED_PREFIXES, find_parquet_files, relative_path
from tasks.scoring.history import ScoredInput, ScoringHistory, history_location
from tasks.scoring.records import (
    DEFAULT_BATCH_SIZE,
    EarlierVersions,
    ResolvedModel,
    ScoringError,
    ScoringJob,
    ScoringPlan,
)

__all__ = [
    "WHERE_REVIEWS_GO",
    "check_paths_do_not_overlap",
    "output_dir_for",
    "partition_folder",
    "partition_input_path",
    "plan_jobs",
]

# What a run with nothing to read tells its operator (a new checkout has no data/reviews).
WHERE_REVIEWS_GO = (
    "put review Parquet files there, or point input_path at them: in the run form for one run, "
    "with --input-path on the command line, or for good with REVIEW_SCORING_INPUT_DIR then "
    "`make deploy` (samples/reviews holds sample reviews)"
)


def check_paths_do_not_overlap(
    input_root: Location, inputs: Sequence[Location], output_root: Location
) -> None:
    """Refuse an output root inside the input root, or one that holds the inputs."""
    if output_root.is_local and output_root.exists() and not output_root.is_dir():
        raise NotAFolderError(f"output_root: {output_root} exists and is not a folder")
    if input_root.contains(output_root) or output_root.contains(input_root):
        raise ScoringError(
            f"input root {input_root} and output root {output_root} overlap; "
            "choose an output root outside the input folder"
        )
    for location in inputs:
        if output_root.contains(location):
            raise ScoringError(f"input file {location} lies inside the output root {output_root}")


def output_dir_for(output_root: Location, model_name: str, version: int) -> Location:
    """<output root>/<model name>/v<N>/, as docs/design.md fixes it."""
    return output_root.joinpath(model_name, f"v{version}")


def check_partition(partition: str) -> str:
    """The partition, or InvalidParameterError when it would leave the input path: absolute,
    or with a `..` folder in it."""
    parts = partition.replace("\\", "/").split("/")
    if partition.startswith(("/", "\\")) or "://" in partition or ".." in parts:
        raise InvalidParameterError(
            f"partition: {partition!r} must be a folder below input_path, such as "
            "'day={scheduled_date}': no leading '/', no '..', no URI"
        )
    return partition


def partition_folder(partition: str, scheduled_date: date) -> str:
    """The partition template with `{scheduled_date}` filled in: `day=2026-12-08`."""
    try:
        return partition.format(scheduled_date=scheduled_date.isoformat())
    except (KeyError, IndexError, ValueError) as error:
        raise ScoringError(
            f"partition: {partition!r} is not a template with only {{scheduled_date}} in it"
        ) from error


def partition_input_path(input_path: str, partition: str, scheduled_date: date) -> str:
    """`<input_path>/<partition>` with `{scheduled_date}` filled in (YYYY-MM-DD).

    A missing partition is an error, not an empty night: upstream data that did not land is
    something to be told about. The message names the partitions that are there.
    """
    check_partition(partition)
    folder_name = partition_folder(partition, scheduled_date)
    parent = locate(input_path, "input_path")
    location = parent.joinpath(folder_name)
    if not location.exists():
        present = (
            [
                name
                for name, is_folder in parent.child_names()
                if is_folder and not name.startswith(IGNORED_PREFIXES)
            ]
            if parent.is_dir()
            else []
        )
        latest = f"; the latest there is {present[-1]}" if present else ""
        raise MissingPathError(
            f"partition: {folder_name} not found under {input_path} "
            f"(scheduled date {scheduled_date.isoformat()}){latest}"
        )
    return location.uri


def plan_jobs(
    input_path: str,
    output_root: str | os.PathLike[str],
    model: ResolvedModel,
    text_column: str = TEXT_COLUMN,
    id_column: str | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dataset_root: str | None = None,
    rescore_history: bool = False,
) -> ScoringPlan:
    """One job per input file, its output at the same relative path under the version's folder.
    With `dataset_root` (one partition of it is scored), paths are relative to that root, so
    the partition's folders, `day=` or not, are kept.

    An input the history says is scored as it is now is left alone: by this model, or, after a
    promotion, by an earlier version of it (its labels stay until `rescore_history` asks for
    the new champion's; the plan says what that would cost)."""
    try:
        input_root, inputs, skipped = find_parquet_files(input_path)
    except MissingPathError as error:
        if "; " in str(error):  # it already says what to do (a missing bucket)
            raise
        raise MissingPathError(f"{error}; {WHERE_REVIEWS_GO}") from None
    except ValueError as error:
        raise ScoringError(str(error)) from error
    if dataset_root is not None:
        input_root = locate(dataset_root, "input_path")
    output_location = locate(output_root, "output_root")
    output_location.check_can_hold("output_root")  # once here, not once per file
    check_paths_do_not_overlap(input_root, inputs, output_location)
    output_dir = output_dir_for(output_location, model.name, model.version)
    model_folder = output_location.joinpath(model.name)
    history = ScoringHistory.read(history_location(output_location.uri, model.name))
    # One listing of the outputs, so that checking a skipped input's output costs no request.
    outputs = (
        {model_folder.joinpath(name).uri for name in model_folder.files_below()}
        if history.inputs and model_folder.is_dir()
        else set()
    )
    jobs, unchanged, by_earlier_versions = [], [], []
    for location in inputs:
        relative = relative_path(input_root, location)
        job = ScoringJob(
            input_path=location.uri,
            relative_path=relative,
            output_path=output_dir.joinpath(relative).uri,
            model=model,
            text_column=text_column,
            id_column=id_column,
            batch_size=batch_size,
            input_facts=location.facts(),
        )
        scored = history.inputs.get(relative)
        if scored is not None and _still_current(scored, job, outputs):
            unchanged.append(scored.result.model_copy(update={"outcome": "skipped"}))
        elif scored is not None and _scored_by_an_earlier_version(scored, job, outputs):
            by_earlier_versions.append(scored)
            if rescore_history:
                jobs.append(job)
        else:
            jobs.append(job)
    rows = sum(scored.result.rows for scored in by_earlier_versions)
    rate = history.rows_per_second
    return ScoringPlan(
        input_root=input_root.uri,
        output_dir=output_dir.uri,
        jobs=jobs,
        skipped=skipped,
        unchanged=unchanged,
        whole_folders_under=_folder_under_root(input_path, input_root),
        earlier_versions=EarlierVersions(
            files=len(by_earlier_versions),
            rows=rows,
            versions=sorted({scored.model_version for scored in by_earlier_versions}),
            rows_per_second=rate,
            estimated_seconds=round(rows / rate, 1) if rate and by_earlier_versions else None,
            rescored=rescore_history,
        ),
    )


def _scored_by_an_earlier_version(scored: ScoredInput, job: ScoringJob, outputs: set[str]) -> bool:
    """Whether `job`'s input, as it is now, was scored by an earlier version of this model, and
    that output is still there: history, kept until a rescore is asked for."""
    return (
        scored.input_facts == job.input_facts
        and scored.result.input_path == job.input_path
        and scored.result.output_path in outputs
        and scored.model_version < job.model.version
        and (scored.text_column, scored.id_column) == (job.text_column, job.id_column)
    )


def _still_current(scored: ScoredInput, job: ScoringJob, outputs: set[str]) -> bool:
    """Whether the history says `job`'s input was scored as it is now, by this model, with these
    columns, into an output that is still there."""
    return (
        scored.input_facts == job.input_facts
        and scored.result.input_path == job.input_path
        and scored.result.output_path == job.output_path
        and job.output_path in outputs
        and (scored.model_version, scored.model_manifest_sha256)
        == (job.model.version, job.model.manifest_sha256)
        and (scored.text_column, scored.id_column) == (job.text_column, job.id_column)
    )


def _folder_under_root(input_path: str, input_root: Location) -> str | None:
    """Where `input_path` lies under the input root when it is a folder ('' for the root);
    None for a file or a glob."""
    location = locate(input_path, "input_path")
    if not location.is_dir():
        return None
    if location.uri.rstrip("/") == input_root.uri.rstrip("/"):
        return ""
    return relative_path(input_root, location)
