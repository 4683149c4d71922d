"""Readers and writers: files <-> :class:`~pipeline.image.ScanImage`.

One module per format: :mod:`~pipeline.io.dicom` (pydicom), :mod:`~pipeline.io.raster`
(PNG/JPEG via Pillow, TIFF via tifffile), :mod:`~pipeline.io.nifti` (nibabel). They are
imported lazily, so ``import pipeline.io`` is cheap.

Output format rules (:func:`default_output_format`): an image is written in the format it
was read from, except a JPEG (lossy) source, which is written as PNG, and in-memory
images (``"array"``, ``"mnist"``), also written as PNG. Lossy output is never produced.
A multi-frame DICOM or a 3-D NIfTI volume is read as one ScanImage per frame or slice;
:func:`write_image` writes each as its own 2-D file (see
:func:`pipeline.io.nifti.write_volume` to write a volume back as one file).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.errors import ImageReadError
from pipeline.image import ScanImage
from pipeline.io._values import WRITABLE_FORMATS

if TYPE_CHECKING:
    from pipeline.io.dicom import DerivedSeries

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

#: Lowercase suffixes read by :func:`read_image` (files without a suffix may be DICOM).
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".nii", ".nii.gz"}
)
_FORMAT_OF_SUFFIX = {
    ".dcm": "dicom", ".dicom": "dicom", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg",
    ".tif": "tiff", ".tiff": "tiff", ".nii": "nifti", ".nii.gz": "nifti",
}
_SUFFIX_OF_FORMAT = {"dicom": ".dcm", "png": ".png", "tiff": ".tif", "nifti": ".nii.gz"}
_FORMAT_ALIASES = {"dcm": "dicom", "tif": "tiff", "nii": "nifti", "jpg": "jpeg"}


def _suffix(path: Path) -> str:
    """The lowercase suffix of `path`, ``.nii.gz`` counted as one."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _sniff(head: bytes) -> str | None:
    """The format announced by a file's first bytes, or None."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    if len(head) >= 544 and head[4:8] in (b"n+2\x00", b"ni2\x00"):
        return "nifti"
    return None


def detect_format(path: str | Path) -> str | None:
    """The format of `path`: ``"dicom"``, ``"png"``, ``"jpeg"``, ``"tiff"``, ``"nifti"`` or None.

    The file's signature decides when it has one (a DICOM named ``.png`` is DICOM);
    otherwise the suffix does; a file without a known suffix is DICOM when it starts like
    an ACR-NEMA dataset (group 0008 element, little endian). None: not a supported image.
    """
    path = Path(path)
    head = b""
    if path.is_file():
        with open(path, "rb") as handle:
            head = handle.read(544)
    found = _sniff(head)
    if found is None and head.startswith(b"\x1f\x8b") and _suffix(path) == ".nii.gz":
        found = "nifti"
    if found is not None:
        return found
    by_suffix = _FORMAT_OF_SUFFIX.get(_suffix(path))
    if by_suffix is not None:
        return by_suffix
    if head[:2] == b"\x08\x00":
        return "dicom"  # ACR-NEMA: no preamble, the first element is in group 0008
    return None


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
    fmt = detect_format(path)
    if fmt is None:
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        raise ImageReadError(
            f"{path}: unsupported file type; supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
            " and DICOM files without a suffix"
        )
    if fmt == "dicom":
        from pipeline.io.dicom import read_dicom

        return read_dicom(path)
    if fmt == "nifti":
        from pipeline.io.nifti import read_nifti

        return read_nifti(path)
    from pipeline.io.raster import read_raster

    return read_raster(path, fmt)


def default_output_format(source_format: str) -> str:
    """The format an image read as `source_format` is written in by default.

    JPEG becomes PNG (never re-encode lossy); in-memory images become PNG.
    """
    fmt = _FORMAT_ALIASES.get(source_format.lower(), source_format.lower())
    return fmt if fmt in WRITABLE_FORMATS else "png"


def output_suffix(fmt: str, source: str | Path | None = None) -> str:
    """The file suffix for writing `fmt` (a source format such as ``"jpeg"`` is mapped first).

    When `source` is given and already has a suffix of the output format, that suffix is
    kept (``.tiff`` stays ``.tiff``, ``.nii`` stays ``.nii``, ``.dicom`` stays ``.dicom``).
    """
    fmt = default_output_format(fmt)
    if source is not None:
        suffix = _suffix(Path(source))
        if _FORMAT_OF_SUFFIX.get(suffix) == fmt:
            return suffix
    return _SUFFIX_OF_FORMAT[fmt]


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
    """
    fmt = default_output_format(image.meta.format) if fmt is None else fmt.lower()
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    if fmt not in WRITABLE_FORMATS:
        raise ValueError(
            f"cannot write format {fmt!r}: choose one of {', '.join(WRITABLE_FORMATS)}"
            + (" (JPEG is lossy: it is never written)" if fmt == "jpeg" else "")
        )
    path = Path(path)
    if fmt == "dicom":
        from pipeline.io.dicom import write_dicom

        return write_dicom(image, path, series=series, description=description,
                           derivation=derivation)
    if fmt == "nifti":
        from pipeline.io.nifti import write_nifti

        return write_nifti(image, path, compress=compress)
    from pipeline.io.raster import write_raster

    return write_raster(image, path, fmt)


def __getattr__(name: str):
    """Lazy export of :class:`~pipeline.io.dicom.DerivedSeries` (keeps the import cheap)."""
    if name == "DerivedSeries":
        from pipeline.io.dicom import DerivedSeries

        return DerivedSeries
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
