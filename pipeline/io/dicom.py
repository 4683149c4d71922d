"""DICOM: read radiographs into the pipeline's convention; write results as a derived series.

Reading (see ``shared/reference/dicom.md``): stored values -> modality LUT (rescale slope
and intercept, or a Modality LUT Sequence) -> normalised over the *full stored range*
(BitsStored and PixelRepresentation, e.g. 12 bits -> [0, 4095], mapped through the
modality LUT) -> MONOCHROME1 inverted so that high = bright. VOI LUT and window tags are a
display transform: they are not applied, only kept for the writer. For DICOM images
``ImageMeta.value_min``/``value_max`` are therefore *modality* values (equal to stored
values when there is no modality LUT). pydicom's warnings never reach a message (they
quote header values), and a compressed frame cut short is refused: see
:mod:`pipeline.io.dicom_guard`.

Writing: a new derived instance in a new series (PS3.3 C.7.6.1.1.3): new Series and SOP
Instance UIDs, Patient and Study modules kept, ImageType DERIVED\\SECONDARY,
DerivationDescription and SourceImageSequence, stored values on the source's scale (so the
rescale and window tags stay valid), MONOCHROME1 written inverted back, Explicit VR Little
Endian (a big-endian source's word values swapped), never compressed. Share one
:class:`DerivedSeries` across all files of a run.
"""

from __future__ import annotations

import copy
import logging
import re
import uuid
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from pipeline import __version__
from pipeline.errors import ImageReadError, library_detail, short_text
from pipeline.image import ImageMeta, ScanImage
from pipeline.io._values import (
    check_file,
    check_pixel_count,
    denormalise,
    file_values,
    integer_range,
    normalise,
    quantise,
)
from pipeline.io.dicom_guard import (
    check_decoded,
    check_frames_complete,
    is_truncation,
    quiet_validation,
    tolerated_line,
)

log = logging.getLogger(__name__)

# ``pydicom.uid`` names, as strings so that importing this module stays cheap.
_SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
#: Compressed transfer syntaxes and the pip package whose plugin decodes them.
_DECODER_PACKAGE = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg",  # JPEG Extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": "pylibjpeg-libjpeg",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "pylibjpeg-libjpeg",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",  # RLE Lossless
}
#: Lossy syntaxes whose output must keep LossyImageCompression = "01" (and its method).
_LOSSY_METHOD = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",
}
#: Tags that identify a dataset when a file has no 'DICM' marker.
_IDENTIFYING_TAGS = (0x00080016, 0x00080018, 0x00080060, 0x0020000D, 0x00280010, 0x7FE00010)
#: Elements that describe the source pixels and would be stale in the derived image.
_STALE_TAGS = (
    0x00280106,  # Smallest Image Pixel Value
    0x00280107,  # Largest Image Pixel Value
    0x00280108,  # Smallest Pixel Value in Series
    0x00280109,  # Largest Pixel Value in Series
    0x00880200,  # Icon Image Sequence (encoded in the source transfer syntax)
    0x7FE00001,  # Extended Offset Table
    0x7FE00002,  # Extended Offset Table Lengths
)
_FLOAT_PIXEL_TAGS = (0x7FE00008, 0x7FE00009)  # Float / Double Float Pixel Data
_PIXEL_TAGS = (0x7FE00010, *_FLOAT_PIXEL_TAGS)


# --------------------------------------------------------------------------- reading


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
    _check_pixel_module(ds, path, truncated)
    frames = _decode_frames(ds, path, caught)
    del ds.PixelData  # the writer needs the header only; keep memory low

    try:
        mapping = _ModalityMap(ds)
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

    if not has_marker and not any(tag in ds for tag in _IDENTIFYING_TAGS):
        raise ImageReadError(
            f"{path}: not a DICOM file (no 'DICM' marker and no recognisable DICOM elements)"
        )
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        from pydicom.uid import UID

        implicit, little = getattr(ds, "original_encoding", (True, True))
        if implicit is not False:
            syntax = _IMPLICIT_LE
        else:
            syntax = _EXPLICIT_LE if little is not False else _EXPLICIT_BE
        log.warning(
            "%s: no DICOM file meta information (old ACR-NEMA style file); assuming the %s transfer syntax",
            path, UID(syntax).name,
        )
        if meta is None:
            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
    return ds, truncated


