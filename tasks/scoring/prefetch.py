"""Prepare the next record batches in a thread while the current one is predicted."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

__all__ = ["PREFETCH_BATCHES", "prefetched"]

# Record batches prepared ahead of the one being predicted: enough to overlap, little memory.
PREFETCH_BATCHES = 2

T = TypeVar("T")


def prefetched(items: Iterator[T], depth: int = PREFETCH_BATCHES) -> Iterator[T]:
    """Produce `items` in a background thread, `depth` ahead of the consumer (0: no thread).

    Tokenizing holds the GIL while TensorFlow's predict releases it, so preparing the next batch
    while the current one is predicted uses both cores. The queue bound keeps memory flat.
    """
    if depth < 1:
        yield from items
        return
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(message: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                handoff.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(("error", error))

    producer = threading.Thread(target=produce, name="scoring-prefetch", daemon=True)
    producer.start()
    try:
        while True:
            kind, payload = handoff.get()
            if kind == "done":
                return
            if kind == "error":
                raise payload
            yield payload
    finally:
        stop.set()
        producer.join()
