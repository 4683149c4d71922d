"""Readers and writers: files <-> :class:`~pipeline.image.ScanImage`.

One module per format: :mod:`~pipeline.io.dicom` (pydicom), :mod:`~pipeline.io.raster`
(PNG/JPEG via Pillow, TIFF via tifffile), :mod:`~pipeline.io.nifti` (nibabel); format
detection and suffixes are :mod:`~pipeline.io.formats`. The decoders themselves (pydicom,
nibabel, Pillow, tifffile) are imported where used, so ``import pipeline.io`` is cheap.

Output format rules (:func:`default_output_format`): an image is written in the format it
was read from, except a JPEG (lossy) source, which is written as PNG, and in-memory
images (``"array"``, ``"mnist"``), also written as PNG. Lossy output is never produced.
A multi-frame DICOM or a 3-D NIfTI volume is read as one ScanImage per frame or slice;
:func:`write_image` writes each as its own 2-D file (see
:func:`pipeline.io.nifti.write_volume` to write a volume back as one file).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import ImageReadError, ImageWriteError, MissingDependencyError
from pipeline.image import ScanImage
from pipeline.io._values import WRITABLE_FORMATS
from pipeline.io.dicom import DerivedSeries, read_dicom, write_dicom
from pipeline.io.formats import (
    SUPPORTED_SUFFIXES,
    canonical_format,
    default_output_format,
    detect_format,
    output_suffix,
)
from pipeline.io.nifti import read_nifti, write_nifti
from pipeline.io.raster import read_raster, write_raster
from pipeline.logs import about_file
from pipeline.text import library_detail

__all__ = [
    "SUPPORTED_SUFFIXES",
    "WRITABLE_FORMATS",
    "DerivedSeries",
    "default_output_format",
    "detect_format",
    "output_suffix",
    "read_image",
    "write_image",
]


def read_image(path: str | Path) -> list[ScanImage]:
    """Read any supported file: one ScanImage per frame (DICOM) or slice (NIfTI volume).

    Raises
    ------
    ImageReadError
        Missing, empty, unsupported or invalid file; the message names the file and why.
    """
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, not an image file")
    with about_file(path):
        return _read(path)


def _read(path: Path) -> list[ScanImage]:
    fmt = detect_format(path)
    if fmt is None:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        raise ImageReadError(
            f"{path}: unsupported file type; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
            " and DICOM files without a suffix"
        )
    try:
        if fmt == "dicom":
            return read_dicom(path)
        if fmt == "nifti":
            return read_nifti(path)
        return read_raster(path, fmt)
    except (ImageReadError, MissingDependencyError):
        raise
    except MemoryError:
        raise ImageReadError(f"{path}: too large to decode in the memory available") from None
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:
        # even BaseException (a Rust decoder's panic). DICOM library messages may quote
        # header values (patient data): the type only.
        detail = type(exc).__name__ if fmt == "dicom" else library_detail(exc)
        raise ImageReadError(
            f"{path}: a damaged or inconsistent {fmt.upper()} file ({detail})"
        ) from exc


def write_image(
    image: ScanImage,
    path: str | Path,
    fmt: str | None = None,
    *,
    series: DerivedSeries | None = None,
    description: str | None = None,
    derivation: str | None = None,
    compress: bool | None = None,
) -> Path:
    """Write `image` to exactly `path` (any suffix, e.g. ``.tmp``) and return `path`.

    Parameters
    ----------
    image : the image; written in the source's value mapping when `fmt` is its source
        format, so an unmodified image is written back with the same stored values.
    path : output file; never a source file (inputs are read-only).
    fmt : ``"dicom"``, ``"png"``, ``"tiff"`` or ``"nifti"`` (``dcm``/``tif``/``nii`` too); default
        :func:`default_output_format` of ``image.meta.format``. ``"jpeg"`` is refused.
    series, description, derivation : DICOM only (ignored for other formats): the run's
        :class:`~pipeline.io.dicom.DerivedSeries` shared by all files of a run, the
        SeriesDescription, and the model identity for DerivationDescription.
    compress : NIfTI only: gzip the file; default: when `path` has a ``.gz`` suffix.

    Raises
    ------
    ImageWriteError
        The image cannot be encoded in `fmt` (OSError, e.g. a full disk, passes through).
    """
    fmt = default_output_format(image.meta.format) if fmt is None else canonical_format(fmt)
    if fmt not in WRITABLE_FORMATS:
        raise ValueError(
            f"cannot write format {fmt!r}: choose one of {', '.join(WRITABLE_FORMATS)}"
            + (" (JPEG is lossy: it is never written)" if fmt == "jpeg" else "")
        )
    path = Path(path)
    try:
        if fmt == "dicom":
            return write_dicom(
                image, path, series=series, description=description, derivation=derivation
            )
        if fmt == "nifti":
            return write_nifti(image, path, compress=compress)
        return write_raster(image, path, fmt)
    except (OSError, KeyboardInterrupt, SystemExit, GeneratorExit):
        raise  # the disk's problem, not the image's: callers decide (a full disk stops a run)
    except BaseException as exc:
        detail = type(exc).__name__ if fmt == "dicom" else library_detail(exc)
        raise ImageWriteError(
            f"{path.name}: the output cannot be written as {fmt.upper()} ({detail}); try another "
            "--format"
        ) from exc