def _check_pixel_module(ds, path: Path, truncated: bool) -> None:
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
        if any(tag in ds for tag in _FLOAT_PIXEL_TAGS):
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
        raise ImageReadError(f"{path}: a Modality LUT Sequence over {stored} stored bits is not supported")
    rows, columns, frames = _declared_size(ds, path)
    check_pixel_count(path, (frames, rows, columns), f"{frames} frame(s) of {rows}x{columns}")
    _check_rescale(ds, path)
    syntax = ds.file_meta.TransferSyntaxUID
    if not UID(str(syntax)).is_encapsulated:
        from pydicom.pixels.utils import get_expected_length

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
            package = _DECODER_PACKAGE.get(str(syntax), "pylibjpeg")
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


def unit_range(ds) -> tuple[float, float, bool]:
    """(value_min, value_max, invert) with which :func:`read_dicom` maps a dataset's values to [0, 1].

    `ds` is a pydicom Dataset or any object with pydicom-style ``get(keyword)`` (e.g. the
    tags MONAI's PydicomReader keeps); ``invert`` is True for MONOCHROME1.
    """
    low, high = _ModalityMap(ds).value_range
    return low, high, str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1"


class _ModalityMap:
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


# --------------------------------------------------------------------------- writing


@dataclass
class DerivedSeries:
    """Identity of the derived series written in one run: one new series per source series.

    Create one per run and pass it to every :func:`write_dicom` call (or
    ``pipeline.io.write_image(..., series=...)``). The new SeriesInstanceUID is derived
    from ``run_id`` and the source SeriesInstanceUID, so every file of a source series gets
    the same new series, also across independent processes that share ``run_id``.

    Attributes
    ----------
    run_id: identifies the run (default: a random UUID); reuse it to resume or split a run.
    number_offset: new SeriesNumber = source SeriesNumber (0 when absent) + number_offset
        (number_offset alone when the sum would not fit the IS value range).
    uids: the source -> new SeriesInstanceUID map built so far (for logs and reports).
    """

    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    number_offset: int = 1000
    uids: dict[str, str] = field(default_factory=dict)

    def series_uid(self, source_key: str) -> str:
        """The new SeriesInstanceUID for a source series UID (or, for non-DICOM, a file)."""
        from pydicom.uid import generate_uid

        if source_key not in self.uids:
            self.uids[source_key] = generate_uid(entropy_srcs=[self.run_id, "series", source_key])
        return self.uids[source_key]

    def study_uid(self, source_key: str) -> str:
        """A StudyInstanceUID for a non-DICOM source (which has no study to keep)."""
        from pydicom.uid import generate_uid

        return generate_uid(entropy_srcs=[self.run_id, "study", source_key])

    def series_number(self, source_number: object) -> int:
        """The new SeriesNumber for a source SeriesNumber (None or missing counts as 0)."""
        try:
            base = int(str(source_number))
        except ValueError:
            base = 0
        number = base + self.number_offset
        # IS holds -2**31 .. 2**31-1: a source number near the top starts again from 0.
        return number if -(2**31) <= number <= 2**31 - 1 else self.number_offset


def write_dicom(
    image: ScanImage,
    path: str | Path,
    *,
    series: DerivedSeries | None = None,
    description: str | None = None,
    derivation: str | None = None,
) -> Path:
    """Write `image` to exactly `path` as a derived DICOM instance in a new series.

    Parameters
    ----------
    image : a ScanImage read by :func:`read_dicom` (derived from its dataset), or any other
        image (written as a Secondary Capture in a new study).
    path : output file; its suffix does not matter.
    series : the run's :class:`DerivedSeries`; None gives this file a series of its own.
    description : SeriesDescription (LO, cut to 64 characters); default "Denoised by
        denoise-pipeline <version>".
    derivation : what made the image (model name, checkpoint hash...), recorded in
        DerivationDescription together with the package version.
    """
    from pydicom import dcmwrite

    series = series if series is not None else DerivedSeries()
    if image.meta.format == "dicom" and image.meta.dataset is not None:
        ds = _derived_dataset(image, series)
    else:
        ds = _secondary_capture(image, series)
    _mark_derived(ds, description, derivation)
    path = Path(path)
    dcmwrite(path, ds, enforce_file_format=True)  # Explicit VR Little Endian, whatever the source's
    return path


