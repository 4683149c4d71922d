"""Background threads around the denoiser: files are read ahead of it and written behind it.

:func:`prefetch` loads files a bounded number ahead of their use; :class:`WriteBehind` runs
the writing of finished outputs while the next file is denoised. Decoding (Pillow, pydicom),
numpy conversions, zlib and torch release the GIL, so the three overlap.
"""

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


def prefetch(
    items: Iterable[T], load: Callable[[T], R], depth: int = PREFETCH_FILES
) -> Iterator[tuple[T, R | Exception, float]]:
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


class WriteBehind:
    """Runs submitted calls in order on one background thread, overlapping them with the caller.

    At most `depth` calls are queued or running: :meth:`submit` waits for a free slot, so the
    memory held by pending outputs stays bounded. A call should handle its own errors; one
    that escapes stops the thread (later calls are dropped) and is raised again by the next
    :meth:`submit` or by :meth:`close`, once.
    """

    def __init__(self, depth: int = 1, name: str = "denoise-writer") -> None:
        self._slots = threading.Semaphore(depth)
        self._calls: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self._raised = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            try:
                if self._error is None:
                    call()
            except BaseException as err:  # noqa: BLE001 - handed to close()
                self._error = err
            finally:
                self._slots.release()

    def _raise_error(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error

    def submit(self, call: Callable[[], object]) -> None:
        """Queue `call`, waiting while `depth` calls are already queued or running."""
        self._slots.acquire()
        try:
            self._raise_error()
        except BaseException:
            self._slots.release()
            raise
        self._calls.put(call)

    def close(self) -> None:
        """Wait for every submitted call; raise the first error that escaped one.

        An error already raised by :meth:`submit` is not raised again.
        """
        self._calls.put(None)
        self._thread.join()
        self._raise_error()
