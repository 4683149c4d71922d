"""The adapt page's numbers come from the report package's formatter (pipeline.report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.adapt.checks import scan_checks
from pipeline.adapt.report import _page_lines, _scan_table
from pipeline.report import format_number
from pipeline.report.formatting import MISSING


def _record() -> dict:
    return {
        "n_scans": 1,
        "scans": "scans",
        "method": "blindspot",
        "seconds_before_resume": 0.0,
        "seconds_preparing": 1.2,
        "seconds_this_run": 3.4,
        "budget_minutes": 0.5,
    }


def test_a_scan_the_model_left_unchanged_reads_missing_like_every_other_page():
    """Nothing removed: the removed part's correlation is undefined and reads "–", not "nan"."""
    scan = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    checks = scan_checks(scan, scan.copy())
    checks.pop("removed_autocorrelation")
    row = {"scan": "a.png", "height": 64, "width": 64, **checks}

    header, rows = _scan_table([row])
    assert header[0] == "scan" and rows[0][:2] == ["a.png", "64x64"]
    assert rows[0][2] == format_number(checks["noise_before"], 4)
    assert rows[0][4:] == [MISSING, MISSING]

    means = {k: row[k] for k in ("noise_before", "noise_after")}
    means |= {"removed_lag1_rows": float("nan"), "removed_lag1_columns": float("nan")}
    lines = _page_lines(Path("model.pt"), _record(), 1, means)
    assert f"lag 1: {MISSING} along rows, {MISSING} along columns" in lines[2]
    assert "nan" not in " ".join(lines)
    assert "5 s of a 0.5 min budget (1 s reading and preparing, 3 s training" in lines[0]