def _derived_dataset(image: ScanImage, series: DerivedSeries):
    """A copy of the source header with new identity and the image's stored values."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import set_pixel_data
    from pydicom.uid import generate_uid

    meta = image.meta
    source = meta.dataset
    ds = copy.deepcopy(source)
    stale = [e.tag for e in ds if e.tag.element == 0 or e.tag in _STALE_TAGS + _PIXEL_TAGS]
    for tag in stale:
        del ds[tag]
    _repair_legacy_dates(ds)
    if getattr(source, "original_encoding", (None, None))[1] is False:
        _swap_to_little_endian(ds)
    source_syntax = str(meta.extra.get("transfer_syntax", ""))
    _keep_lossy_flag(ds, source_syntax)

    if not ds.get("SOPClassUID"):
        ds.SOPClassUID = _SECONDARY_CAPTURE
        ds.Modality = ds.get("Modality") or "OT"
    _secondary_capture_requirements(ds)
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series.series_uid(
        str(source.get("SeriesInstanceUID") or source.get("StudyInstanceUID") or meta.source)
    )
    ds.SeriesNumber = series.series_number(source.get("SeriesNumber"))
    if source.get("SOPInstanceUID"):
        reference = Dataset()
        reference.ReferencedSOPClassUID = source.get("SOPClassUID") or _SECONDARY_CAPTURE
        reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
        if meta.frame is not None:
            reference.ReferencedFrameNumber = meta.frame + 1
        reference.PurposeOfReferenceCodeSequence = [
            _code("121322", "DCM", "Source image for image processing operation")
        ]
        ds.SourceImageSequence = [reference]
        _reference_source_series(ds, source)

    mapping = _ModalityMap(source)
    unit = np.asarray(image.pixels, np.float64)
    if meta.photometric == "MONOCHROME1":
        unit = 1.0 - unit
    values = mapping.inverse(denormalise(unit, meta.value_min, meta.value_max))
    stored = quantise(values, meta.dtype, *mapping.stored_range)
    _new_file_meta(ds)
    set_pixel_data(
        ds, stored, meta.photometric or "MONOCHROME2", mapping.bits_stored,
        generate_instance_uid=False,
    )
    if "NumberOfFrames" in source:  # multi-frame IODs require it: one frame per file
        ds.NumberOfFrames = 1
        groups = source.get("PerFrameFunctionalGroupsSequence")
        if groups and meta.frame is not None and meta.frame < len(groups):
            ds.PerFrameFunctionalGroupsSequence = [copy.deepcopy(groups[meta.frame])]
    return ds


def _reference_source_series(ds, source) -> None:
    """ReferencedSeriesSequence (Common Instance Reference module): the source's series and instance."""
    from pydicom.dataset import Dataset

    if not source.get("SeriesInstanceUID"):
        return
    instance = Dataset()
    instance.ReferencedSOPClassUID = source.get("SOPClassUID") or _SECONDARY_CAPTURE
    instance.ReferencedSOPInstanceUID = source.SOPInstanceUID
    series = Dataset()
    series.SeriesInstanceUID = source.SeriesInstanceUID
    series.ReferencedInstanceSequence = [instance]
    ds.ReferencedSeriesSequence = [series]


