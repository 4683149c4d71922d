"""Numbers as the benchmark's markdown tables show them (shared by the tables of every part)."""

from __future__ import annotations

import math
from typing import Any

from pipeline.detail import ACCEPTANCE_BAND, band_name

#: The detail-kept column of the acceptance (pooled task transfer function in its band).
DETAIL_COLUMN = band_name(ACCEPTANCE_BAND)


def fmt(x: Any, digits: int = 2, signed: bool = False) -> str:
    """`x` with `digits` decimals (a sign with `signed`); "–" for a missing or non-finite value."""
    """`x` with `digits` decimals (a sign with `signed`); "–" for a missing or non-finite value."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def fmt_ci(stat: dict[str, Any] | None, digits: int = 2, signed: bool = False) -> str:
    """A summary's mean with its 95% CI in brackets (the mean alone without a finite CI)."""
    """A summary's mean with its 95% CI in brackets (the mean alone without a finite CI)."""
    if not stat:
        return "–"
    text = fmt(stat.get("mean"), digits, signed)
    if stat.get("ci_low") is None or not math.isfinite(float(stat["ci_low"])):
        return text
    return f"{text} [{fmt(stat['ci_low'], digits, signed)}, {fmt(stat['ci_high'], digits, signed)}]"
