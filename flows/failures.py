"""Ending a run Failed for an expected reason: the state says why, the log says it once.

An expected failure (a bad name or path, bad data, an unknown model, a file that cannot be scored)
ends a run with a Failed state whose message says what and where; the task that met it logged one
ERROR line (tasks.retries says why). Prefect's engine would log the same error once more, with a
traceback, as the worker's process exits ("Engine execution exited with unexpected exception"):
the filter here drops that one record for errors a flow already reported. Bugs keep tracebacks.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect.states import Failed, State

from model_store import ModelStoreError

__all__ = ["EXPECTED_ERRORS", "fail_run"]

# What a run can meet that the user can fix. ValidationError and the scoring errors are
# ValueErrors; FileNotFoundError and PermissionError are OSErrors; a failed download is a
# RuntimeError, as is ScoringFailedError.
EXPECTED_ERRORS = (ValueError, OSError, RuntimeError, ModelStoreError)
_REPORTED = "_review_scoring_reported_as_state"


class _DropReportedErrors(logging.Filter):
    """Drops log records that carry an error a flow already ended its run with."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not getattr(error, _REPORTED, False)


def fail_run(error: BaseException, message: str | None = None) -> State[Any]:
    """The Failed state a flow returns for an expected error: its message, and the error to
    raise for a caller in this process (the CLI prints it as one `error:` line)."""
    setattr(error, _REPORTED, True)
    run_logger = logging.getLogger("prefect.flow_runs")
    if not any(isinstance(known, _DropReportedErrors) for known in run_logger.filters):
        run_logger.addFilter(_DropReportedErrors())
    return Failed(message=message or f"{type(error).__name__}: {error}", data=error)
