"""Logs a shipper can read: one JSON object a line (Loki, Elasticsearch, CloudWatch); and a
console without SQLite's retryable lock tracebacks.

Switched on through Prefect's own logging settings, so that the worker, the flow-run processes
it starts and the CLI all write the same lines (`make ... LOG_FORMAT=json` sets both):

    PREFECT_LOGGING_FORMATTERS_JSON_CLASS=tasks.log_format.JsonLines
    PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER=json

Each object has `time` (UTC, ISO 8601), `level`, `logger`, `message`; the run's `flow_run_id`,
`flow_run_name`, `task_run_id`, `task_run_name` where Prefect knows them; what the project's log
calls add as `extra` (`input_file`, `rows`, `status_counts`, ...); and `exception`, the
traceback as text, when there is one.

`ConsoleHandler` (`make` sets `PREFECT_LOGGING_HANDLERS_CONSOLE_CLASS` to it for the server,
the worker and the commands) is Prefect's console handler without the tracebacks of a "database
is locked" from SQLite: a write that met another one and is retried (a worker's heartbeat over
its channel falls back to the REST API and reconnects). Prefect already keeps these out of its
API's and its task queue's logs unless `PREFECT_SERVER_LOG_RETRYABLE_ERRORS` is set; its worker
channel (new in 3.9) logs them, a traceback a minute on a busy 2-core machine. The setting still
brings them back.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

from prefect.logging.handlers import PrefectConsoleHandler

__all__ = [
    "ConsoleHandler",
    "JsonLines",
    "is_retryable_sqlite_lock",
    "say_expected_failures_once",
]

_SQLITE_LOCKED = "database is locked"


def is_retryable_sqlite_lock(record: logging.LogRecord) -> bool:
    """Whether the record's exception is SQLite's "database is locked", alone or wrapped by
    SQLAlchemy: the errors Prefect counts as retryable."""
    error = record.exc_info[1] if record.exc_info else None
    while error is not None:
        if type(error).__name__ == "OperationalError" and _SQLITE_LOCKED in str(error):
            return True
        error = error.__cause__ or getattr(error, "orig", None)
    return False


class ConsoleHandler(PrefectConsoleHandler):
    """Prefect's console handler, less SQLite's retryable lock tracebacks (module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if is_retryable_sqlite_lock(record):
            from prefect.settings import get_current_settings

            if not get_current_settings().server.log_retryable_errors:
                return False
        return bool(super().filter(record))


# What every LogRecord has: anything else on a record was given by the caller or Prefect.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
# Prefect's own record attributes that say nothing a reader of the line needs.
_LEFT_OUT = {"send_to_api", "worker_id"}


def _plain(value: Any) -> Any:
    """`value` if JSON can hold it as it is, else its text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return str(value)


class JsonLines(logging.Formatter):
    """One JSON object a line. Takes the arguments logging.config gives any formatter (Prefect's
    logging.yml names a `format` for its json formatter); it needs none of them."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: str = "%"):
        super().__init__()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in _LEFT_OUT and not name.startswith("_"):
                line[name] = _plain(value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def _expected_error_names() -> set[str]:
    """The class names of storage.UserError and every subclass of it imported so far."""
    from storage import UserError

    names, waiting = set(), [UserError]
    while waiting:
        error_class = waiting.pop()
        names.add(error_class.__name__)
        waiting.extend(error_class.__subclasses__())
    return names


class _ExpectedFailuresOnce(logging.Filter):
    """Drops a run's own lines about an expected failure (a UserError): its task's and its
    flow's "Finished in state Failed('DownloadError: ...')", and the failure hook's two "Running
    hook" lines around nothing (a bug's traceback, which the hook logs, stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(
            ("Running hook 'log_bug_traceback'", "Hook 'log_bug_traceback' finished")
        ):
            return False
        if message.startswith("Finished in state Failed("):
            return not any(f"{name}: " in message for name in _expected_error_names())
        return True


def say_expected_failures_once() -> None:
    """On the command line, which prints an expected failure as its one `error:` line: keep the
    runs' own lines about it off the terminal. Only the console's handlers get the filter; the
    lines still reach the Prefect API, so the run's page in the UI keeps them."""
    quiet = _ExpectedFailuresOnce()
    # Prefect's console handler sits on the root logger, which the runs' loggers propagate to.
    for name in ("", "prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not any(
                isinstance(existing, _ExpectedFailuresOnce) for existing in handler.filters
            ):
                handler.addFilter(quiet)
