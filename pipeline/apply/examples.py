"""The report of a folder run: a few input/output examples beside the manifest's numbers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.io import read_image
from pipeline.report import write_apply_report

log = logging.getLogger(__name__)

#: Examples shown in the report, and the largest side they are reduced to.
EXAMPLE_COUNT = 3
EXAMPLE_MAX_SIDE = 512


def _thumbnail(pixels: np.ndarray, max_side: int = EXAMPLE_MAX_SIDE) -> np.ndarray:
    """Every n-th pixel so that no side exceeds `max_side` (keeps the noise texture)."""
    step = max(1, -(-max(pixels.shape) // max_side))
    return np.ascontiguousarray(pixels[::step, ::step], dtype=np.float32)


def _first_image(path: Path) -> np.ndarray:
    """Pixels of the first image of a file, or of the first file of a frames folder."""
    if path.is_dir():
        path = min(p for p in path.iterdir() if not p.name.startswith("."))
    return read_image(path)[0].pixels


def report_examples(rows: Sequence[Mapping[str, Any]], output_dir: Path, count: int = EXAMPLE_COUNT) -> list[dict[str, Any]]:
    """Report examples (input and output, reduced to EXAMPLE_MAX_SIDE) of the first rows."""
    examples = []
    for row in rows:
        if len(examples) == count:
            break
        try:
            noisy = _thumbnail(_first_image(Path(row["input"])))
            denoised = _thumbnail(_first_image(output_dir / row["output"]))
        except Exception as err:  # noqa: BLE001 - an example that cannot be shown is left out
            log.warning("no report example of %s (%s)", row["input"], err)
            continue
        if noisy.shape == denoised.shape:
            examples.append({
                "image": Path(row["input"]).name, "clean": None, "noisy": noisy,
                "outputs": {"denoised": denoised},
            })
    return examples


def write_report(rows: Sequence[Mapping[str, Any]], output_dir: Path) -> Path | None:
    """report.html (and report.md, figures/) for the manifest rows; None when there are none."""
    if not rows:
        return None
    try:
        return write_apply_report(rows, report_examples(rows, output_dir), output_dir)["html"]
    except Exception as err:  # noqa: BLE001 - the denoised files are complete either way
        log.warning("the report could not be written (%s: %s)", type(err).__name__, err)
        return None
