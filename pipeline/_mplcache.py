"""Keep matplotlib's cache out of $HOME: nothing is written outside a run's own folders.

Matplotlib writes a font cache into ``~/.cache/matplotlib`` (or ``$MPLCONFIGDIR``) the
first time it draws text. Unless the user has set ``MPLCONFIGDIR``, it is pointed at a
per-process folder in the temporary directory, created only if matplotlib is used and
deleted when the process exits (rebuilding the cache costs about half a second).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid


def use_private_matplotlib_cache() -> str | None:
    """Set ``MPLCONFIGDIR`` to a fresh per-process path unless it is set; return that path."""
    if os.environ.get("MPLCONFIGDIR"):
        return None
    folder = os.path.join(tempfile.gettempdir(), f"denoise-matplotlib-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.environ["MPLCONFIGDIR"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
