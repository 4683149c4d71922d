"""Helpers shared by the readers and writers: file checks and the value mapping.

Every reader maps file values ``v`` to pipeline pixels ``p = (v - vmin) / (vmax - vmin)``
and records ``vmin``/``vmax`` in :class:`~pipeline.image.ImageMeta`; every writer inverts
that mapping here, in float64, so that an unmodified image is written back exactly. Whole
images are converted a block of rows at a time (:data:`BLOCK_ELEMENTS`), so the float64
temporaries stay a few MiB whatever the image size.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from pipeline.errors import ImageReadError
from pipeline.image import ImageMeta, ScanImage

#: The formats a writer can produce.
WRITABLE_FORMATS = ("dicom", "png", "tiff", "nifti")
#: Elements converted at a time (float64 temporaries of 2 MiB).
BLOCK_ELEMENTS = 1 << 18


def row_blocks(shape: tuple[int, ...]) -> list[slice | tuple[()]]:
    """Slices of the first axis that cut an array of `shape` into blocks of about BLOCK_ELEMENTS."""
    if not shape:
        return [()]  # a 0-d array: one block, the whole
    per_row = max(int(np.prod(shape[1:], dtype=np.int64)), 1)
    step = max(BLOCK_ELEMENTS // per_row, 1)
    return [slice(i, i + step) for i in range(0, shape[0], step)] or [slice(None)]


#: Default largest number of pixels (all frames, pages or slices together) a file may
#: declare: 2**28, e.g. a 512x512x1024 volume, 16 times a 4300x3500 radiograph (1 GiB as
#: float32). Files declaring more are refused from their header, before decoding.
DEFAULT_MAX_PIXELS = 2**28
#: Environment variable that overrides :data:`DEFAULT_MAX_PIXELS` (an integer).
MAX_PIXELS_VARIABLE = "DENOISE_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel limit: ``$DENOISE_MAX_PIXELS`` when set to a positive integer, else the default."""
    import os

    text = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if text.isdigit() and int(text) > 0:
        return int(text)
    return DEFAULT_MAX_PIXELS


def check_pixel_count(path: Path, shape: tuple[int, ...] | list[int], what: str) -> None:
    """ImageReadError when a header declares more pixels than :func:`max_pixels` allows.

    Parameters
    ----------
    path : the file (named in the message).
    shape : the declared sizes, e.g. (frames, rows, columns); all of them are multiplied.
    what : what the sizes are, e.g. ``"3 frames of 512x512"``, for the message.
    """
    count = 1
    for size in shape:
        count *= max(int(size), 0)
    limit = max_pixels()
    if count > limit:
        raise ImageReadError(
            f"{path}: declares {count:,} pixels ({what}), above the limit of {limit:,}; "
            f"raise it with the environment variable {MAX_PIXELS_VARIABLE} if the file is genuine"
        )


def check_finite(path: Path, values: np.ndarray) -> None:
    """ImageReadError when float `values` hold NaN or infinite values (refused, not guessed)."""
    if values.dtype.kind not in "fc":
        return
    bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    if bad:
        raise ImageReadError(
            f"{path}: {bad} pixel value(s) are NaN or infinite; a denoiser cannot use them "
            "(replace them with finite values, e.g. the image minimum, and retry)"
        )


def check_file(path: str | Path, what: str) -> Path:
    """Return `path` as a Path, or raise ImageReadError if it is missing, a folder or empty.

    Parameters
    ----------
    path : file to be read.
    what : format name used in the message (e.g. ``"DICOM"``).
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not a {what} file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file (0 bytes), not a {what} image")
    return path


def integer_range(dtype: np.dtype | str, bits: int | None = None) -> tuple[int, int]:
    """The (min, max) a `dtype` can hold, limited to `bits` significant bits when given.

    Signed types use two's complement: 12 bits signed is [-2048, 2047].
    """
    dtype = np.dtype(dtype)
    if dtype.kind not in "ui":
        raise ValueError(f"integer_range needs an integer dtype, got {dtype}")
    nbits = dtype.itemsize * 8 if bits is None else int(bits)
    if dtype.kind == "u":
        return 0, 2**nbits - 1
    return -(2 ** (nbits - 1)), 2 ** (nbits - 1) - 1


def observed_bits(max_value: int) -> int:
    """The bit depth that holds `max_value`, at least 8 (4095 -> 12, 1,000,000 -> 20)."""
    return max(8, int(max_value).bit_length())


def data_range(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of `values`, widened to (v, v + 1) for a constant array (no division by 0)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    return (lo, lo + 1.0) if hi <= lo else (lo, hi)


def normalise(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Map `values` so that `vmin` -> 0 and `vmax` -> 1; float32, clipped to [0, 1].

    Computed in float64 a block of rows at a time.
    """
    values = np.asarray(values)
    unit = np.empty(values.shape, dtype=np.float32)
    for rows in row_blocks(values.shape):
        scaled = (np.asarray(values[rows], dtype=np.float64) - vmin) / (float(vmax) - float(vmin))
        unit[rows] = np.clip(scaled, 0.0, 1.0, out=scaled)
    return unit


def denormalise(pixels: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """Inverse of :func:`normalise` in float64 (no rounding, no clipping beyond [0, 1])."""
    unit = np.clip(np.asarray(pixels, dtype=np.float64), 0.0, 1.0)
    return unit * (float(vmax) - float(vmin)) + float(vmin)


def quantise(values: np.ndarray, dtype: np.dtype | str, lo: float, hi: float) -> np.ndarray:
    """Round (integer dtypes), clip to [lo, hi] and cast `values` to `dtype`."""
    dtype = np.dtype(dtype)
    values = np.asarray(values, dtype=np.float64)
    if dtype.kind in "ui":
        values = np.rint(values)
    return np.clip(values, lo, hi).astype(dtype)


def file_values(image: ScanImage, fmt: str) -> tuple[np.ndarray, ImageMeta]:
    """Values to store when writing `image` as `fmt`, and the mapping they follow.

    Written in the source format, the source's dtype and ``value_min``/``value_max`` are
    kept, so an unmodified image gives back its stored values exactly. Written in another
    format, an 8-bit source gives uint8 over [0, 255] and anything else uint16 over
    [0, 65535] (the pixels' [0, 1] mapped to the full type range).

    Returns
    -------
    values : array of the returned meta's dtype.
    meta : a copy of ``image.meta`` whose dtype/value_min/value_max/bits_stored describe
        `values` (the photometric stays that of the source).
    """
    meta = image.meta
    if meta.format == fmt:
        dtype = np.dtype(meta.dtype)
        vmin, vmax, bits = meta.value_min, meta.value_max, meta.bits_stored
    else:
        dtype = np.dtype(np.uint8 if meta.dtype == "uint8" else np.uint16)
        vmin, vmax = integer_range(dtype)
        bits = dtype.itemsize * 8
    if dtype.kind in "ui":
        lo, hi = integer_range(dtype)
        lo, hi = max(lo, min(vmin, vmax)), min(hi, max(vmin, vmax))
    values = np.empty(image.pixels.shape, dtype=dtype)
    for rows in row_blocks(values.shape):  # float64 temporaries of one block only
        block = denormalise(image.pixels[rows], vmin, vmax)
        values[rows] = quantise(block, dtype, lo, hi) if dtype.kind in "ui" else block
    return values, replace(meta, dtype=dtype.name, value_min=vmin, value_max=vmax, bits_stored=bits)
