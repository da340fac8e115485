"""score_flow: resolve the model -> plan the files -> (per file) batch-predict -> summary."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any, Literal

from prefect import flow
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from pydantic import BaseModel, Field, model_validator

from flows.settings import get_settings
from tasks.prediction import (
    FileFailure,
    FileResult,
    ScoringJob,
    ScoringSummary,
    batch_predict,
    output_dir_for,
    plan_jobs_task,
    publish_summary,
    resolve_model,
    summarize_task,
)

__all__ = ["ScoreParams", "ScoringFailedError", "build_task_runner", "run_scoring", "score_flow"]


class ScoreParams(BaseModel):
    """What to score, with which model version, and how many files at once."""

    input_path: str | None = Field(
        default=None,
        description="Folder, glob or file of review Parquet (defaults to the settings' input dir)",
    )
    output_root: str | None = Field(
        default=None,
        description="Predictions go to <output root>/<model name>/v<N>/ (defaults to settings)",
    )
    model_name: str | None = Field(default=None, description="Defaults to the settings' name")
    model_ref: str = Field(
        default="champion",
        min_length=1,
        description="Model version number or alias (champion, latest, ...)",
    )
    model_store_root: str | None = Field(default=None, description="Defaults to the settings'")
    batch_size: int = Field(
        default=1024, ge=1, le=65_536, description="Rows read, tokenized and predicted at a time"
    )
    text_column: str = Field(default="text", min_length=1, description="Column with the review")
    id_column: str = Field(
        default="review_id",
        min_length=1,
        description="Column with the review id; without it the id is <file stem>:<row>",
    )
    max_concurrent_files: int = Field(
        default=2, ge=1, le=256, description="How many files are scored at the same time"
    )
    task_runner: Literal["threads", "dask", "local-dask"] = Field(
        default="threads",
        description="threads: in this process; dask: the cluster at dask_address; "
        "local-dask: a local Dask cluster of max_concurrent_files worker processes",
    )
    dask_address: str | None = Field(
        default=None, description="Dask scheduler address, e.g. tcp://scheduler:8786"
    )
    drift_threshold: float = Field(
        default=0.2,
        ge=0.0,
        le=10.0,
        description="Population stability index above which the scores count as drifted",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ScoreParams:
        if self.task_runner == "dask" and not self.dask_address:
            raise ValueError("dask_address is required when task_runner is 'dask'")
        if self.text_column == self.id_column:
            raise ValueError(
                f"text_column and id_column are both {self.text_column!r}; they must differ"
            )
        return self


class ScoringFailedError(RuntimeError):
    """Some files could not be scored; the others were. Carries the run's summary."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message, summary)
        self.message = message
        self.summary = summary

    def __str__(self) -> str:
        return self.message


def build_task_runner(params: ScoreParams) -> TaskRunner[Any]:
    """The runner the batch-predict tasks go to, chosen by parameter at run time."""
    if params.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=params.max_concurrent_files)
    from prefect_dask import DaskTaskRunner

    if params.task_runner == "dask":
        return DaskTaskRunner(address=params.dask_address)
    # One single-threaded worker process per concurrent file: TF uses the cores inside each.
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": params.max_concurrent_files,
            "threads_per_worker": 1,
            "processes": True,
        }
    )


def score_files(
    jobs: list[ScoringJob], runner: TaskRunner[Any], max_in_flight: int
) -> tuple[list[FileResult], list[FileFailure], float]:
    """Run one batch-predict per file, at most max_in_flight at once, tracking progress.

    A file that fails is recorded and the others go on; the flow decides what that means.
    """
    started = time.perf_counter()
    total = len(jobs)
    progress_id = create_progress_artifact(
        progress=0.0, key="scoring-progress", description=f"0 of {total} files"
    )
    results: list[FileResult] = []
    failures: list[FileFailure] = []
    waiting = deque(jobs)
    in_flight: dict[PrefectFuture[FileResult], ScoringJob] = {}
    with runner:
        while waiting or in_flight:
            while waiting and len(in_flight) < max_in_flight:
                job = waiting.popleft()
                in_flight[runner.submit(batch_predict, {"job": job})] = job
            future = next(as_completed(list(in_flight)))
            job = in_flight.pop(future)
            try:
                results.append(future.result())
            except Exception as error:  # the task's own failure: recorded, not fatal to others
                failures.append(
                    FileFailure(input_path=job.input_path, error=f"{type(error).__name__}: {error}")
                )
            done = len(results) + len(failures)
            skipped = sum(result.outcome == "skipped" for result in results)
            update_progress_artifact(
                progress_id,
                progress=100.0 * done / total,
                description=f"{done} of {total} files ({done - skipped - len(failures)} scored, "
                f"{skipped} skipped, {len(failures)} failed)",
            )
    results.sort(key=lambda result: result.input_path)
    failures.sort(key=lambda failure: failure.input_path)
    return results, failures, time.perf_counter() - started


@flow(name="score")
def score_flow(params: ScoreParams | None = None) -> dict[str, Any]:
    """Score review Parquet files with one model version and write labeled predictions."""
    params = params or ScoreParams()
    settings = get_settings()
    store_root = params.model_store_root or str(settings.model_store_root)
    model_name = params.model_name or settings.model_name
    input_path = params.input_path or str(settings.input_dir)
    output_root = params.output_root or str(settings.output_dir)

    model = resolve_model(store_root, model_name, params.model_ref)
    jobs = plan_jobs_task(
        input_path, output_root, model, params.text_column, params.id_column, params.batch_size
    )
    results, failures, seconds = score_files(
        jobs, build_task_runner(params), params.max_concurrent_files
    )
    output_dir = str(output_dir_for(Path(output_root).absolute(), model.name, model.version))
    summary = summarize_task(model, output_dir, results, failures, seconds, params.drift_threshold)
    publish_summary(summary)
    record = summary.model_dump(mode="json")
    if failures:
        # Ending Failed makes alerts fire; the outputs of the other files stay in place.
        raise ScoringFailedError(
            f"{len(failures)} of {len(jobs)} files failed: "
            + "; ".join(f"{failure.input_path}: {failure.error}" for failure in failures),
            record,
        )
    return record


def run_scoring(params: ScoreParams) -> ScoringSummary:
    """Run the flow here and return its summary as a typed record (for the CLI and tests)."""
    return ScoringSummary.model_validate(score_flow(params))
