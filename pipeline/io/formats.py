"""File formats: suffixes read, how a file's format is detected, which suffix is written."""

from __future__ import annotations

from pathlib import Path

from pipeline.io._values import WRITABLE_FORMATS

#: Lowercase suffixes read by :func:`read_image` (files without a suffix may be DICOM).
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(
    {".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".nii", ".nii.gz"}
)
_FORMAT_OF_SUFFIX = {
    ".dcm": "dicom",
    ".dicom": "dicom",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".nii": "nifti",
    ".nii.gz": "nifti",
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


def canonical_format(fmt: str) -> str:
    """A format name in lower case with aliases resolved (``tif`` -> ``tiff``, ...).

    ``dcm`` -> ``dicom`` too.
    """
    return _FORMAT_ALIASES.get(fmt.lower(), fmt.lower())


def default_output_format(source_format: str) -> str:
    """The format an image read as `source_format` is written in by default.

    JPEG becomes PNG (never re-encode lossy); in-memory images become PNG.
    """
    fmt = canonical_format(source_format)
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
