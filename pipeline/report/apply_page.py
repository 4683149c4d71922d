"""The apply report of a folder run (``OUT/report.html``).

It has a viewer of a sample of the scans and a sortable table of every file (the HTML
sections are in :mod:`pipeline.report.apply_sections`).

The page itself is self-contained (inline style and script; thumbnails and crops as
``data:`` URIs). Full-resolution views of the sampled scans (input, output and the removed
component, input minus output) are PNG files in ``report_views/`` beside it, linked
relatively, so the page stays light for a folder of any size. The sample covers the
formats, the sub-folders and the range of estimated noise
(:func:`pipeline.report.apply_sample.choose_sample`).
"""

from __future__ import annotations

import html
import logging
import math
import shlex
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pipeline import __version__
from pipeline.metrics import paired_difference
from pipeline.process import return_freed_heap
from pipeline.report.apply_assets import HOW_TO_VIEW, SCRIPT, STYLE
from pipeline.report.apply_sample import SAMPLE_SIZE, Row, choose_sample, noise_of, relative_input
from pipeline.report.apply_sections import (
    NOISE_DIGITS,
    failure_rows,
    failure_table,
    file_table,
    gallery,
    scan_section,
)
from pipeline.report.apply_views import (
    VIEWS,
    ScanView,
    clear_old_views,
    make_view,
)
from pipeline.report.figures import png_data_uri, save_figure
from pipeline.report.formatting import as_float, format_ci, format_number
from pipeline.report.shell import figure_html, html_header, html_page
from pipeline.report.tables import Table, write_md
from pipeline.text import path_text, short_text

log = logging.getLogger(__name__)


