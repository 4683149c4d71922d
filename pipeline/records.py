"""Crash-safe records: CSV and JSON files that are never left half written.

Two ways to write, for two kinds of record:

- :func:`write_csv` and :func:`write_json` replace a file atomically (written under a
  temporary name beside it, then renamed), so the file holds either the old or the new
  content, whatever happens in between.
- :func:`append_csv_row` appends one row to a growing log (``metrics.csv``, a manifest),
  optionally flushed to disk; a last line cut by a crash is dropped first, so the file
  keeps parsing, and :func:`read_csv` ignores such a line too.

Used by the manifest and failures of ``denoise apply``, ``metrics.csv``, ``train_log.csv``,
``failures.csv`` and the JSON files of runs and benchmarks.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

#: Marks a temporary file beside its final name: ``.<name>.partial-<pid>``.
PARTIAL_TAG = ".partial-"
#: Largest CSV field read (characters): older versions could write very long failure reasons.
MAX_FIELD_CHARS = 1 << 30

Row = Mapping[str, Any]


def partial_path(final: Path) -> Path:
    """The temporary name this process writes `final` under before renaming it."""
    return final.with_name(f".{final.name}{PARTIAL_TAG}{os.getpid()}")


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is deleted."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def cell(value: Any) -> Any:
    """A value as written to CSV: None is empty, numpy scalars are plain numbers."""
    if value is None:
        return ""
    return value.item() if isinstance(value, np.generic) else value


def columns_of(rows: Iterable[Row], first: Sequence[str] = ()) -> list[str]:
    """`first`, then every other key of `rows` in order of appearance."""
    columns = list(first)
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    return columns


def write_csv(rows: Iterable[Row], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """Write `rows` (replacing `path` atomically); columns: `columns`, else every key in order.

    Keys outside `columns` are left out; missing values are empty cells.
    """
    rows = list(rows)
    fields = list(columns) if columns is not None else columns_of(rows)
    with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, restval="", extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: cell(v) for k, v in row.items()} for row in rows)
    return Path(path)


def _drop_partial_line(path: Path) -> None:
    """Cut a last line left without its newline by an interrupted write."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with path.open("r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), [])


def append_csv_row(
    row: Row, path: str | Path, columns: Sequence[str] | None = None, *, durable: bool = False
) -> Path:
    """Append one row, writing the header first when the file is new or empty.

    With `columns` the header is exactly those (other keys are left out). Without, a row
    with a key the header lacks rewrites the file once with the widened header (earlier
    rows keep their values). `durable` flushes the row to disk before returning.
    """
    path = Path(path)
    if path.is_file():
        _drop_partial_line(path)
    if not path.is_file() or path.stat().st_size == 0:
        header = list(columns) if columns is not None else list(row)
        with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
            csv.DictWriter(fh, fieldnames=header).writeheader()
    header = _header(path)
    if columns is None and set(row) - set(header):
        return write_csv([*read_csv(path), row], path, columns_of([row], header))
    with open(path, "a", newline="", encoding="utf-8") as fh:
        csv.DictWriter(fh, fieldnames=header, restval="", extrasaction="ignore").writerow(
            {k: cell(v) for k, v in row.items()}
        )
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    return path


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """Rows of a CSV file as text; none when it is missing.

    A last line cut by a crash is ignored.
    """
    path = Path(path)
    if not path.is_file():
        return []
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))  # records of older versions
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text, newline="")))


def parse_cell(text: str | None) -> Any:
    """CSV text back to a value: empty is None, numbers become int or float, else the text."""
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def json_safe(obj: Any) -> Any:
    """`obj` with numpy values as plain numbers, paths as text and NaN/inf as None (strict JSON)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(obj: Any, path: str | Path, indent: int = 2) -> Path:
    """Write `obj` as strict JSON (see :func:`json_safe`), replacing `path` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(
            json.dumps(json_safe(obj), indent=indent, allow_nan=False) + "\n", encoding="utf-8"
        )
    return Path(path)
