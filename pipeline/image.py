"""The pipeline's image: float32 pixels (H, W) in [0, 1], high = bright.

It also carries what is needed to write it back exactly in its source format.

Conversion between file values and this representation happens only in :mod:`pipeline.io`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class ImageMeta:
    """Where an image came from and how its values map back to the file.

    Attributes
    ----------
    format: ``"dicom"``, ``"png"``, ``"jpeg"``, ``"tiff"``, ``"nifti"``, ``"mnist"`` or ``"array"``.
    source: path of the file read (None for in-memory images).
    dtype: numpy dtype name of the stored values (e.g. ``"uint16"``).
    bits_stored: significant bits of the stored values (12 for 12-bit DICOM in uint16).
    value_min, value_max: the stored values that map to 0.0 and 1.0.
    photometric: DICOM photometric interpretation of the source (MONOCHROME1/2), or None.
    spacing: pixel spacing (row, column) in mm when known.
    frame: frame index (multi-frame DICOM) or slice index (NIfTI volume), else None.
    dataset: the pydicom Dataset for DICOM sources (pixel data may be dropped).
    affine: NIfTI affine (4x4) when the source is NIfTI.
    extra: format-specific details a writer needs (e.g. NIfTI header fields, PNG mode).
    """

    format: str = "array"
    source: Path | None = None
    dtype: str = "float32"
    bits_stored: int | None = None
    value_min: float = 0.0
    value_max: float = 1.0
    photometric: str | None = None
    spacing: tuple[float, float] | None = None
    frame: int | None = None
    dataset: Any = None
    affine: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """A short identifier for tables: file name, plus frame index when there is one."""
        base = self.source.name if self.source is not None else "image"
        return base if self.frame is None else f"{base}#{self.frame}"


@dataclass
class ScanImage:
    """Pixels in the pipeline's convention plus their metadata."""

    pixels: np.ndarray
    meta: ImageMeta = field(default_factory=ImageMeta)

    def __post_init__(self) -> None:
        if self.pixels.ndim != 2:
            raise ValueError(f"a ScanImage is 2-D (H, W); got shape {self.pixels.shape}")
        self.pixels = np.asarray(self.pixels, dtype=np.float32)

    def with_pixels(self, pixels: np.ndarray) -> ScanImage:
        """A copy carrying new pixels (e.g. denoised) and the same metadata."""
        return replace(self, pixels=np.clip(np.asarray(pixels, np.float32), 0.0, 1.0))


def center_crop(pixels: np.ndarray, height: int, width: int | None = None) -> np.ndarray:
    """The central `height` x `width` (default square) part of a 2-D array, a view.

    A side larger than the array's keeps that whole side.
    """
    width = height if width is None else width
    h, w = pixels.shape[-2:]
    top, left = max(0, (h - height) // 2), max(0, (w - width) // 2)
    return pixels[..., top : top + height, left : left + width]
