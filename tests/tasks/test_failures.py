"""One error model: a user's error is one line, a bug keeps its traceback; one retry preset."""

from __future__ import annotations

import errno
import io
import logging
from types import SimpleNamespace
from typing import Any

import pytest

from model_store import InvalidNameError
from storage import MissingPathError
from tasks.failures import RETRY_ON_IO_HICCUPS, is_transient, show_user_errors_as_one_line


@pytest.mark.filterwarnings("ignore:Logger 'prefect.task_runs' attempted to send logs")
def test_run_logs_keep_tracebacks_for_bugs_only() -> None:
    show_user_errors_as_one_line()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    run_logger = logging.getLogger("prefect.task_runs")
    run_logger.addHandler(handler)

    def logged(error: Exception) -> str:
        stream.seek(0)
        stream.truncate()
        try:
            raise error
        except Exception:
            run_logger.error("failed", exc_info=True)
        return stream.getvalue()

    try:
        assert logged(InvalidNameError("invalid model name '..'")) == "ERROR failed\n"
        assert logged(MissingPathError("input_path: /x does not exist")) == "ERROR failed\n"
        # A ValueError or OSError the code did not name as the user's is a bug: traceback.
        assert "Traceback" in logged(ValueError("a bug"))
        assert "Traceback" in logged(KeyError("a bug"))
    finally:
        run_logger.removeHandler(handler)


def test_only_io_hiccups_are_retried() -> None:
    def retried(error: BaseException) -> bool:
        state: Any = SimpleNamespace(data=error)
        return is_transient(None, None, state)  # type: ignore[arg-type]

    assert retried(OSError(errno.EIO, "I/O error"))
    assert retried(OSError(errno.ETIMEDOUT, "timed out"))
    assert not retried(PermissionError(errno.EACCES, "denied"))
    assert not retried(MissingPathError("input_path: /x does not exist"))
    assert not retried(ValueError("a bug"))
    assert RETRY_ON_IO_HICCUPS["retries"] == 1
    assert RETRY_ON_IO_HICCUPS["retry_condition_fn"] is is_transient
