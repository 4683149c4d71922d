"""Process-wide settings changed for a block of work and put back after, and the C heap.

torch's thread count is global to the process: library functions set it only through
:func:`torch_threads`, so a caller finds it as it was. :func:`return_freed_heap` and
:func:`limit_heap_arenas` act on glibc's allocator and do nothing on other C libraries.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: ``M_ARENA_MAX`` of glibc's ``mallopt``.
_M_ARENA_MAX = -8


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` CPU threads for torch.

    None or 0 leaves torch's setting as it is; the setting before is put back when the block
    ends, also on an error.
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(before)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (it has ``malloc_trim`` and ``mallopt``), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only: AttributeError elsewhere
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def return_freed_heap() -> None:
    """Give the heap memory freed so far, in every thread's arena, back to the system.

    glibc keeps freed blocks in the arena of the thread that used them, where other threads
    cannot reuse them; call this between phases of work (after a file is read, denoised,
    written), not inside a loop that allocates the same sizes again.
    """
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def limit_heap_arenas(count: int) -> None:
    """Let at most `count` heaps serve the process's threads (glibc's ``M_ARENA_MAX``).

    Set it before threads start: each thread's first allocation picks its arena. Memory
    freed by one thread can then be reused by the others instead of staying in its own heap.
    """
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, count)
