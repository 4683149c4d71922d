"""Reports: the pages of the run, evaluate, apply and adapt commands, from one shell.

Parts of the package
--------------------
:mod:`~pipeline.report.formatting` (the one number formatter), :mod:`~pipeline.report.summaries`
(per-method statistics), :mod:`~pipeline.report.tables` (method table, markdown),
:mod:`~pipeline.report.figures` and :mod:`~pipeline.report.example_figure` (PNG figures),
:mod:`~pipeline.report.shell` (the HTML shell every page shares: :func:`html_page`,
:func:`html_header`), :mod:`~pipeline.report.results_page` (a results page),
:mod:`~pipeline.report.run_page` (the run page) and the
apply report, :mod:`~pipeline.report.apply_page` (with :mod:`~pipeline.report.apply_sample`
and :mod:`~pipeline.report.apply_views`).

A page built elsewhere uses :func:`html_page` for the document, :func:`html_header` for its
title and facts, :func:`format_number` and :func:`format_ci` for numbers, or
:func:`write_page` for a whole results page with its markdown twin.
"""

from pipeline.report.example_figure import detail_crop, example_caption, example_panel_figure
from pipeline.report.figures import (
    distribution_figure,
    loss_curve_figure,
    png_data_uri,
    save_figure,
)
from pipeline.report.formatting import as_float, format_ci, format_number
from pipeline.report.results_page import write_page, write_report_html
from pipeline.report.shell import figure_html, html_header, html_page, html_table
from pipeline.report.summaries import NOISY, rows_by_method, summarize_methods
from pipeline.report.tables import (
    METHOD_WORDS,
    MODEL_WORDS,
    Table,
    describe_method,
    markdown_table,
    method_lines,
    summary_table,
    write_md,
    write_report_md,
)

__all__ = [
    "METHOD_WORDS",
    "MODEL_WORDS",
    "NOISY",
    "Table",
    "as_float",
    "describe_method",
    "detail_crop",
    "distribution_figure",
    "example_caption",
    "example_panel_figure",
    "figure_html",
    "format_ci",
    "format_number",
    "html_header",
    "html_page",
    "html_table",
    "loss_curve_figure",
    "markdown_table",
    "method_lines",
    "png_data_uri",
    "rows_by_method",
    "save_figure",
    "summarize_methods",
    "summary_table",
    "write_md",
    "write_page",
    "write_report_html",
    "write_report_md",
]
