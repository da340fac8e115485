"""What was scored at an output root: the record that lets a night skip unchanged inputs unread.

`<output root>/<model name>/_scoring-history.json` holds, for each input scored into that
model's folders, its relative path, what its listing said of it (size, and modification time or
ETag), its sha256, the model that scored it (version and manifest sha256), its output, its rows
and the run. A night plans from one listing of the inputs and this file: an input whose facts and
model match, and whose output is there, is counted and left alone without being read (on object
storage, without being downloaded); the others become the run's tasks, and only those.

It is a cache of facts, not the truth: each output's own stamp still decides whether it is current
when the file is scored. So the record is written whole and atomically after each run, and two
runs that finish together only cost the loser's entries a re-hash on the next night.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field, ValidationError

from storage import Location, locate
from storage.files import dump_json
from tasks.scoring.records import FileResult, FolderReport, ResolvedModel, ScoringPlan

__all__ = ["HISTORY_FILE", "ScoredInput", "ScoringHistory", "history_location", "record_run"]

HISTORY_FILE = "_scoring-history.json"


class ScoredInput(BaseModel):
    """One input as it was when it was scored, and what scoring it gave."""

    result: FileResult
    input_facts: str = Field(description="Location.facts() of the input when it was scored")
    model_version: int
    model_manifest_sha256: str | None
    text_column: str
    id_column: str | None
    run_id: str | None
    table_version: int | None = Field(
        default=None,
        description="The version of the predictions table that took this output's rows; None "
        "until one did (the next run adds them)",
    )


class ScoringHistory(BaseModel):
    """Every input scored into one model's output folders, by its path under the input root."""

    inputs: dict[str, ScoredInput] = Field(default_factory=dict)
    rows_per_second: float | None = Field(
        default=None, description="The rate the last run that scored rows measured on its machine"
    )
    table_id: str | None = Field(
        default=None,
        description="The predictions table the inputs' table_version refer to (its Delta id): "
        "a table made anew takes every output again",
    )
    table_removals: list[str] = Field(
        default_factory=list,
        description="Inputs whose outputs were removed and whose rows the table still holds",
    )

    @classmethod
    def read(cls, location: Location) -> ScoringHistory:
        """The history at `location`; empty when there is none or it cannot be read (it is a
        cache: an unreadable one costs a night of hashing, never a wrong skip)."""
        try:
            return cls.model_validate(json.loads(location.read_bytes()))
        except (OSError, ValueError, ValidationError):
            return cls()

    def write(self, location: Location) -> None:
        text = dump_json(self.model_dump(mode="json"), indent=None)
        location.write_atomically((text + "\n").encode("utf-8"))


def history_location(output_root: str, model_name: str) -> Location:
    """Where the history of `model_name`'s outputs under `output_root` lives."""
    return locate(output_root, "output_root").joinpath(model_name, HISTORY_FILE)


def record_run(
    plan: ScoringPlan,
    results: list[FileResult],
    folders: FolderReport,
    model: ResolvedModel,
    run_id: str | None,
    rows_per_second: float | None,
    output_root: str,
) -> ScoringHistory:
    """Add this run's files to the history beside its outputs (read afresh, so a run that
    finished meanwhile keeps its entries), drop those whose outputs this run removed, and write
    it back."""
    location = history_location(output_root, model.name)
    history = ScoringHistory.read(location)
    jobs = {job.input_path: job for job in plan.jobs}
    for result in results:
        job = jobs.get(result.input_path)
        if job is None or job.input_facts is None:
            continue
        earlier = history.inputs.get(result.relative_path)
        # An output found current (not rewritten) keeps its rows in the predictions table.
        kept = (
            earlier is not None
            and result.outcome == "skipped"
            and earlier.result.output_path == result.output_path
        )
        history.inputs[result.relative_path] = ScoredInput(
            table_version=earlier.table_version if kept and earlier else None,
            result=result,
            input_facts=job.input_facts,
            model_version=model.version,
            model_manifest_sha256=model.manifest_sha256,
            text_column=job.text_column,
            id_column=job.id_column,
            run_id=run_id,
        )
    removed = set(folders.replaced) | set(folders.retired)
    gone = [
        relative
        for relative, scored in history.inputs.items()
        if scored.result.output_path in removed
    ]
    history.inputs = {
        relative: scored
        for relative, scored in sorted(history.inputs.items())
        if relative not in gone
    }
    history.table_removals = sorted(set(history.table_removals) | set(gone))
    if rows_per_second:
        history.rows_per_second = rows_per_second
    history.write(location)
    return history
