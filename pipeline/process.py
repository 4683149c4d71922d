"""Process-wide settings changed for a block of work and put back after: torch's CPU threads.

torch's thread count is global to the process: library functions set it only through
:func:`torch_threads`, so a caller finds it as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` CPU threads for torch (None or 0: torch's setting as it is);
    the setting before is put back when the block ends, also on an error.
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if threads:
            torch.set_num_threads(before)
