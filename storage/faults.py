"""Named points between the steps of a write, where a crash test makes this process die.

Crash tests set REVIEW_SCORING_FAULT in a child process to `<point>` (the first time the code
reaches it), `<point>:<n>` (the n-th time) or `<point>:<n>:stop` (SIGSTOP instead of SIGKILL,
once), and the child dies exactly there: no sleeping and killing, which flakes on a slow machine
and misses the window on a fast one. Unset, as in every real run, a fault point does nothing.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter

__all__ = ["FAULT_VARIABLE", "fault_point"]

FAULT_VARIABLE = "REVIEW_SCORING_FAULT"
_reached: Counter[str] = Counter()
_lock = threading.Lock()


def fault_point(name: str) -> None:
    """Die here (SIGKILL) or stop here (SIGSTOP) if REVIEW_SCORING_FAULT names this point."""
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
