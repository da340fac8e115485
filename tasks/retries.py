"""Which failures a task tries again: I/O hiccups, never a bad input or a missing file.

Every task that can fail for an expected reason (a bad file, an unknown model, a path that is not
there) has retries with this condition. Prefect then logs its failure as one line, the state's
message, where a task without retries logs the whole traceback; tracebacks are for bugs.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefect.client.schemas.objects import TaskRun
    from prefect.states import State
    from prefect.tasks import Task

__all__ = ["RETRY_DELAY_SECONDS", "is_transient"]

RETRY_DELAY_SECONDS = 5
# Errors that a second try may not meet: a network share, a disk or a download that hiccuped.
_TRANSIENT_ERRNOS = frozenset(
    {errno.EIO, errno.EAGAIN, errno.EINTR, errno.ETIMEDOUT, errno.ESTALE, errno.ECONNRESET}
)


def is_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """A `retry_condition_fn`: retry OSErrors whose errno says the next try may succeed."""
    error = state.data
    return isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS
