"""Named points between the steps of a write, where a crash test makes the writer die.

Crash tests set REVIEW_SCORING_FAULT in a child process to `<point>` (the first time the code
reaches it), `<point>:<n>` (the n-th time) or `<point>:<n>:stop` (SIGSTOP instead of SIGKILL,
once), and the child dies exactly there: no sleeping and killing, which flakes on a slow machine
and misses the window on a fast one. In-process tests (the store's state machine) use
`crash_at`, which raises SimulatedCrash there instead. Unset, as in every real run, a fault
point does nothing.

The points: register.staged, register.before-commit (the version's files are in place, its
commit is not), aliases.before-commit (an alias change or a delete is decided, not written),
aliases.between-files (a folder's aliases.json is written, its history not yet),
delete.committed (a delete is recorded, the version's files not yet removed), delete.removing
(after each file of a deleted version is removed), score.before-publish, table.before-commit
(a run's rows for the predictions table are worked out, not committed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator

__all__ = ["FAULT_POINTS", "FAULT_VARIABLE", "SimulatedCrash", "crash_at", "fault_point"]

FAULT_VARIABLE = "REVIEW_SCORING_FAULT"
FAULT_POINTS = (
    "register.staged",
    "register.before-commit",
    "aliases.before-commit",
    "aliases.between-files",
    "delete.committed",
    "delete.removing",
    "score.before-publish",
    "table.before-commit",
)
_reached: Counter[str] = Counter()
_lock = threading.Lock()
_in_process: dict[str, int] = {}  # point -> the visit that raises SimulatedCrash


class SimulatedCrash(BaseException):
    """Raised at a fault point under `crash_at`. A BaseException, so that no `except
    Exception` in the code under test handles it, as nothing handles a kill -9."""


@contextlib.contextmanager
def crash_at(point: str, visit: int = 1) -> Iterator[None]:
    """Within the block, raise SimulatedCrash the `visit`-th time the code reaches `point`."""
    if point not in FAULT_POINTS:
        raise ValueError(f"unknown fault point {point!r}; known: {', '.join(FAULT_POINTS)}")
    with _lock:
        _in_process[point] = visit
        _reached[point] = 0
    try:
        yield
    finally:
        with _lock:
            _in_process.pop(point, None)


def fault_point(name: str) -> None:
    """Die here (SIGKILL), stop here (SIGSTOP) or raise SimulatedCrash, if a crash test asked
    for this point."""
    if _in_process:
        with _lock:
            wanted_visit = _in_process.get(name)
            if wanted_visit is not None:
                _reached[name] += 1
                if _reached[name] == wanted_visit:
                    raise SimulatedCrash(name)
    wanted = os.environ.get(FAULT_VARIABLE)
    if not wanted:
        return
    point, _, rest = wanted.partition(":")
    if point != name:
        return
    count_text, _, action = rest.partition(":")
    with _lock:
        _reached[name] += 1
        times = _reached[name]
    if times == int(count_text or 1):
        os.kill(os.getpid(), signal.SIGSTOP if action == "stop" else signal.SIGKILL)
