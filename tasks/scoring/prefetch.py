"""Prepare the next record batches in worker threads while the current one is predicted."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["PREFETCH_BATCHES", "PREPARE_THREADS", "prefetched"]

# Batches prepared ahead of the one being predicted: enough to overlap, little memory.
PREFETCH_BATCHES = 2
# Threads preparing batches. Tokenizing runs mostly in numpy and Arrow, which release the GIL, so
# two threads keep up with a cheap model (cnn, ngrams) that one thread starves; the LSTM is no
# slower for the second (bench/bench_scoring.py, recipes).
PREPARE_THREADS = 2

T = TypeVar("T")
U = TypeVar("U")


def prefetched(
    items: Iterator[T],
    prepare: Callable[[T], U],
    depth: int = PREFETCH_BATCHES,
    threads: int = PREPARE_THREADS,
) -> Iterator[U]:
    """`prepare(item)` for each item in order, `depth` items ahead of the consumer (0: one at a
    time in the caller's thread).

    One thread takes the items (they come from a reader that is not thread-safe) and hands each
    to `threads` preparing threads; the queue bound keeps memory flat.
    """
    if depth < 1:
        for item in items:
            yield prepare(item)
        return
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scoring-prepare")

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
                if not put(("item", pool.submit(prepare, item))):
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
            future: Future[U] = payload
            yield future.result()
    finally:
        stop.set()
        producer.join()
        pool.shutdown(wait=True, cancel_futures=True)
