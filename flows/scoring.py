"""score_flow: resolve the model -> plan -> score each file -> mark complete -> summary."""

from __future__ import annotations

from datetime import date, datetime
from datetime import timezone as dt_timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from prefect import flow
from prefect.states import Completed, State
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import quote
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from flows.file_runs import load_on_workers, score_files
from flows.run_names import name_this_deployments_upcoming_runs, scoring_run_name
from flows.settings import NO_CREDENTIALS_SCHEMA, get_settings
from storage import UserError, refuse_credentials_in
from tasks.contract import CHAMPION, TEXT_COLUMN
from tasks.failures import fail_run, show_user_errors_as_one_line
from tasks.scoring import (
    DEFAULT_BATCH_SIZE,
    ScoringSummary,
)
from tasks.scoring.inputs import check_partition
from tasks.scoring.report import drift_headline
from tasks.scoring.tasks import (
    plan_task,
    publish_summary_task,
    record_history_task,
    resolve_model_task,
    settle_folders_task,
    summarize_task,
    sync_table_task,
)

__all__ = [
    "ScoreParams",
    "ScoringFailedError",
    "build_task_runner",
    "run_scoring",
    "score_flow",
]

# What each Dask worker imports as it starts (tasks/scoring/worker.py).
WORKER_PRELOAD = "tasks.scoring.worker"


