"""The scoring steps as Prefect tasks: thin wrappers that add names, retries and logging."""

from __future__ import annotations

import logging
from datetime import date

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger

from storage import UserError
from tasks.artifacts import flow_run_url, run_artifact
from tasks.failures import RETRY_ON_IO_HICCUPS
from tasks.scoring.files import score_file
from tasks.scoring.history import record_run
from tasks.scoring.inputs import partition_input_path, plan_jobs
from tasks.scoring.model import load_scoring_model, resolve_model
from tasks.scoring.records import (
    FileFailure,
    FileResult,
    FolderReport,
    ResolvedModel,
    ScoringJob,
    ScoringPlan,
    ScoringSummary,
    TableCommit,
)
from tasks.scoring.report import (
    drift_event,
    rejected_text,
    render_distribution_markdown,
    summary_table,
)
from tasks.scoring.summary import summarize_run
from tasks.scoring.table import sync_predictions_table, table_location
from tasks.scoring.writing import settle_output_folders

__all__ = [
    "plan_task",
    "publish_summary_task",
    "record_history_task",
    "resolve_model_task",
    "score_file_task",
    "settle_folders_task",
    "summarize_task",
    "sync_table_task",
]


@task(
    name="resolve-model",
    cache_policy=NO_CACHE,
    **RETRY_ON_IO_HICCUPS,
)
def resolve_model_task(
    store_root: str, name: str, model_ref: str, load_here: bool = True
) -> ResolvedModel:
    """Resolve the version or alias once and check it, before any input: loaded here (checksums,
    Keras safe mode) when this process scores the files, which reuse it; else its checksums only,
    without importing Keras (each Dask worker loads it, in safe mode, before any file)."""
    model = resolve_model(store_root, name, model_ref, verify=not load_here)
    if load_here:
        load_scoring_model(model)
    get_run_logger().info("scoring with %s v%d (asked for %r)", name, model.version, model_ref)
    return model


@task(
    name="plan",
    cache_policy=NO_CACHE,
    **RETRY_ON_IO_HICCUPS,
)
def plan_task(
    input_path: str,
    output_root: str,
    model: ResolvedModel,
    text_column: str,
    id_column: str | None,
    batch_size: int,
    partition: str | None = None,
    scheduled_date: date | None = None,
    rescore_history: bool = False,
) -> ScoringPlan:
    """Find the input files (of one partition, if given), place their outputs, say what was
    skipped."""
    dataset_root = None
    if partition:
        dataset_root = input_path
        input_path = partition_input_path(input_path, partition, scheduled_date or date.today())
    plan = plan_jobs(
        input_path,
        output_root,
        model,
        text_column,
        id_column,
        batch_size,
        dataset_root,
        rescore_history,
    )
    logger = get_run_logger()
    logger.info(
        "%d input file(s) to score under %s; %d unchanged since they were scored (not read)",
        len(plan.jobs),
        plan.input_root,
        len(plan.unchanged),
    )
    earlier = plan.earlier_versions
    if earlier.files and earlier.rescored:
        logger.warning("rescoring with v%d: %s", model.version, earlier.words)
    elif earlier.files:
        logger.info(
            "kept (rescore_history would rescore them with v%d): %s", model.version, earlier.words
        )
    if plan.skipped:
        reasons: dict[str, int] = {}
        for skipped in plan.skipped:
            reasons[skipped.reason] = reasons.get(skipped.reason, 0) + 1
        logger.warning(
            "skipped %d entries under %s: %s (first: %s)",
            len(plan.skipped),
            plan.input_root,
            "; ".join(f"{count} {reason}" for reason, count in sorted(reasons.items())),
            plan.skipped[0].path,
        )
    return plan


@task(
    name="score-file",
    task_run_name="score-file {job.relative_path}",
    cache_policy=NO_CACHE,
    **RETRY_ON_IO_HICCUPS,
)
def score_file_task(job: ScoringJob) -> FileResult:
    """Score one file with the job's model version (loaded once per worker process)."""
    logger = get_run_logger()
    result = score_file(job, load_scoring_model(job.model))
    # For logs read as JSON lines (tasks/log_format.py): the file and its counts as fields.
    fields = {
        "input_file": job.relative_path,
        "output_file": job.output_path,
        "outcome": result.outcome,
        "rows": result.rows,
        "status_counts": result.status_counts,
    }
    if result.outcome == "skipped":
        logger.info(
            "%s: output for this input and version exists, skipped", job.input_path, extra=fields
        )
    else:
        logger.info(
            "%s: %d rows (rejected: %s) in %.1fs -> %s",
            job.input_path,
            result.rows,
            rejected_text(result.status_counts),
            result.seconds,
            job.output_path,
            extra=fields,
        )
    if result.null_ids or result.duplicate_ids:
        logger.warning(
            "%s: %d null and %d repeated review ids",
            job.input_path,
            result.null_ids,
            result.duplicate_ids,
        )
    return result


