"""Reading DICOM files into :class:`~pipeline.image.ScanImage` (see :mod:`pipeline.io.dicom`)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from pipeline.errors import ImageReadError
from pipeline.image import ImageMeta, ScanImage
from pipeline.io._values import check_file, normalise
from pipeline.io.dicom.checks import check_pixel_module
from pipeline.io.dicom.modality import ModalityMap
from pipeline.io.dicom.tags import (
    DECODER_PACKAGE,
    EXPLICIT_BE,
    EXPLICIT_LE,
    IDENTIFYING_TAGS,
    IMPLICIT_LE,
)
from pipeline.io.dicom_guard import (
    check_decoded,
    check_frames_complete,
    is_truncation,
    quiet_validation,
    tolerated_line,
)
from pipeline.text import library_detail

log = logging.getLogger(__name__)


def read_dicom(path: str | Path) -> list[ScanImage]:
    """Read a DICOM file: one ScanImage per frame (``meta.frame`` set for multi-frame).

    Raises
    ------
    ImageReadError
        Empty file, not DICOM, not an image (RT Plan, SR...), colour data, no or
        truncated pixel data, or a compressed syntax whose decoder plugin is missing (the
        message names the pip package to install).
    """
    path = check_file(path, "DICOM")
    quiet_validation()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images = _read_images(path, caught)
    if caught:  # one line, never pydicom's text (it may quote patient data)
        log.warning(tolerated_line(path, len(caught)))
    return images


def _read_images(path: Path, caught: list[warnings.WarningMessage]) -> list[ScanImage]:
    """The body of :func:`read_dicom`; `caught` collects the warnings of the read so far."""
    ds, truncated = _read_dataset(path, caught)
    check_pixel_module(ds, path, truncated)
    frames = _decode_frames(ds, path, caught)
    del ds.PixelData  # the writer needs the header only; keep memory low

    try:
        mapping = ModalityMap(ds)
        vmin, vmax = mapping.value_range
    except Exception as exc:
        raise ImageReadError(
            f"{path}: invalid modality transform ({type(exc).__name__}); check the Modality "
            "LUT Sequence and the rescale tags"
        ) from exc
    photometric = str(ds.PhotometricInterpretation)
    multi = len(frames) > 1 or "NumberOfFrames" in ds
    extra = {
        "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
        "stored_range": mapping.stored_range,
        "number_of_frames": len(frames),
        "presentation_lut_shape": ds.get("PresentationLUTShape"),
    }
    images = []
    for index, stored in enumerate(frames):
        unit = normalise(mapping.forward(stored), vmin, vmax)
        if photometric == "MONOCHROME1":
            unit = 1.0 - unit
        meta = ImageMeta(
            format="dicom",
            source=path,
            dtype=stored.dtype.name,
            bits_stored=mapping.bits_stored,
            value_min=vmin,
            value_max=vmax,
            photometric=photometric,
            spacing=_spacing(ds),
            frame=index if multi else None,
            dataset=ds,
            extra=dict(extra),
        )
        images.append(ScanImage(unit, meta))
    return images


def _read_dataset(path: Path, caught: list[warnings.WarningMessage]):
    """Parse `path` with pydicom; returns (dataset, truncated) or raises ImageReadError.

    `caught` holds the warnings recorded so far (pydicom's about the end of the file mark
    a truncated file).
    """
    import pydicom
    from pydicom.dataset import FileMetaDataset

    with open(path, "rb") as handle:
        has_marker = handle.read(132)[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(path, force=not has_marker)
    except Exception as exc:  # pydicom raises many types on garbage
        raise ImageReadError(
            f"{path}: not a readable DICOM file ({type(exc).__name__} while parsing)"
        ) from exc
    truncated = any("end of file" in str(item.message).lower() for item in caught)

    if not has_marker and not any(tag in ds for tag in IDENTIFYING_TAGS):
        raise ImageReadError(
            f"{path}: not a DICOM file (no 'DICM' marker and no recognisable DICOM elements)"
        )
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        from pydicom.uid import UID

        implicit, little = getattr(ds, "original_encoding", (True, True))
        if implicit is not False:
            syntax = IMPLICIT_LE
        else:
            syntax = EXPLICIT_LE if little is not False else EXPLICIT_BE
        log.warning(
            "%s: no DICOM file meta information (old ACR-NEMA style file); assuming the %s "
            "transfer syntax",
            path,
            UID(syntax).name,
        )
        if meta is None:
            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
    return ds, truncated


def _decode_frames(ds, path: Path, caught: list[warnings.WarningMessage]) -> list[np.ndarray]:
    """Decode every frame of `ds`; a missing decoder plugin names the package to install.

    A compressed frame cut short is refused (its end marker, its decoded size, and the
    decoder's warnings, which arrive in `caught`).
    """
    from pydicom.pixels import get_decoder, iter_pixels
    from pydicom.uid import UID

    syntax = UID(str(ds.file_meta.TransferSyntaxUID))
    if syntax.is_encapsulated:
        try:
            available = get_decoder(syntax).is_available
        except NotImplementedError:
            raise ImageReadError(
                f"{path}: pixel data compressed with an unsupported transfer syntax ({syntax})"
            ) from None
        if not available:
            package = DECODER_PACKAGE.get(str(syntax), "pylibjpeg")
            raise ImageReadError(
                f"{path}: pixel data is compressed as {syntax.name} and no decoder is "
                f"installed: install one with `pip install pylibjpeg {package}`"
            )
    declared = int(ds.get("NumberOfFrames") or 1)
    if syntax.is_encapsulated:
        check_frames_complete(ds.PixelData, str(syntax), declared, path)
    before = len(caught)
    try:
        frames = [np.array(frame) for frame in iter_pixels(ds)]
    except Exception as exc:  # decoders raise RuntimeError, ValueError, ...
        raise ImageReadError(
            f"{path}: could not decode the pixel data ({syntax.name}); the file may be "
            f"truncated or corrupt ({library_detail(exc)})"
        ) from exc
    if any(is_truncation(item.message) for item in caught[before:]):
        raise ImageReadError(
            f"{path}: the decoder reports missing data in the pixel data ({syntax.name}); the "
            "file was cut short or damaged"
        )
    check_decoded(frames, int(ds.Rows), int(ds.Columns), path)
    if len(frames) != declared:
        raise ImageReadError(
            f"{path}: NumberOfFrames is {declared} but the pixel data holds {len(frames)} frame(s)"
        )
    return frames


def _spacing(ds) -> tuple[float, float] | None:
    """PixelSpacing (or ImagerPixelSpacing) in mm; None when absent or zero."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            row, col = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and col > 0:
            return row, col
    return None
