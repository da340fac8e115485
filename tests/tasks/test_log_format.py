"""JSON-lines logs (tasks/log_format.py), without Prefect: one object a line, every field a
shipper needs, nothing lost from the message or the traceback."""

from __future__ import annotations

import json
import logging
import sys

from tasks.log_format import JsonLines


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("prefect.task_runs", logging.INFO, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


def test_a_record_is_one_json_object_on_one_line_with_its_run_and_its_fields() -> None:
    record = _record(
        "%s: %d rows\nsecond line",
        "day=1/a.parquet",
        30,
        flow_run_id="f-1",
        task_run_name="score-file day=1/a.parquet",
        input_file="day=1/a.parquet",
        status_counts={"ok": 28, "empty_text": 2},
        path=object(),
    )
    text = JsonLines("default").format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert line["message"] == "day=1/a.parquet: 30 rows\nsecond line"
    assert (line["level"], line["logger"]) == ("INFO", "prefect.task_runs")
    assert line["time"].endswith("+00:00")
    assert line["flow_run_id"] == "f-1" and line["task_run_name"] == "score-file day=1/a.parquet"
    assert line["input_file"] == "day=1/a.parquet"
    assert line["status_counts"] == {"ok": 28, "empty_text": 2}
    assert line["path"].startswith("<object object")  # what JSON cannot hold, as text
    # The record's own bookkeeping is not repeated.
    assert not {"msg", "args", "levelno", "lineno", "pathname"} & set(line)


def test_a_traceback_is_kept_in_the_line() -> None:
    try:
        raise ValueError("bad row 3")
    except ValueError:
        record = _record("scoring failed")
        record.exc_info = sys.exc_info()
    line = json.loads(JsonLines().format(record))
    assert "Traceback" in line["exception"] and "ValueError: bad row 3" in line["exception"]


def _record_of(error: BaseException) -> logging.LogRecord:
    try:
        raise error
    except BaseException:
        import sys

        return logging.LogRecord(
            "prefect.server", logging.ERROR, "", 0, "failed", None, sys.exc_info()
        )


def test_the_console_leaves_out_sqlites_retryable_locks_only() -> None:
    """Issue 24, item 10: "database is locked" tracebacks (a write Prefect retries) stay out of
    the server's log unless PREFECT_SERVER_LOG_RETRYABLE_ERRORS asks for them."""
    import sqlite3

    import sqlalchemy.exc
    from prefect.settings import PREFECT_SERVER_LOG_RETRYABLE_ERRORS, temporary_settings

    from tasks.log_format import ConsoleHandler

    locked = sqlite3.OperationalError("database is locked")
    wrapped = sqlalchemy.exc.OperationalError("UPDATE worker SET ...", {}, locked)
    handler = ConsoleHandler()
    assert not handler.filter(_record_of(wrapped))
    assert not handler.filter(_record_of(locked))
    assert handler.filter(_record_of(sqlite3.OperationalError("no such table: worker")))
    assert handler.filter(_record_of(RuntimeError("database is locked")))  # not SQLite's
    assert handler.filter(logging.LogRecord("x", logging.INFO, "", 0, "fine", None, None))
    with temporary_settings({PREFECT_SERVER_LOG_RETRYABLE_ERRORS: True}):
        assert handler.filter(_record_of(wrapped))