@task(name="settle-folders", cache_policy=NO_CACHE)
def settle_folders_task(
    plan: ScoringPlan,
    results: list[FileResult],
    failures: list[FileFailure],
    model: ResolvedModel,
    retire_vanished: bool,
) -> FolderReport:
    """Make each output folder match its input folder, and mark the complete ones `_SUCCESS`."""
    from prefect.runtime import flow_run

    run_id = str(flow_run.id) if flow_run.id else None
    report = settle_output_folders(
        plan, results, failures, model, run_id, retire_vanished=retire_vanished
    )
    logger = get_run_logger()
    if report.replaced:
        logger.info(
            "removed %d output(s) whose inputs left their folder (first: %s)",
            len(report.replaced),
            report.replaced[0],
        )
    if report.vanished:
        logger.warning(
            "kept %d output(s) whose input folder is gone (first: %s); "
            "retire_vanished_outputs removes them",
            len(report.vanished),
            report.vanished[0],
        )
    return report


@task(name="record-history", cache_policy=NO_CACHE, **RETRY_ON_IO_HICCUPS)
def record_history_task(
    plan: ScoringPlan,
    results: list[FileResult],
    folders: FolderReport,
    model: ResolvedModel,
    rows_per_second: float | None,
    output_root: str,
) -> int:
    """Add this run's files to the history the next night plans from; the inputs it holds."""
    from prefect.runtime import flow_run

    run_id = str(flow_run.id) if flow_run.id else None
    history = record_run(plan, results, folders, model, run_id, rows_per_second, output_root)
    return len(history.inputs)


@task(name="sync-table", cache_policy=NO_CACHE, **RETRY_ON_IO_HICCUPS)
def sync_table_task(
    output_root: str, model: ResolvedModel, results: list[FileResult]
) -> TableCommit:
    """Commit what changed in the model's outputs to the predictions table, in one commit. A
    refused or failed commit is returned, not raised: the summary still says what was scored,
    and the flow then fails the run."""
    from prefect.runtime import flow_run

    run_id = str(flow_run.id) if flow_run.id else None
    logger = get_run_logger()
    try:
        commit = sync_predictions_table(output_root, model, run_id, results)
    except UserError as error:  # TableCommitError, or storage that could not be reached
        logger.error("%s", error)
        return TableCommit(table=table_location(output_root).uri, error=str(error))
    if commit.committed:
        logger.info(
            "predictions table %s is at version %d: rows of %d input(s) added (%d rows), "
            "of %d removed",
            commit.table,
            commit.version,
            commit.files_added,
            commit.rows_added,
            commit.files_removed,
        )
    return commit


@task(name="summarize", cache_policy=NO_CACHE)
def summarize_task(
    model: ResolvedModel,
    plan: ScoringPlan,
    results: list[FileResult],
    failures: list[FileFailure],
    seconds: float,
    drift_threshold: float,
    folders: FolderReport,
) -> ScoringSummary:
    """Add up the files' results and compare the score distribution with the test split."""
    from prefect.runtime import flow_run

    summary = summarize_run(model, plan, results, failures, seconds, drift_threshold, folders)
    run_id = str(flow_run.id) if flow_run.id else None
    return summary.model_copy(update={"flow_run_id": run_id, "flow_run_url": flow_run_url()})


@task(name="publish-summary", cache_policy=NO_CACHE)
def publish_summary_task(summary: ScoringSummary) -> None:
    """The summary table and score-distribution artifacts, and the warnings in the log."""
    logger = get_run_logger()
    run_artifact(
        "table",
        "scoring-summary",
        summary_table(summary),
        f"Scoring with {summary.model_name} v{summary.model_version}",
    )
    run_artifact(
        "markdown",
        "scoring-score-distribution",
        render_distribution_markdown(summary),
        "This run's score distribution next to the test split's",
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
        extra={
            "files_scored": summary.files_scored,
            "files_skipped": summary.files_skipped,
            "files_failed": summary.files_failed,
            "rows": summary.rows,
            "rows_scored": summary.rows_scored,
            "rows_ok": summary.rows_ok,
            "rejected_by_reason": summary.rejected_by_reason,
        },
    )
    if summary.null_ids or summary.duplicate_ids:
        logger.warning(
            "review ids: %d null, %d repeated within their file",
            summary.null_ids,
            summary.duplicate_ids,
        )
    if summary.drift.drifted:
        logger.warning("drift: %s", summary.drift.message)
    else:
        logger.info("%s", summary.drift.message)
    if summary.words is not None:
        changed = summary.words.verdict == "changed"
        logger.log(logging.WARNING if changed else logging.INFO, "words: %s", summary.words.message)
    emit_drift_event(summary)


def emit_drift_event(summary: ScoringSummary) -> None:
    """The run's drift verdict as a Prefect event about the run (the deployment, flow and tags
    come along as related resources), for automations to act on."""
    from prefect.events import emit_event
    from prefect.runtime import flow_run

    name, payload = drift_event(summary)
    emit_event(
        event=name,
        resource={
            "prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
            "prefect.resource.name": str(flow_run.name),
        },
        payload=payload,
    )
