"""Which scans of a folder run the apply report shows, and how it names them.

Rows are manifest rows (:mod:`pipeline.apply.records`): ``input`` absolute, ``output``
relative to OUT, the estimated noise before and after; values may be CSV strings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.apply.records import NOISE_AFTER, NOISE_BEFORE
from pipeline.report.formatting import as_float
from pipeline.text import path_text

#: Scans shown in the viewer.
SAMPLE_SIZE = 8

Row = Mapping[str, Any]


def noise_of(row: Row) -> tuple[float, float]:
    """(before, after) estimated noise of a manifest row (NaN where unknown)."""
    return as_float(row.get(NOISE_BEFORE)), as_float(row.get(NOISE_AFTER))


def relative_input(row: Row, input_dir: Path | None) -> str:
    """The row's input path relative to IN (as given when it is outside IN or IN is unknown)."""
    path = Path(str(row.get("input", "")))  # as the manifest records it: printable text
    if input_dir is not None:
        try:
            return path.relative_to(path_text(input_dir)).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def _format_of(row: Row) -> str:
    suffixes = "".join(Path(str(row.get("input", ""))).suffixes[-2:]).lower()
    return suffixes.lstrip(".") or "no suffix"


def choose_sample(
    rows: Sequence[Row], input_dir: Path | None, size: int = SAMPLE_SIZE
) -> list[Row]:
    """At most `size` rows covering formats, folders and the noise range.

    First the noisiest row of each (format, folder) group in turn, then rows spread evenly
    over the estimated noise before denoising (lowest and highest included), until `size`.
    Returned in path order.
    """
    rows = [r for r in rows if r.get("output")]
    if len(rows) <= size:
        return sorted(rows, key=lambda r: relative_input(r, input_dir))

    def noise(row: Row) -> float:
        value = noise_of(row)[0]
        return value if math.isfinite(value) else -math.inf

    groups: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        folder = Path(relative_input(row, input_dir)).parent.as_posix()
        groups.setdefault((_format_of(row), folder), []).append(row)
    chosen: dict[str, Row] = {}
    for group in groups.values():
        if len(chosen) == size:
            break
        best = max(group, key=noise)
        chosen[str(best["input"])] = best
    by_noise = sorted(rows, key=noise)
    slots = size - len(chosen)
    for k in range(slots):
        if len(chosen) == size:
            break
        index = round(k * (len(by_noise) - 1) / max(1, slots - 1))
        candidates = by_noise[index:] + by_noise[:index][::-1]
        row = next(r for r in candidates if str(r["input"]) not in chosen)
        chosen[str(row["input"])] = row
    return sorted(chosen.values(), key=lambda r: relative_input(r, input_dir))
