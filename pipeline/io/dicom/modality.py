"""Stored values <-> modality values of one dataset, and the range mapped to [0, 1].

The range is the one :func:`~pipeline.io.dicom.read_dicom` maps to [0, 1].
"""

from __future__ import annotations

import numpy as np

from pipeline.io._values import integer_range


def unit_range(ds) -> tuple[float, float, bool]:
    """(value_min, value_max, invert) of a dataset's values.

    With these :func:`read_dicom` maps the values to [0, 1].

    `ds` is a pydicom Dataset or any object with pydicom-style ``get(keyword)`` (e.g. the
    tags MONAI's PydicomReader keeps); ``invert`` is True for MONOCHROME1.
    """
    low, high = ModalityMap(ds).value_range
    return low, high, str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1"


class ModalityMap:
    """Stored values <-> modality values of one dataset (rescale or Modality LUT Sequence)."""

    def __init__(self, ds) -> None:
        self.bits_stored = int(ds.get("BitsStored") or ds.BitsAllocated)
        signed = int(ds.get("PixelRepresentation", 0)) == 1
        self.stored_range = integer_range(np.int64 if signed else np.uint64, self.bits_stored)
        self.table: np.ndarray | None = None
        self.rescale: tuple[float, float] | None = None
        if ds.get("ModalityLUTSequence"):
            from pydicom.pixels import apply_modality_lut

            lo, hi = self.stored_range
            self.table = np.asarray(
                apply_modality_lut(np.arange(lo, hi + 1, dtype=np.int64), ds), np.float64
            )
        elif ds.get("RescaleSlope") is not None and ds.get("RescaleIntercept") is not None:
            slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
            if slope != 0:
                self.rescale = (slope, intercept)

    @property
    def value_range(self) -> tuple[float, float]:
        """Modality values of the full stored range, as (low, high)."""
        lo, hi = self.stored_range
        if self.table is not None:
            low, high = float(self.table.min()), float(self.table.max())
            return (low, high) if high > low else (low, low + 1.0)
        ends = sorted(float(v) for v in self.forward(np.array([lo, hi])))
        return ends[0], ends[1]

    def forward(self, stored: np.ndarray) -> np.ndarray:
        """Modality values (float64) of `stored`."""
        stored = np.asarray(stored)
        if self.table is not None:
            lo, hi = self.stored_range
            return self.table[np.clip(stored.astype(np.int64), lo, hi) - lo]
        if self.rescale is not None:
            slope, intercept = self.rescale
            return stored.astype(np.float64) * slope + intercept
        return stored.astype(np.float64)

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Stored values (float64, not rounded) whose modality values are nearest `values`."""
        if self.table is not None:
            order = np.argsort(self.table, kind="stable")
            ordered = self.table[order]
            right = np.clip(np.searchsorted(ordered, values), 1, len(ordered) - 1)
            left = right - 1
            take_left = np.abs(values - ordered[left]) <= np.abs(ordered[right] - values)
            index = np.where(take_left, order[left], order[right])
            return index.astype(np.float64) + self.stored_range[0]
        if self.rescale is not None:
            slope, intercept = self.rescale
            return (np.asarray(values, np.float64) - intercept) / slope
        return np.asarray(values, np.float64)
