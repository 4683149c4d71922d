"""Read-ahead: files are loaded by a background thread a bounded number ahead of their use."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: Files read ahead of the denoiser (bounded queue of the reader thread).
PREFETCH_FILES = 2


def prefetch(items: Iterable[T], load: Callable[[T], R], depth: int = PREFETCH_FILES) -> Iterator[tuple[T, R | Exception, float]]:
    """Yield ``(item, load(item) or the exception it raised, seconds)`` in order.

    A daemon thread runs `load` at most `depth` items ahead of the consumer, so memory is
    bounded by ``depth + 2`` loaded items whatever the number of items.
    """
    channel: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(entry: object) -> None:
        while not stop.is_set():
            try:
                channel.put(entry, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        for item in items:
            if stop.is_set():
                return
            start = time.perf_counter()
            try:
                result: R | Exception = load(item)
            except Exception as err:  # noqa: BLE001 - handed to the consumer as the result
                result = err
            put((item, result, time.perf_counter() - start))
        put(end)

    thread = threading.Thread(target=work, name="denoise-reader", daemon=True)
    thread.start()
    try:
        while (entry := channel.get()) is not end:
            yield entry  # type: ignore[misc]
    finally:
        stop.set()
        thread.join(timeout=5)
