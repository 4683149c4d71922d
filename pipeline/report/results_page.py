"""Results pages: a method table, figures and notes as ``report.html`` (and ``report.md``).

The run and evaluate pages (:mod:`pipeline.report.run_page`) and the adapt report are
results pages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.report.shell import write_html
from pipeline.report.tables import Table, reference_line, summary_table, write_md


def write_report_html(
    path: str | Path,
    title: str,
    summary: Mapping[str, Any] | None,
    figures: Mapping[str, str | Path],
    notes: Sequence[str] = (),
    facts: Mapping[str, str] | None = None,
) -> Path:
    """Self-contained HTML report: header, method table, figures and notes.

    The header holds the title and ``facts`` such as date, commit and run folder; the method codes
    are spelled out; figures are keyed by caption.

    Nothing is loaded from outside the file: the style is inline and every figure is a
    base64 PNG data URI, so it opens offline.
    """
    lines = [] if summary is None else [reference_line(summary)]
    tables = [] if summary is None else [summary_table(summary)]
    methods = [] if summary is None else list(summary["methods"])
    return write_html(path, title, lines, tables, figures, notes, facts, methods)


def write_page(
    out_dir: str | Path,
    title: str,
    lines: Sequence[str],
    tables: Sequence[Table],
    figures: Mapping[str, Path],
    notes: Sequence[str] = (),
) -> dict[str, Path]:
    """report.md and the self-contained report.html in `out_dir` (figures inside it).

    Returns ``{"markdown": path, "html": path}``.
    """
    out_dir = Path(out_dir)
    links = [
        f"![{caption}]({Path(path).relative_to(out_dir).as_posix()})"
        for caption, path in figures.items()
    ]
    return {
        "markdown": write_md(out_dir / "report.md", title, [*lines, "", *links, *notes], tables),
        "html": write_html(out_dir / "report.html", title, lines, tables, figures, notes),
    }
