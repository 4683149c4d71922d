"""NIfTI-1/2 (nibabel): 2-D images and 3-D volumes read as one image per slice.

Reading: the array is taken as stored (scl_slope/scl_inter applied when scl_slope is
nonzero and finite; 0 or NaN mean no scaling, as NIfTI-1 says; an infinite one is refused), without
reorientation: image rows are the first voxel axis, columns the second, and a 3-D volume
gives one ScanImage per index of the last axis (``meta.frame`` = slice index). Values are
normalised by the *volume's* actual range, recorded in value_min/value_max, so every
slice shares one mapping and the write-back is exact for integer data. NaN or infinite
values are refused, and so is a header declaring more
voxels than :func:`pipeline.io._values.max_pixels` allows (checked before decompressing).

Writing: an explicit on-disk dtype (the source's, else uint8/uint16), the source affine
(moved to the slice's position when one slice of a volume is written as a 2-D file; built
from the pixel spacing for non-NIfTI sources) and scl_slope/scl_inter left undefined.
:func:`write_volume` writes the slices of one volume back as one 3-D file.
"""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import numpy as np

from pipeline.errors import ImageReadError
from pipeline.image import ImageMeta, ScanImage
from pipeline.io._values import (
    check_file,
    check_finite,
    check_pixel_count,
    data_range,
    file_values,
    normalise,
)
from pipeline.text import library_detail


def read_nifti(path: str | Path) -> list[ScanImage]:
    """Read a ``.nii`` or ``.nii.gz`` file: one ScanImage (2-D) or one per slice (3-D)."""
    path = check_file(path, "NIfTI")
    image, version, gzipped = _load(path)
    try:
        data = np.asanyarray(image.dataobj)
    except Exception as exc:  # nibabel raises ValueError/OSError on short data
        raise ImageReadError(
            f"{path}: truncated or corrupt NIfTI data ({library_detail(exc)})"
        ) from exc
    check_finite(path, data)
    shape = data.shape
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise ImageReadError(
            f"{path}: a {data.ndim}-D NIfTI of shape {shape}; only 2-D images and 3-D volumes "
            "are supported"
        )
    if data.dtype.kind not in "buif":
        raise ImageReadError(f"{path}: NIfTI data type {data.dtype} is not a gray image")
    if data.dtype.kind == "b":
        data = data.astype(np.uint8)

    single = data.ndim == 2 or data.shape[2] == 1
    slices = (
        [data if data.ndim == 2 else data[:, :, 0]]
        if single
        else [data[:, :, k] for k in range(data.shape[2])]
    )
    vmin, vmax = data_range(data)
    zooms = image.header.get_zooms()
    extra = {
        "header": image.header.copy(),
        "shape": tuple(int(n) for n in shape),
        "nifti_version": version,
        "gzip": gzipped,
    }
    images = []
    for index, values in enumerate(slices):
        meta = ImageMeta(
            format="nifti",
            source=path,
            dtype=data.dtype.name,
            value_min=vmin,
            value_max=vmax,
            spacing=(float(zooms[0]), float(zooms[1])),
            frame=None if single else index,
            affine=np.array(image.affine, dtype=np.float64),
            extra=dict(extra),
        )
        images.append(ScanImage(normalise(values, vmin, vmax), meta))
    return images


def write_nifti(image: ScanImage, path: str | Path, *, compress: bool | None = None) -> Path:
    """Write one image to exactly `path` as a 2-D NIfTI (a volume's slice included).

    Parameters
    ----------
    compress : gzip the file; default: when `path` has a ``.gz`` suffix (``x.nii.gz.tmp``
        counts).
    """
    values, _ = file_values(image, "nifti")
    meta = image.meta
    if meta.format == "nifti" and meta.frame is None and len(meta.extra.get("shape", ())) >= 3:
        values = values.reshape(values.shape + (1,) * (len(meta.extra["shape"]) - 2))
    affine = _affine(meta)
    if meta.format == "nifti" and meta.frame is not None and meta.affine is not None:
        affine[:3, 3] = meta.affine[:3, :3] @ np.array([0.0, 0.0, meta.frame]) + meta.affine[:3, 3]
    return _save(values, affine, meta, Path(path), compress)