def _secondary_capture(image: ScanImage, series: DerivedSeries):
    """A Secondary Capture dataset for an image that did not come from DICOM."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import set_pixel_data
    from pydicom.uid import generate_uid

    values, written = file_values(image, "dicom")
    key = str(image.meta.source or image.meta.name)
    ds = Dataset()
    ds.SOPClassUID = _SECONDARY_CAPTURE
    ds.SOPInstanceUID = generate_uid()
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                    "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
                    "PatientOrientation"):
        setattr(ds, keyword, "")
    ds.StudyInstanceUID = series.study_uid(key)
    ds.SeriesInstanceUID = series.series_uid(key)
    ds.SeriesNumber = series.series_number(None)
    ds.InstanceNumber = 1
    ds.Modality = "OT"
    _secondary_capture_requirements(ds)
    if image.meta.spacing is not None:
        ds.PixelSpacing = [f"{v:.6g}" for v in image.meta.spacing]
    _new_file_meta(ds)
    bits = int(written.bits_stored or values.dtype.itemsize * 8)
    set_pixel_data(ds, values, "MONOCHROME2", bits, generate_instance_uid=False)
    return ds


def _secondary_capture_requirements(ds) -> None:
    """Add what a Secondary Capture needs and may lack: ConversionType, and Laterality
    (Type 2C, empty) when no BodyPartExamined says whether the part is paired."""
    if ds.SOPClassUID != _SECONDARY_CAPTURE:
        return
    if not ds.get("ConversionType"):
        ds.ConversionType = "WSD"
    if not any(k in ds for k in ("Laterality", "ImageLaterality", "BodyPartExamined")):
        ds.Laterality = ""


def _mark_derived(ds, description: str | None, derivation: str | None) -> None:
    """ImageType, descriptions and creation times that mark `ds` as derived by this tool."""
    values = _multi_values(ds.get("ImageType"))
    ds.ImageType = ["DERIVED", "SECONDARY", *values[2:]]
    tool = f"denoise-pipeline {__version__}"
    ds.SeriesDescription = (description or f"Denoised by {tool}")[:64]
    text = f"Denoised with {tool}" + (f"; model: {derivation}" if derivation else "")
    ds.DerivationDescription = text[:1024]
    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    ds.SeriesDate, ds.SeriesTime = date, time
    ds.ContentDate, ds.ContentTime = date, time


def _new_file_meta(ds) -> None:
    """Fresh file meta: Explicit VR Little Endian, media storage UIDs equal to the SOP's."""
    from pydicom.dataset import FileMetaDataset

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = _EXPLICIT_LE
    meta.ImplementationVersionName = f"PIPELINE_{__version__}"[:16]
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128


def _keep_lossy_flag(ds, source_syntax: str) -> None:
    """A lossy-compressed source stays flagged lossy in everything derived from it."""
    method = _LOSSY_METHOD.get(source_syntax)
    if method and ds.get("LossyImageCompression") != "01":
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = method


#: Bytes per word of the VRs whose values pydicom keeps as raw bytes in the file's byte order.
_WORD_BYTES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _swap_to_little_endian(ds) -> None:
    """Byte-swap the word values (OW, OF, ...) of a big-endian source, nested ones too: the
    derived file is little endian, and pydicom writes such values as the bytes they hold."""

    def swap(_dataset, element) -> None:
        size = _WORD_BYTES.get(str(element.VR))
        if size and isinstance(element.value, bytes) and len(element.value) % size == 0:
            element.value = np.frombuffer(element.value, f">u{size}").astype(f"<u{size}").tobytes()

    ds.walk(swap)


def _repair_legacy_dates(ds) -> None:
    """Rewrite ACR-NEMA style dates and times (1993.02.24, 17:58:00) in DICOM form."""
    for element in ds:
        if element.VR in ("DA", "TM") and isinstance(element.value, str):
            text = element.value.strip()
            if element.VR == "DA" and re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", text):
                element.value = text.replace(".", "")
            elif element.VR == "TM" and re.fullmatch(r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?", text):
                element.value = text.replace(":", "")


def _multi_values(value: object) -> list[str]:
    """Values of a multi-valued string element; ACR-NEMA files may separate them by spaces."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in re.split(r"[\\\s]+", value) if v]
    return [str(v) for v in value]


def _code(value: str, scheme: str, meaning: str):
    """A code sequence item."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item
