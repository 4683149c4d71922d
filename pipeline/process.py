"""Process-wide settings: torch's CPU threads for a block of work, and how the C heap hands
freed memory back to the system.

Both are global to the process. Library functions use :func:`torch_threads`, which puts
torch's setting back; :func:`release_freed_memory` is for a command's entry point only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterator
from contextlib import contextmanager

import torch

#: glibc's ``mallopt`` parameters (malloc.h) and the values the command sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Blocks from this size up get their own memory mapping, returned to the system when freed.
MMAP_THRESHOLD = 256 * 1024
#: Free memory above this at the top of the heap is returned to the system.
TRIM_THRESHOLD = 1024 * 1024


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` CPU threads for torch (None or 0: torch's setting as it is);
    the setting before is put back when the block ends, also on an error."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(before)


def release_freed_memory() -> bool:
    """Make glibc hand memory back to the system as soon as it is freed; False where the C
    library is not glibc (nothing is changed there).

    By default glibc keeps freed blocks below 32 MiB in per-thread heaps for reuse: the
    reader, the network and the writer of ``denoise apply`` each keep the peak of their own
    temporaries, and the process's resident memory is their sum. Fixed thresholds
    (:data:`MMAP_THRESHOLD`, :data:`TRIM_THRESHOLD`) keep it near what is in use.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - present in glibc only
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
