"""The scoring flow's files as task runs: each file's score-file task on the run's task runner
(threads or a Dask cluster), a bounded number at once, with its timeout, the progress artifact,
and what a file's failure, a timeout or a cluster without workers is recorded as.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import TaskRunner

from tasks.scoring import FileFailure, FileResult, ResolvedModel, ScoringJob
from tasks.scoring.model import preload_version
from tasks.scoring.tasks import score_file_task

__all__ = ["dask_workers", "load_on_workers", "score_files"]


def load_on_workers(runner: TaskRunner[Any], model: ResolvedModel) -> None:
    """On a Dask cluster, every worker loads the version (checksums, Keras safe mode) before any
    file is sent: in parallel, once per worker process, and a version that does not load fails
    the run here. The threads runner loaded it in this process already."""
    from prefect_dask import DaskTaskRunner

    if not isinstance(runner, DaskTaskRunner):
        return
    started = time.perf_counter()
    loads = runner.client.run(preload_version, model)
    get_run_logger().info(
        "%d Dask worker(s) hold %s v%d, loaded in %.1fs",
        len(loads),
        model.name,
        model.version,
        time.perf_counter() - started,
    )


# How often a run waiting on its files on a Dask cluster looks whether the cluster has workers.
_WORKER_CHECK_SECONDS = 5.0


def dask_workers(runner: TaskRunner[Any]) -> int | None:
    """How many workers the Dask runner's cluster has now; None for the threads runner."""
    from prefect_dask import DaskTaskRunner

    if not isinstance(runner, DaskTaskRunner):
        return None
    return len(runner.client.scheduler_info()["workers"])


def _timed_out(error: BaseException, future: PrefectFuture[FileResult]) -> bool:
    """Whether a file's task failed by its timeout: its state says so, or the timeout is in
    the error's chain (it may land in the engine's own setup and surface as another error)."""
    if future.state.name == "TimedOut":
        return True
    seen: BaseException | None = error
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _failure(job: ScoringJob, message: str) -> FileFailure:
    return FileFailure(
        input_path=job.input_path,
        relative_path=job.relative_path,
        output_path=job.output_path,
        error=message,
    )


def score_files(
    jobs: list[ScoringJob],
    runner: TaskRunner[Any],
    max_in_flight: int,
    file_timeout_seconds: float | None = None,
    worker_wait_seconds: float = 120.0,
) -> tuple[list[FileResult], list[FileFailure], float]:
    """Run one score-file task per file on the (entered) runner, at most max_in_flight at once,
    each within `file_timeout_seconds`, tracking progress.

    A file that fails is recorded and the others go on; the flow decides what that means. On a
    Dask cluster, a file whose worker dies is run again by Dask on another worker; when the
    cluster has had no worker for `worker_wait_seconds`, the files not yet scored fail, saying
    so, rather than wait for good.
    """
    started = time.perf_counter()
    total = len(jobs)
    progress_id = create_progress_artifact(
        progress=0.0, key="scoring-progress", description=f"0 of {total} files"
    )
    results: list[FileResult] = []
    failures: list[FileFailure] = []
    score_file = score_file_task.with_options(timeout_seconds=file_timeout_seconds)
    watch = dask_workers(runner) is not None
    without_workers_since: float | None = None
    waiting = deque(jobs)
    in_flight: dict[PrefectFuture[FileResult], ScoringJob] = {}
    while waiting or in_flight:
        while waiting and len(in_flight) < max_in_flight:
            job = waiting.popleft()
            in_flight[runner.submit(score_file, {"job": job})] = job
        try:
            future = next(
                as_completed(list(in_flight), timeout=_WORKER_CHECK_SECONDS if watch else None)
            )
        except TimeoutError:
            if dask_workers(runner):
                without_workers_since = None
                continue
            without_workers_since = without_workers_since or time.monotonic()
            if time.monotonic() - without_workers_since < worker_wait_seconds:
                continue
            message = (
                f"the Dask cluster has had no worker for {worker_wait_seconds:g} s "
                "(REVIEW_SCORING_DASK_WORKER_WAIT_SECONDS), so this file was not scored"
            )
            failures += [_failure(job, message) for job in [*in_flight.values(), *waiting]]
            in_flight.clear()
            waiting.clear()
            break
        job = in_flight.pop(future)
        try:
            results.append(future.result())
        except Exception as error:  # the task's own failure: recorded, not fatal to others
            # Shown in the UI and alerts: the path under the input root, not where data lives.
            message = f"{type(error).__name__}: {error}".replace(job.input_path, job.relative_path)
            if _timed_out(error, future):
                message = (
                    f"took longer than {file_timeout_seconds:g} s to score "
                    "(REVIEW_SCORING_FILE_TIMEOUT_SECONDS)"
                )
            failures.append(_failure(job, message))
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
