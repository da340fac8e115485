"""How a failure shows, in one place for the CLI, the flows and the tasks.

- A `storage.UserError` (a bad parameter, a missing path, unusable data, an unknown model) is
  something the user can fix: its message is the whole story. Its log records lose their
  traceback (a filter on Prefect's run loggers), a flow ends Failed with it as the state's
  message (`fail_run`), and the CLI prints it as one `error: ...` line with exit 1.
- Anything else is a bug and keeps its traceback everywhere.
- A task that does I/O retries once, 5 s later, what a second try may not meet: an OSError whose
  errno says the disk, the share or the network hiccuped (`RETRY_ON_IO_HICCUPS`). Nothing else.
  Prefect logs nothing when a task with retries left fails with an error its retry condition
  refuses, so the preset's failure hook logs a bug's traceback itself.
"""

from __future__ import annotations

import errno
import logging
from typing import TYPE_CHECKING, Any

from storage import UserError

if TYPE_CHECKING:
    from prefect.client.schemas.objects import TaskRun
    from prefect.states import State
    from prefect.tasks import Task

__all__ = [
    "RETRY_ON_IO_HICCUPS",
    "fail_run",
    "is_transient",
    "log_bug_traceback",
    "show_user_errors_as_one_line",
]

RETRY_DELAY_SECONDS = 5
_TRANSIENT_ERRNOS = frozenset(
    {errno.EIO, errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.ECONNRESET}
)
# Loggers Prefect's engines report failed task and flow runs on (prefect.engine: a flow run's
# process that failed before its flow started, on the worker's output).
_RUN_LOGGERS = ("prefect.task_runs", "prefect.flow_runs", "prefect.engine")
_REPORTED = "_review_scoring_reported_as_state"
_MAX_CAUSES = 5


def _error_of(state: State[Any]) -> object:
    """The exception a failed state holds (a final state wraps it in a result record)."""
    data = state.data
    return getattr(data, "result", data)


def is_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """A `retry_condition_fn`: retry OSErrors whose errno says the next try may succeed."""
    error = _error_of(state)
    return isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS


def log_bug_traceback(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> None:
    """An `on_failure` hook: a task that failed with a bug (not a UserError, not an I/O hiccup,
    which Prefect logs once its retries are spent) logs the error with its traceback."""
    error = _error_of(state)
    if not isinstance(error, BaseException) or isinstance(error, UserError):
        return
    if is_transient(task, task_run, state):
        return
    from prefect.logging.loggers import task_run_logger

    task_run_logger(task_run, task).error(
        "%s failed with a bug: %s", task_run.name, error, exc_info=error
    )


# The one retry preset: `@task(..., **RETRY_ON_IO_HICCUPS)`.
RETRY_ON_IO_HICCUPS: dict[str, Any] = {
    "retries": 1,
    "retry_delay_seconds": RETRY_DELAY_SECONDS,
    "retry_condition_fn": is_transient,
    "on_failure": [log_bug_traceback],
}


class _UserErrorsInOneLine(logging.Filter):
    """A record carrying a UserError keeps its message and loses the traceback; one carrying an
    error a flow already ended its run with is dropped (the state says it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        causes = []
        while error is not None and len(causes) < _MAX_CAUSES:  # Prefect wraps some errors
            causes.append(error)
            error = error.__cause__
        if any(getattr(cause, _REPORTED, False) for cause in causes):
            return False
        if any(isinstance(cause, UserError) for cause in causes):
            record.exc_info, record.exc_text = None, None
        return True


def show_user_errors_as_one_line() -> None:
    """Install the filter on Prefect's run loggers (once per process; flows call it as they
    start, Dask workers started with the tasks.scoring.worker preload as they boot)."""
    for name in _RUN_LOGGERS:
        run_logger = logging.getLogger(name)
        if not any(isinstance(known, _UserErrorsInOneLine) for known in run_logger.filters):
            run_logger.addFilter(_UserErrorsInOneLine())


def fail_run(error: UserError, message: str | None = None) -> State[Any]:
    """The Failed state a flow returns for a user's error: its message, and the error to raise
    for a caller in this process (the CLI prints it as one `error:` line)."""
    from prefect.states import Failed

    setattr(error, _REPORTED, True)
    show_user_errors_as_one_line()
    return Failed(message=message or f"{type(error).__name__}: {error}", data=error)