def _command_line() -> str:
    """How this process was started, e.g. ``denoise apply -i IN -o OUT``."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    if program == "__main__.py":
        program = "python -m pipeline"
    return " ".join([program, *(shlex.quote(path_text(a)) for a in sys.argv[1:])])


def _summary_lines(rows: Sequence[Row], shown: int, failed: int = 0) -> list[str]:
    pairs = [noise_of(r) for r in rows]
    pairs = [(b, a) for b, a in pairs if math.isfinite(b) and math.isfinite(a)]
    seconds = [s for s in (as_float(r.get("seconds")) for r in rows) if math.isfinite(s)]
    failed_words = (
        f"{failed} failed (reasons under Failed files and in failures.csv); " if failed else ""
    )
    lines = [
        (
            f"{len(rows)} files denoised; {failed_words}{shown} of the denoised shown below, "
            "chosen to cover the formats, the folders "
            "and the range of noise. There is no clean reference, so the noise is estimated "
            "(wavelet median "
            "absolute deviation on the central part, as a fraction of the image's full range) "
            "before and after."
        )
    ]
    if pairs:
        before, after = [b for b, _ in pairs], [a for _, a in pairs]
        diff = paired_difference(after, before)
        lines.append(
            f"Mean estimated noise {np.mean(before):.4f} before, {np.mean(after):.4f} after; "
            f"mean change {format_ci(diff, 4, True)} (95% CI, {diff['n']} files)."
        )
    if seconds and sum(seconds) > 0:
        lines.append(
            f"{sum(seconds):.1f} s of work in all, {len(seconds) / sum(seconds):.2f} files/s."
        )
    return lines


def noise_figure(rows: Sequence[Row], path: Path) -> Path | None:
    """Estimated noise after versus before denoising, one point per file (None without data)."""
    pairs = [p for p in (noise_of(r) for r in rows) if all(math.isfinite(v) for v in p)]
    if not pairs:
        return None
    before, after = [b for b, _ in pairs], [a for _, a in pairs]
    fig = Figure(figsize=(5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(before, after, s=14, alpha=0.7)
    top = max(before + after + [1e-3]) * 1.05
    ax.plot([0, top], [0, top], color="gray", linestyle="--", linewidth=1, label="no change")
    ax.set(
        xlabel="estimated noise before (fraction of range)",
        ylabel="estimated noise after",
        xlim=(0, top),
        ylim=(0, top),
    )
    ax.legend()
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def _facts(rows: Sequence[Row], output_dir: Path, input_dir: Path | None) -> dict[str, str]:
    models = list(dict.fromkeys(str(r.get("model") or "") for r in rows if r.get("model")))
    checksums = list(
        dict.fromkeys(str(r.get("model_sha256") or "") for r in rows if r.get("model_sha256"))
    )
    return {
        "model": "; ".join(models) or "unknown",
        "sha256 (first 16 hex digits)": "; ".join(checksums) or "unknown",
        "version": f"denoise-pipeline {__version__}",
        "IN": path_text(input_dir) if input_dir is not None else "unknown",
        "OUT": path_text(output_dir),
        "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": _command_line(),
    }


@contextmanager
def _quiet_reads() -> Iterator[None]:
    """No warnings from reading files.

    What reading a file warns (an old ACR-NEMA file, ...) was said when the file was
    denoised; the report does not repeat it, not even on a rerun that skips every file.
    """
    logger = logging.getLogger("pipeline.io")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def write_apply_report(
    rows: Sequence[Row],
    output_dir: Path,
    input_dir: Path | None = None,
    sample_size: int = SAMPLE_SIZE,
    failures: Sequence[Mapping[str, str]] = (),
) -> dict[str, Path]:
    """``report.html``, ``report.md``, the sample's views and the noise figure; their paths.

    Parameters
    ----------
    rows : manifest rows (``input`` absolute, ``output`` relative to `output_dir`, noise,
        size, seconds, model and its sha256); values may be CSV strings.
    output_dir : OUT, where the page, ``report.md`` and ``report_views/`` (the views, the
        noise figure) go.
    input_dir : IN, for paths relative to it (None: paths as recorded).
    sample_size : scans shown in the viewer.
    failures : failures.csv rows (``path``, ``reason``), counted and listed.
    """
    output_dir = Path(output_dir)
    rows = sorted(rows, key=lambda r: relative_input(r, input_dir))
    views = _make_views(rows, output_dir, input_dir, sample_size)
    facts = _facts(rows, output_dir, input_dir)
    lines = _summary_lines(rows, len(views), len(failures))
    written: dict[str, Path] = {}
    figure = noise_figure(rows, output_dir / VIEWS / "noise_before_after.png")
    if figure is not None:
        written["noise"] = figure
    body = _page_body(rows, views, lines, facts, figure, failures, input_dir)
    page = output_dir / "report.html"
    page.write_text(
        html_page("Denoised scans · " + facts["date"], body, STYLE, SCRIPT), encoding="utf-8"
    )
    written["html"] = page
    written["markdown"] = _write_markdown(
        output_dir / "report.md", rows, lines, facts, failures, input_dir
    )
    return written


def _make_views(
    rows: Sequence[Row], output_dir: Path, input_dir: Path | None, sample_size: int
) -> list[ScanView]:
    """The sample's views (old ones removed first).

    A scan that cannot be shown is left out with a warning.
    """
    clear_old_views(output_dir / VIEWS)
    views: list[ScanView] = []
    return_freed_heap()
    with _quiet_reads():
        for row in choose_sample(rows, input_dir, sample_size):
            try:
                views.append(make_view(len(views), row, output_dir, input_dir))
            except Exception as err:  # noqa: BLE001 - a scan that cannot be shown is left out
                log.warning(
                    "no view of %s in the report (%s)", row.get("input"), short_text(str(err), 200)
                )
    return views


def _page_body(
    rows: Sequence[Row],
    views: Sequence[ScanView],
    lines: Sequence[str],
    facts: Mapping[str, str],
    figure: Path | None,
    failures: Sequence[Mapping[str, str]],
    input_dir: Path | None,
) -> str:
    """The page's HTML.

    Header, summary, the sample's viewers, failures, all files, the noise figure.
    """
    parts = [html_header("Denoised scans", facts)]
    parts += [f"<p>{html.escape(line)}</p>" for line in lines]
    if views:
        parts += ["<h2>Sample</h2>", gallery(views), HOW_TO_VIEW.format(views=VIEWS)]
        parts += [scan_section(v) for v in views]
    if failures:
        parts.append(failure_table(failures, input_dir))
    parts += [
        "<h2>All files</h2><p>Click a column title to sort.</p>",
        file_table(rows, input_dir),
    ]
    if figure is not None:
        caption = "Estimated noise after versus before denoising, one point per file"
        parts.append(figure_html(caption, png_data_uri(figure), "noise after versus before"))
    return "\n".join(parts)


def _write_markdown(
    path: Path,
    rows: Sequence[Row],
    lines: Sequence[str],
    facts: Mapping[str, str],
    failures: Sequence[Mapping[str, str]],
    input_dir: Path | None,
) -> Path:
    """report.md: the facts, the summary and a table of every file (and of the failures)."""
    table: Table = (
        ["input (relative to IN)", "output", "noise before", "noise after", "seconds"],
        [
            [
                relative_input(r, input_dir),
                str(r.get("output") or "–"),
                format_number(noise_of(r)[0], NOISE_DIGITS),
                format_number(noise_of(r)[1], NOISE_DIGITS),
                format_number(as_float(r.get("seconds")), 2),
            ]
            for r in rows
        ],
    )
    md_lines = [f"{k}: {v}" for k, v in facts.items()] + [
        "",
        *lines,
        "",
        "The viewer is report.html.",
    ]
    tables = [table] + (
        [(["failed input (relative to IN)", "reason"], failure_rows(failures, input_dir))]
        if failures
        else []
    )
    return write_md(path, "Denoised scans", md_lines, tables)


def write_report(
    rows: Sequence[Row],
    output_dir: Path,
    input_dir: Path | None = None,
    failures: Sequence[Mapping[str, str]] = (),
) -> Path | None:
    """report.html (and report.md, report_views/) for the manifest rows and failures.

    None when there are neither.
    """
    if not rows and not failures:
        return None
    try:
        return write_apply_report(rows, output_dir, input_dir, failures=failures)["html"]
    except Exception as err:  # noqa: BLE001 - the denoised files are complete either way
        log.warning("the report could not be written (%s: %s)", type(err).__name__, err)
        return None
