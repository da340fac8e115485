"""A `train` or `score` stopped on purpose (SIGTERM, Ctrl-C) ends its run Cancelled, not Crashed."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

__all__ = ["StoppedBySignal", "stop_signals_end_runs_cancelled"]


# How long after SIGTERM or Ctrl-C the command signals itself again if the first was swallowed.
_STOP_AGAIN_SECONDS = 1.0


class StoppedBySignal(BaseException):
    """The command was asked to stop (SIGTERM, or Ctrl-C's SIGINT) while it ran."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = signal_number


@contextlib.contextmanager
def stop_signals_end_runs_cancelled(started: list[Any]) -> Iterator[None]:
    """Within the block, SIGTERM and Ctrl-C raise StoppedBySignal, and a flow run they stopped
    (its id appended to `started` by the flow's on_crashed hook) ends Cancelled, not Crashed:
    a run stopped on purpose was not lost. Prefect turns a SIGTERM during a run into a crash of
    the run, then hands the signal on to the handler installed here; Ctrl-C is Python's
    KeyboardInterrupt."""

    handled = threading.Event()

    def raise_stopped(signal_number: int, frame: FrameType | None) -> None:
        raise StoppedBySignal(signal_number)

    previous_hook = sys.unraisablehook

    def swallowed_stops_come_again(unraisable: Any) -> None:
        # A stop raised inside a destructor is swallowed (Python only reports it here): the
        # signal comes again a moment later, and no traceback reaches the terminal. Prefect's
        # own SIGTERM handler, installed while a flow runs, raises TerminationSignal.
        signal_number = _stop_signal_of(unraisable.exc_value)
        if signal_number is None:
            previous_hook(unraisable)
        elif not handled.is_set():
            timer = threading.Timer(_STOP_AGAIN_SECONDS, _signal_unless, (handled, signal_number))
            timer.daemon = True
            timer.start()

    sys.unraisablehook = swallowed_stops_come_again
    previous = signal.signal(signal.SIGTERM, raise_stopped)
    try:
        yield
    except KeyboardInterrupt:
        handled.set()
        _cancel(started, "SIGINT")
        raise StoppedBySignal(signal.SIGINT) from None
    except StoppedBySignal as stopped:
        handled.set()
        _cancel(started, signal.Signals(stopped.signal_number).name)
        raise
    finally:
        handled.set()
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = previous_hook


def _signal_unless(handled: threading.Event, signal_number: int) -> None:
    if not handled.is_set():
        os.kill(os.getpid(), signal_number)


def _stop_signal_of(exception: BaseException | None) -> int | None:
    from prefect.exceptions import TerminationSignal

    if isinstance(exception, KeyboardInterrupt):
        return signal.SIGINT
    if isinstance(exception, StoppedBySignal):
        return exception.signal_number
    if isinstance(exception, TerminationSignal):
        return exception.signal
    return None


def _cancel(started: list[Any], signal_name: str) -> None:
    if not started:
        return
    from prefect import get_client
    from prefect.states import Cancelled

    message = f"stopped from the command line ({signal_name})"
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(started[-1], Cancelled(message=message), force=True)