def write_volume(
    slices: list[ScanImage], path: str | Path, *, compress: bool | None = None
) -> Path:
    """Write the slices of one volume (ordered by ``meta.frame``) as one 3-D NIfTI file."""
    if not slices:
        raise ValueError("write_volume needs at least one slice")
    ordered = sorted(slices, key=lambda s: -1 if s.meta.frame is None else s.meta.frame)
    values = np.stack([file_values(s, "nifti")[0] for s in ordered], axis=-1)
    return _save(values, _affine(ordered[0].meta), ordered[0].meta, Path(path), compress)


def _load(path: Path):
    """(nibabel image, NIfTI version, gzipped) of `path`, whatever its suffix.

    The header is read first and its declared size checked against the pixel limit, so a
    small compressed file declaring a huge volume is refused before it is decompressed.
    """
    import nibabel as nib

    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    head = _read_bytes(path, gzipped, 540)
    sizes = {int.from_bytes(head[:4], order) for order in ("little", "big")}
    if 348 in sizes:
        version, klass = 1, nib.Nifti1Image
    elif 540 in sizes:
        version, klass = 2, nib.Nifti2Image
    else:
        raise ImageReadError(f"{path}: not a NIfTI file (no NIfTI-1 or NIfTI-2 header)")
    try:
        header = klass.header_class.from_fileobj(io.BytesIO(head))
        shape = tuple(int(n) for n in header.get_data_shape())
        offset = int(header.get_data_offset())
        itemsize = np.dtype(header.get_data_dtype()).itemsize
    except Exception as exc:  # nibabel raises HeaderDataError, ValueError, ...
        raise ImageReadError(f"{path}: invalid NIfTI header ({library_detail(exc)})") from exc
    check_pixel_count(path, shape, "x".join(map(str, shape)) or "no dimensions")
    _check_scaling(header, path)
    needed = max(offset, len(head)) + int(np.prod(shape, dtype=np.int64)) * itemsize
    raw = _read_bytes(path, gzipped, needed)
    try:
        return klass.from_bytes(raw), version, gzipped
    except Exception as exc:  # nibabel raises HeaderDataError, ValueError, ...
        raise ImageReadError(f"{path}: invalid NIfTI file ({library_detail(exc)})") from exc


def _check_scaling(header, path: Path) -> None:
    """ImageReadError for an infinite scl_slope.

    NIfTI-1: the values are scaled when scl_slope is nonzero; 0 (and NaN, as nibabel and
    the reference library read it) means no scaling. An infinite slope scales every value
    to infinity or NaN: the file is invalid, not unscaled.
    """
    slope = float(header["scl_slope"])
    if np.isinf(slope):
        raise ImageReadError(
            f"{path}: scl_slope is {slope} (NIfTI scaling needs a finite slope; 0 or NaN mean "
            "no scaling); fix the header"
        )


def _read_bytes(path: Path, gzipped: bool, count: int) -> bytes:
    """At most the first `count` bytes of `path`, decompressed when `gzipped`."""
    try:
        if gzipped:
            with gzip.open(path, "rb") as handle:
                return handle.read(count)
        with open(path, "rb") as handle:
            return handle.read(count)
    except (OSError, EOFError, zlib.error) as exc:
        raise ImageReadError(
            f"{path}: truncated or corrupt gzip data ({library_detail(exc)})"
        ) from exc


def _affine(meta: ImageMeta) -> np.ndarray:
    """The source affine, else one with the pixel spacing (mm) on the diagonal."""
    if meta.format == "nifti" and meta.affine is not None:
        return np.array(meta.affine, dtype=np.float64)
    row, col = meta.spacing if meta.spacing is not None else (1.0, 1.0)
    return np.diag([row, col, 1.0, 1.0])


def _save(
    values: np.ndarray, affine: np.ndarray, meta: ImageMeta, path: Path, compress: bool | None
) -> Path:
    """Encode `values` with an explicit dtype and undefined scaling; write to `path`."""
    import nibabel as nib

    same = meta.format == "nifti"
    header = meta.extra.get("header") if same else None
    klass = nib.Nifti2Image if same and meta.extra.get("nifti_version") == 2 else nib.Nifti1Image
    image = klass(values, affine, header=header.copy() if header is not None else None)
    image.header.set_data_dtype(values.dtype)
    image.header.set_slope_inter(np.nan, np.nan)
    if header is None:
        image.header.set_xyzt_units("mm")
    payload = image.to_bytes()
    if compress is None:
        compress = ".gz" in [s.lower() for s in path.suffixes]
    path.write_bytes(gzip.compress(payload, compresslevel=6) if compress else payload)
    return path
