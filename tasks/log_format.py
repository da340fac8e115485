"""Logs a shipper can read: one JSON object a line (Loki, Elasticsearch, CloudWatch).

Switched on through Prefect's own logging settings, so that the worker, the flow-run processes
it starts and the CLI all write the same lines (`make ... LOG_FORMAT=json` sets both):

    PREFECT_LOGGING_FORMATTERS_JSON_CLASS=tasks.log_format.JsonLines
    PREFECT_LOGGING_HANDLERS_CONSOLE_FORMATTER=json

Each object has `time` (UTC, ISO 8601), `level`, `logger`, `message`; the run's `flow_run_id`,
`flow_run_name`, `task_run_id`, `task_run_name` where Prefect knows them; what the project's log
calls add as `extra` (`input_file`, `rows`, `status_counts`, ...); and `exception`, the
traceback as text, when there is one.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

__all__ = ["JsonLines"]

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