class ScoreParams(BaseModel):
    """What to score, with which model version, and how many files at once."""

    # Frozen: a default instance is the flow's default, and the UI's form shows its fields.
    model_config = ConfigDict(frozen=True)

    input_path: str | None = Field(
        json_schema_extra=NO_CREDENTIALS_SCHEMA,
        default=None,
        min_length=1,
        description="Dataset folder (read recursively, hive partitions kept), glob or Parquet "
        "file; unset: the setting REVIEW_SCORING_INPUT_DIR",
    )
    partition: str | None = Field(
        default=None,
        min_length=1,
        description="Score only this partition folder under input_path, e.g. "
        "'day={scheduled_date}': the run's scheduled date (YYYY-MM-DD) in the run's timezone",
    )
    timezone: str = Field(
        default="UTC",
        min_length=1,
        description="IANA time zone the scheduled date is read in (the schedule's own)",
    )
    output_root: str | None = Field(
        json_schema_extra=NO_CREDENTIALS_SCHEMA,
        default=None,
        min_length=1,
        description="Predictions go to {output root}/{model name}/v{N}/{the input's relative "
        "path}; unset: the setting REVIEW_SCORING_OUTPUT_DIR",
    )
    model_name: str | None = Field(
        default=None,
        min_length=1,
        description="Name in the model store; unset: the setting REVIEW_SCORING_MODEL_NAME",
    )
    model_ref: str = Field(
        default=CHAMPION,
        min_length=1,
        description="Model version number or alias (champion, latest, ...)",
    )
    model_store_root: str | None = Field(
        json_schema_extra=NO_CREDENTIALS_SCHEMA,
        default=None,
        min_length=1,
        description="Root of the model store; unset: the setting REVIEW_SCORING_MODEL_STORE_ROOT",
    )
    batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE,
        ge=1,
        le=65_536,
        description="Rows read, tokenized and predicted at a time",
    )
    text_column: str = Field(
        default=TEXT_COLUMN, min_length=1, description="Column with the review"
    )
    id_column: str | None = Field(
        default=None,
        min_length=1,
        description="Column with the review id. Unset: review_id when a file has it, else "
        "{relative path}:{row}; a column named here must be in every file",
    )
    max_concurrent_files: int = Field(
        default=2, ge=1, le=256, description="How many files are scored at the same time"
    )
    task_runner: Literal["threads", "dask", "local-dask"] = Field(
        default="threads",
        description="threads: in this process; dask: the cluster at dask_address; "
        "local-dask: a Dask cluster of one worker process on this machine, scoring "
        "max_concurrent_files files at a time",
    )
    dask_address: str | None = Field(
        json_schema_extra=NO_CREDENTIALS_SCHEMA,
        default=None,
        description="Dask scheduler address, e.g. tcp://scheduler:8786",
    )
    rescore_history: bool = Field(
        default=False,
        description="Rescore the inputs an earlier version labeled (after a promotion); by "
        "default new data gets the new champion and history keeps its labels; the run says what "
        "a rescore would cost",
    )
    retire_vanished_outputs: bool = Field(
        default=False,
        description="Remove the outputs of inputs whose folder is gone (by default they are "
        "kept, as predictions outlive raw data, and the run reports them)",
    )
    write_table: bool = Field(
        default=True,
        description="Also commit the predictions to the Delta Lake table {output root}/"
        "_predictions, one commit per run, for readers that want one table",
    )
    drift_threshold: float = Field(
        default=0.2,
        ge=0.0,
        le=10.0,
        description="Population stability index above which the scores count as drifted",
    )

    @field_validator("input_path", "output_root", "model_store_root", "dask_address")
    @classmethod
    def _no_credentials(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else refuse_credentials_in(value, info.field_name)

    @field_validator("partition")
    @classmethod
    def _partition_below_input(cls, value: str | None) -> str | None:
        return None if value is None else check_partition(value)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown IANA time zone {value!r}") from error
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ScoreParams:
        if self.task_runner == "dask" and not self.dask_address:
            raise ValueError("dask_address is required when task_runner is 'dask'")
        if self.text_column == self.id_column:
            raise ValueError(
                f"text_column and id_column are both {self.text_column!r}; they must differ"
            )
        return self


class ScoringFailedError(UserError, RuntimeError):
    """Some files could not be scored (each for a reason the user can fix or a bug, said per
    file); the others were. Carries the run's summary."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.summary = summary

    def __str__(self) -> str:
        return self.message


def build_task_runner(params: ScoreParams) -> TaskRunner[Any]:
    """The runner the score-file tasks go to, chosen by parameter at run time."""
    if params.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=params.max_concurrent_files)
    from prefect_dask import DaskTaskRunner

    if params.task_runner == "dask":
        return DaskTaskRunner(address=params.dask_address)
    # One worker process, as one machine of a cluster runs: one TensorFlow runtime and one
    # loaded model shared by its files, where a process per file would load and compile each
    # and contend for the cores (bench/bench_distributed.py measures both).
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": 1,
            "threads_per_worker": params.max_concurrent_files,
            "processes": True,
            "preload": [WORKER_PRELOAD],
        }
    )


def scheduled_date(timezone_name: str) -> date:
    """The date this run was scheduled for, in the schedule's zone (today, for a manual run)."""
    from prefect.runtime import flow_run

    scheduled = flow_run.scheduled_start_time or datetime.now(dt_timezone.utc)
    return scheduled.astimezone(ZoneInfo(timezone_name)).date()


def score_run_name() -> str:
    """`score 2026-11-29 02:00 reviews v3 (champion)`: a list of runs reads as a log of nights,
    inputs and model versions (flows/run_names.py)."""
    from prefect.runtime import flow_run

    params = flow_run.parameters.get("params")
    if not isinstance(params, ScoreParams):
        params = ScoreParams.model_validate(params or {})
    return scoring_run_name(params, flow_run.scheduled_start_time)


def _run_timeout_seconds() -> float | None:
    """The run's timeout, read as this module is imported: a flow's timeout is fixed where it is
    defined. A bad value leaves it unset here; the settings' first read in the run (or in the
    command, before any run) then reports it in one line."""
    try:
        return get_settings().run_timeout_seconds
    except UserError:
        return None


@flow(name="score", flow_run_name=score_run_name, timeout_seconds=_run_timeout_seconds())
def score_flow(params: ScoreParams = ScoreParams()) -> dict[str, Any] | State[Any]:
    """Score review Parquet files with one model version and write labeled predictions.

    An expected failure (unknown model, missing input, a file that cannot be scored) ends the
    run Failed with a message that says what and where; only bugs bring a traceback.
    """
    show_user_errors_as_one_line()
    name_this_deployments_upcoming_runs()
    settings = get_settings().resolve(
        model_store_root=params.model_store_root,
        model_name=params.model_name,
        input_dir=params.input_path,
        output_dir=params.output_root,
    )
    store_root, model_name = settings.model_store_root, settings.model_name
    input_path, output_root = settings.input_dir, settings.output_dir
    run_date = scheduled_date(params.timezone) if params.partition else None
    try:
        model = resolve_model_task(
            store_root, model_name, params.model_ref, load_here=params.task_runner == "threads"
        )
        plan = plan_task(
            input_path,
            output_root,
            model,
            params.text_column,
            params.id_column,
            params.batch_size,
            params.partition,
            run_date,
            params.rescore_history,
        )
    except UserError as error:
        return fail_run(error)
    runner = build_task_runner(params)
    with runner:
        try:
            load_on_workers(runner, model)
        except UserError as error:
            return fail_run(error)
        results, failures, seconds = score_files(
            plan.jobs,
            runner,
            params.max_concurrent_files,
            settings.file_timeout_seconds,
            settings.dask_worker_wait_seconds,
        )
    # Quoted: Prefect would walk every file's record in these (1,000 files: seconds a task).
    plan_records, result_records = quote(plan), quote(results)
    folders = settle_folders_task(
        plan_records, result_records, failures, model, params.retire_vanished_outputs
    )
    summary = summarize_task(
        model, plan_records, result_records, failures, seconds, params.drift_threshold, folders
    )
    record_history_task(
        plan_records, result_records, folders, model, summary.rows_per_second, output_root
    )
    if params.write_table:
        table = sync_table_task(output_root, model, result_records)
        summary = summary.model_copy(update={"table": table})
    publish_summary_task(summary)
    record = summary.model_dump(mode="json")
    problems = [failure.error for failure in failures]
    if summary.table is not None and summary.table.error:
        problems.append(summary.table.error)
    if problems:
        # Ending Failed makes alerts fire; the outputs of the other files stay in place.
        message = "; ".join(dict.fromkeys(problems))  # the same reason once
        if failures:
            message = f"{len(failures)} of {len(plan.jobs)} files failed: {message}"
        return fail_run(ScoringFailedError(message, record), message)
    # The verdict in the state's message: the runs list reads it without opening the run.
    return Completed(message=drift_headline(summary), data=record)


def run_scoring(params: ScoreParams) -> ScoringSummary:
    """Run the flow here and return its summary as a typed record (for the CLI and tests)."""
    return ScoringSummary.model_validate(score_flow(params))
