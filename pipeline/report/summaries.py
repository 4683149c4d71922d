"""Per-method statistics of metrics rows, with paired differences to a reference method.

A metrics row is a dict with ``image`` (id), ``method``, ``psnr``, ``ssim`` and ``seconds``
plus any extra keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pipeline.baselines import BASELINES
from pipeline.metrics import paired_difference, summarize
from pipeline.report.formatting import as_float

NOISY = "noisy"

Row = Mapping[str, Any]


def rows_by_method(rows: Iterable[Row]) -> dict[str, dict[str, Row]]:
    """``{method: {image: row}}``, in order of appearance; a repeated pair keeps its last row."""
    table: dict[str, dict[str, Row]] = {}
    for row in rows:
        table.setdefault(str(row["method"]), {})[str(row["image"])] = row
    return table


def _choose_reference(
    table: dict[str, dict[str, Row]], reference_method: str | None, baselines: Iterable[str]
) -> tuple[str | None, str]:
    if reference_method is not None:
        if reference_method not in table:
            raise ValueError(
                f"reference method {reference_method!r} has no rows; methods: {', '.join(table)}"
            )
        return reference_method, "given"
    candidates = [m for m in table if m in set(baselines)]
    if candidates:

        def mean_psnr(method: str) -> float:
            mean = summarize([as_float(r.get("psnr")) for r in table[method].values()])["mean"]
            return mean if math.isfinite(mean) else -math.inf

        return max(candidates, key=mean_psnr), "best classical baseline by mean PSNR"
    if NOISY in table:
        return NOISY, "noisy input"
    return None, "none"


def summarize_methods(
    rows: Iterable[Row],
    reference_method: str | None = None,
    baselines: Iterable[str] = BASELINES,
) -> dict[str, Any]:
    """Per-method statistics and paired differences to a reference method.

    Parameters
    ----------
    rows : metrics rows; a repeated (image, method) pair counts once (its last row).
    reference_method : the method to compare with; None: the classical baseline (a method
        named in ``baselines``) with the highest mean PSNR, else ``"noisy"`` when present.
    baselines : names of the classical methods.

    Returns
    -------
    ``{"reference", "reference_rule", "methods": {name: {"n", "kind", "psnr", "ssim",
    "seconds_per_image", "images_per_second", "vs_reference"}}}`` where ``kind`` is the rows'
    ``kind`` (input, model, baseline; None when absent), the times are NaN for the noisy
    input (nothing is computed), ``psnr`` and
    ``ssim`` are :func:`pipeline.metrics.summarize` dicts and ``vs_reference`` maps
    ``psnr``/``ssim`` to :func:`pipeline.metrics.paired_difference` of method minus
    reference over the images both have (None without a reference).
    """
    table = rows_by_method(rows)
    reference, rule = _choose_reference(table, reference_method, baselines)
    methods: dict[str, Any] = {}
    for method, by_image in table.items():
        kind = next((str(r["kind"]) for r in by_image.values() if r.get("kind")), None)
        timed = kind != "input" and method != NOISY  # the noisy input costs nothing to "compute"
        seconds = [
            s for s in (as_float(r.get("seconds")) for r in by_image.values()) if s >= 0 and timed
        ]
        total = sum(seconds)
        entry: dict[str, Any] = {
            "n": len(by_image),
            "kind": kind,
            "psnr": summarize([as_float(r.get("psnr")) for r in by_image.values()]),
            "ssim": summarize([as_float(r.get("ssim")) for r in by_image.values()]),
            "seconds_per_image": total / len(seconds) if seconds else math.nan,
            "images_per_second": len(seconds) / total if total > 0 else math.nan,
            "vs_reference": None,
        }
        if reference is not None:
            ref = table[reference]
            common = [image for image in by_image if image in ref]
            entry["vs_reference"] = {
                key: paired_difference(
                    [as_float(by_image[i].get(key)) for i in common],
                    [as_float(ref[i].get(key)) for i in common],
                )
                for key in ("psnr", "ssim")
            }
        methods[method] = entry
    return {"reference": reference, "reference_rule": rule, "methods": methods}
