"""Checks of a DICOM dataset before its pixels are decoded.

The Image Pixel module, the declared size, the rescale.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pipeline.errors import ImageReadError
from pipeline.io._values import check_pixel_count
from pipeline.io.dicom.tags import FLOAT_PIXEL_TAGS
from pipeline.text import short_text

log = logging.getLogger(__name__)


def check_pixel_module(ds, path: Path, truncated: bool) -> None:
    """Raise ImageReadError unless `ds` holds complete grayscale integer pixel data."""
    from pydicom.uid import UID

    syntax = UID(str(ds.file_meta.TransferSyntaxUID))
    if not syntax.is_transfer_syntax:
        named = short_text(repr(str(syntax)), 70) if syntax.is_valid else "(not a valid UID)"
        raise ImageReadError(f"{path}: unknown transfer syntax {named}")
    sop_class = UID(str(ds.get("SOPClassUID", "")))
    # a damaged UID may run into the next elements' bytes (patient data): only a valid one is named
    kind = f"{sop_class.name} " if sop_class and sop_class.is_valid else ""
    if "PixelData" not in ds:
        if truncated:
            raise ImageReadError(f"{path}: truncated pixel data (the file ends inside it)")
        if any(tag in ds for tag in FLOAT_PIXEL_TAGS):
            raise ImageReadError(f"{path}: float pixel data is not supported ({kind}dataset)")
        if "Rows" not in ds:
            raise ImageReadError(f"{path}: not an image ({kind}dataset without pixel data)")
        raise ImageReadError(f"{path}: no pixel data ({kind}dataset without (7FE0,0010))")
    for keyword in ("Rows", "Columns", "BitsAllocated"):
        if keyword not in ds:
            raise ImageReadError(f"{path}: incomplete pixel module: {keyword} is missing")
    if "PhotometricInterpretation" not in ds and int(ds.get("SamplesPerPixel", 1)) == 1:
        log.warning("%s: no Photometric Interpretation; assuming MONOCHROME2", path)
        ds.PhotometricInterpretation = "MONOCHROME2"
    photometric = str(ds.get("PhotometricInterpretation", ""))
    if int(ds.get("SamplesPerPixel", 1)) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise ImageReadError(
            f"{path}: not a grayscale image (Photometric Interpretation {photometric!r}, "
            f"{ds.get('SamplesPerPixel', 1)} samples per pixel); only MONOCHROME1/2 is supported"
        )
    if "BitsStored" not in ds:
        ds.BitsStored = ds.BitsAllocated
    try:
        allocated, stored = int(ds.BitsAllocated), int(ds.BitsStored)
    except (TypeError, ValueError):
        raise ImageReadError(f"{path}: BitsAllocated or BitsStored is not a number") from None
    if allocated not in (8, 16, 32) or not 1 <= stored <= allocated:
        raise ImageReadError(
            f"{path}: unsupported bit depth (BitsAllocated {allocated}, BitsStored {stored}); "
            "8, 16 or 32 bits allocated and at most that many stored are supported"
        )
    if ds.get("ModalityLUTSequence") and stored > 16:
        raise ImageReadError(
            f"{path}: a Modality LUT Sequence over {stored} stored bits is not supported"
        )
    rows, columns, frames = _declared_size(ds, path)
    check_pixel_count(path, (frames, rows, columns), f"{frames} frame(s) of {rows}x{columns}")
    _check_rescale(ds, path)
    if not UID(str(ds.file_meta.TransferSyntaxUID)).is_encapsulated:
        _check_native_length(ds, path, truncated, (frames, rows, columns))


def _check_native_length(ds, path: Path, truncated: bool, size: tuple[int, int, int]) -> None:
    """Raise ImageReadError unless uncompressed pixel data has its declared length.

    `size` is (frames, rows, columns) from the header.
    """
    from pydicom.pixels.utils import get_expected_length

    frames, rows, columns = size
    try:
        expected, actual = get_expected_length(ds), len(ds.PixelData)
    except Exception as exc:
        raise ImageReadError(
            f"{path}: inconsistent pixel module ({type(exc).__name__}); check Rows, "
            "Columns, BitsAllocated and NumberOfFrames"
        ) from exc
    if truncated or actual < expected:
        raise ImageReadError(
            f"{path}: truncated pixel data ({actual} of the {expected} bytes expected)"
        )
    if actual > expected + 1 + (expected % 2):  # one pad byte makes the length even
        raise ImageReadError(
            f"{path}: pixel data is longer than its header declares ({actual} bytes for "
            f"{frames} frame(s) of {rows}x{columns}, {expected} bytes); the header is wrong"
        )


def _declared_size(ds, path: Path) -> tuple[int, int, int]:
    """(Rows, Columns, NumberOfFrames) from the header; ImageReadError when not positive."""
    try:
        rows, columns = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError) as exc:
        raise ImageReadError(f"{path}: Rows, Columns or NumberOfFrames is not a number") from exc
    if rows < 1 or columns < 1 or frames < 1:
        raise ImageReadError(
            f"{path}: invalid image size (Rows {rows}, Columns {columns}, {frames} frame(s))"
        )
    return rows, columns, frames


def _check_rescale(ds, path: Path) -> None:
    """ImageReadError when RescaleSlope or RescaleIntercept is not a finite number."""
    for keyword in ("RescaleSlope", "RescaleIntercept"):
        value = ds.get(keyword)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ImageReadError(f"{path}: {keyword} is not a number") from None
        if not np.isfinite(number):
            raise ImageReadError(
                f"{path}: {keyword} is {number} (not finite); the modality values are undefined"
            )
