"""Files that were skipped, with the reason: the rows of a run's ``failures.csv``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipeline.records import write_csv
from pipeline.text import path_text, short_text

FAILURE_COLUMNS = ("path", "reason")


@dataclass(frozen=True)
class Failure:
    """One input that could not be used.

    Attributes
    ----------
    path: the file (or folder) concerned.
    reason: one line saying what went wrong, e.g. the message of an ImageReadError.
    """

    path: Path
    reason: str


def write_failures_csv(failures: Iterable[Failure], path: str | Path) -> Path:
    r"""Write `failures` as a CSV with the columns ``path, reason``; return its path.

    The parent folder is created when needed. The header is written even when there are
    no failures, so the file always parses; the file is replaced atomically. Paths that
    are not UTF-8 are written with ``\xNN`` escapes; reasons are cut to one line of at
    most 300 characters.
    """
    rows = ({"path": path_text(f.path), "reason": short_text(f.reason)} for f in failures)
    return write_csv(rows, path, FAILURE_COLUMNS)
