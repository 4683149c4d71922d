"""Where the package's log records go when it runs as the ``denoise`` command.

Every module logs to its own ``logging.getLogger(__name__)``; a library user configures
logging as usual. :func:`setup_logging` (called by the CLI) prints records as
``warning: <message>`` lines on stderr through ``tqdm.write``, so they do not break a
progress bar, and prints each distinct warning once (a file read twice warns once).
"""

from __future__ import annotations

import logging
import sys

from tqdm import tqdm

#: Logger of the whole package; module loggers are its children.
PACKAGE_LOGGER = "pipeline"


class _TqdmHandler(logging.Handler):
    """Writes records above the active progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


class _OncePerMessage(logging.Filter):
    """Lets a warning (or worse) through the first time its text appears only."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        text = record.getMessage()
        if text in self._seen:
            return False
        self._seen.add(text)
        return True


class _LowerLevelFormatter(logging.Formatter):
    """``info: …``, ``warning: …``: the level in lower case, like the CLI's ``error:`` lines."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno == logging.INFO else f"{record.levelname.lower()}: {text}"


def verbosity_level(quiet: int = 0, verbose: int = 0) -> int:
    """INFO by default; each ``-q`` one level up (to ERROR), each ``-v`` one down (to DEBUG)."""
    return min(logging.ERROR, max(logging.DEBUG, logging.INFO + 10 * (quiet - verbose)))


def setup_logging(level: int = logging.INFO) -> None:
    """Send the package's records at `level` and above to stderr (replacing an earlier setup)."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    for handler in list(logger.handlers):
        if isinstance(handler, _TqdmHandler):
            logger.removeHandler(handler)
    handler = _TqdmHandler()
    handler.setFormatter(_LowerLevelFormatter("%(message)s"))
    handler.addFilter(_OncePerMessage())
    logger.addHandler(handler)
    logger.setLevel(level)
