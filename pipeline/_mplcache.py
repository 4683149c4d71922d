"""Keep libraries' caches out of $HOME: nothing is written outside a run's own folders.

Matplotlib writes a font cache into ``~/.cache/matplotlib`` (or ``$MPLCONFIGDIR``) the
first time it draws text. Unless the user has set ``MPLCONFIGDIR``, it is pointed at a
per-process folder in the temporary directory, created only if matplotlib is used and
deleted when the process exits, also when the command is ended by SIGTERM (:func:`exit_on_sigterm`).

onnxruntime, when imported, writes a telemetry device id into
``~/.cache/Microsoft/DeveloperTools`` and a session file into the temporary directory,
unless ``ORT_DISABLE_TELEMETRY`` is set: it is set to 1 unless the user has set it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager


def use_private_matplotlib_cache() -> str | None:
    """Set ``MPLCONFIGDIR`` to a fresh per-process path unless it is set; return that path."""
    if os.environ.get("MPLCONFIGDIR"):
        return None
    folder = os.path.join(
        tempfile.gettempdir(), f"denoise-matplotlib-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    )
    os.environ["MPLCONFIGDIR"] = folder
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _remove_on_sigterm(folder)
    return folder


def _remove_on_sigterm(folder: str) -> None:
    """Remove `folder` on SIGTERM, then end by SIGTERM.

    Only where SIGTERM has its default action, in the main thread (atexit does not run on a signal).
    """

    def remove_and_end(signum: int, frame: object) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    ):
        signal.signal(signal.SIGTERM, remove_and_end)


def no_onnxruntime_telemetry() -> None:
    """Set ``ORT_DISABLE_TELEMETRY=1`` (before onnxruntime is imported) unless it is set."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")


@contextmanager
def exit_on_sigterm() -> Iterator[None]:
    """Let SIGTERM end the process as an exception does, so that cleanup runs.

    Within the block SIGTERM exits with status 143 after temporary outputs and the matplotlib folder
    are removed. Only in the main thread and where SIGTERM has its default action or this module's
    (a caller's own handler is kept).
    """

    def terminate(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    before = signal.getsignal(signal.SIGTERM)
    own = threading.current_thread() is threading.main_thread() and (
        before is signal.SIG_DFL or getattr(before, "__name__", "") == "remove_and_end"
    )
    if own:
        signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        if own:
            signal.signal(signal.SIGTERM, before)
