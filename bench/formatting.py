"""Numbers as the benchmark's markdown tables show them: the report's one number formatter.

:func:`fmt` is :func:`pipeline.report.formatting.format_number` and :func:`fmt_ci` is
:func:`pipeline.report.formatting.format_ci`, so the benchmark tables and the report pages
read the same.
"""

from __future__ import annotations

from pipeline.detail import ACCEPTANCE_BAND, band_name
from pipeline.report.formatting import format_ci as fmt_ci
from pipeline.report.formatting import format_number as fmt

#: The detail-kept column of the acceptance (pooled task transfer function in its band).
DETAIL_COLUMN = band_name(ACCEPTANCE_BAND)

__all__ = ["DETAIL_COLUMN", "fmt", "fmt_ci"]
