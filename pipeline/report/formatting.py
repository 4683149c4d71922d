"""Numbers as every report page and table shows them: the one number formatter.

The run, evaluate, apply and adapt pages and the benchmark tables format numbers with
:func:`format_number` and intervals with :func:`format_ci`, so a missing value reads the
same everywhere ("–").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: What a missing or undefined (NaN) value reads as.
MISSING = "–"


def as_float(value: Any) -> float:
    """A float, or NaN for None / empty / non-numeric values."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def format_number(value: Any, digits: int = 2, signed: bool = False) -> str:
    """`value` with `digits` decimals (a sign with `signed`).

    Anything that is not a number (None, empty text) or is NaN reads :data:`MISSING`;
    infinities read ``inf`` (a PSNR of identical images).
    """
    x = as_float(value)
    if math.isnan(x):
        return MISSING
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def format_ci(stat: Mapping[str, Any] | None, digits: int = 2, signed: bool = False) -> str:
    """``mean [low, high]`` of a :func:`pipeline.metrics.summarize` dict.

    The mean alone when the interval is undefined; :data:`MISSING` without a dict.
    """
    if not stat:
        return MISSING
    mean = format_number(stat.get("mean"), digits, signed)
    if math.isnan(as_float(stat.get("ci_low"))):
        return mean
    low, high = (
        format_number(stat["ci_low"], digits, signed),
        format_number(stat["ci_high"], digits, signed),
    )
    return f"{mean} [{low}, {high}]"
