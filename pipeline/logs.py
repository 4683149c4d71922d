"""Where the package's log records go when it runs as the ``denoise`` command.

Every module logs to its own ``logging.getLogger(__name__)``; a library user configures
logging as usual. :func:`setup_logging` (called by the CLI) prints records as
``warning: <message>`` lines on stderr through ``tqdm.write``, so they do not break a
progress bar, and prints each distinct warning once (a file read twice warns once).

Third-party libraries that log (tifffile, nibabel) are routed through the package's
logger: their records become ``warning: <file>: <first line>`` lines, the file being the
one this thread is working on (:func:`about_file`), instead of bare lines on stderr.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

#: Logger of the whole package; module loggers are its children.
PACKAGE_LOGGER = "pipeline"
#: Loggers of third-party readers whose records are re-logged by the package (file named).
THIRD_PARTY_LOGGERS = ("tifffile", "nibabel.global", "nibabel")

_working_on = threading.local()


@contextmanager
def about_file(path: str | Path) -> Iterator[None]:
    """Within the block, messages of this thread concern `path` (its name is put before them)."""
    from pipeline.text import path_text

    before = getattr(_working_on, "name", None)
    _working_on.name = path_text(Path(path).name)
    try:
        yield
    finally:
        _working_on.name = before


def with_file_name(text: str) -> str:
    """`text` after the name of the file this thread works on, unless it names it already."""
    name = getattr(_working_on, "name", None)
    return text if not name or name in text else f"{name}: {text}"


class _ToPackageLogger(logging.Filter):
    """On a third-party logger: re-log each record as the package's.

    The record is cut to its first line and headed by the file name; the original is dropped (also
    the library's own handler).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from pipeline.text import short_text

        lines = record.getMessage().strip().splitlines() or [""]
        text = short_text(f"{lines[0]} ({record.name})", 250)
        level = min(record.levelno, logging.WARNING)  # the read went on: at most a warning
        logging.getLogger(f"{PACKAGE_LOGGER}.io").log(level, "%s", with_file_name(text))
        return False


def route_third_party_logs() -> None:
    """Send the records of :data:`THIRD_PARTY_LOGGERS` through the package's logger (once)."""
    for name in THIRD_PARTY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _ToPackageLogger) for f in logger.filters):
            logger.addFilter(_ToPackageLogger())


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


@contextmanager
def each_warning_once(logger: logging.Logger) -> Iterator[None]:
    """Within the block, a warning (or worse) `logger` gave already in it is not logged again.

    For code that runs another function many times (each giving the same warnings) as one run.
    """
    once = _OncePerMessage()
    logger.addFilter(once)
    try:
        yield
    finally:
        logger.removeFilter(once)


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
    route_third_party_logs()


class WarningPrinter:
    """Show each distinct warning once as one ``warning: <file>: ...`` line on stderr.

    The file is the one this thread works on, when the text does not name it already.

    No source line; printed through tqdm, so a progress bar on the terminal is redrawn
    below the message instead of being broken by it.
    """

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def __call__(self, message, category, filename, lineno, file=None, line=None) -> None:
        """Print `message` unless the same text was shown already (``warnings.showwarning``)."""
        from pipeline.text import short_text

        lines = str(message).strip().splitlines() or [""]
        text = with_file_name(short_text(lines[0], 250))
        if text in self.seen:
            return
        self.seen.add(text)
        tqdm.write(f"warning: {text}", file=sys.stderr)
