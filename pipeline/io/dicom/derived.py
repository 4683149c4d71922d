"""Writing results as a derived DICOM series (see :mod:`pipeline.io.dicom`)."""

from __future__ import annotations

import copy
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np

from pipeline import __version__
from pipeline.image import ScanImage
from pipeline.io._values import denormalise, file_values, quantise
from pipeline.io.dicom.modality import ModalityMap
from pipeline.io.dicom.tags import (
    EXPLICIT_LE,
    LOSSY_METHOD,
    PIXEL_TAGS,
    SECONDARY_CAPTURE,
    STALE_TAGS,
)

log = logging.getLogger(__name__)


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
    stale = [e.tag for e in ds if e.tag.element == 0 or e.tag in STALE_TAGS + PIXEL_TAGS]
    for tag in stale:
        del ds[tag]
    _repair_legacy_dates(ds)
    if getattr(source, "original_encoding", (None, None))[1] is False:
        _swap_to_little_endian(ds)
    source_syntax = str(meta.extra.get("transfer_syntax", ""))
    _keep_lossy_flag(ds, source_syntax)

    if not ds.get("SOPClassUID"):
        ds.SOPClassUID = SECONDARY_CAPTURE
        ds.Modality = ds.get("Modality") or "OT"
    _secondary_capture_requirements(ds)
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = series.series_uid(
        str(source.get("SeriesInstanceUID") or source.get("StudyInstanceUID") or meta.source)
    )
    ds.SeriesNumber = series.series_number(source.get("SeriesNumber"))
    if source.get("SOPInstanceUID"):
        reference = Dataset()
        reference.ReferencedSOPClassUID = source.get("SOPClassUID") or SECONDARY_CAPTURE
        reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
        if meta.frame is not None:
            reference.ReferencedFrameNumber = meta.frame + 1
        reference.PurposeOfReferenceCodeSequence = [
            _code("121322", "DCM", "Source image for image processing operation")
        ]
        ds.SourceImageSequence = [reference]
        _reference_source_series(ds, source)

    mapping = ModalityMap(source)
    unit = np.asarray(image.pixels, np.float64)
    if meta.photometric == "MONOCHROME1":
        unit = 1.0 - unit
    values = mapping.inverse(denormalise(unit, meta.value_min, meta.value_max))
    stored = quantise(values, meta.dtype, *mapping.stored_range)
    _new_file_meta(ds)
    set_pixel_data(
        ds,
        stored,
        meta.photometric or "MONOCHROME2",
        mapping.bits_stored,
        generate_instance_uid=False,
    )
    if "NumberOfFrames" in source:  # multi-frame IODs require it: one frame per file
        ds.NumberOfFrames = 1
        groups = source.get("PerFrameFunctionalGroupsSequence")
        if groups and meta.frame is not None and meta.frame < len(groups):
            ds.PerFrameFunctionalGroupsSequence = [copy.deepcopy(groups[meta.frame])]
    return ds


def _reference_source_series(ds, source) -> None:
    """ReferencedSeriesSequence (Common Instance Reference): the source's series and instance."""
    from pydicom.dataset import Dataset

    if not source.get("SeriesInstanceUID"):
        return
    instance = Dataset()
    instance.ReferencedSOPClassUID = source.get("SOPClassUID") or SECONDARY_CAPTURE
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
    ds.SOPClassUID = SECONDARY_CAPTURE
    ds.SOPInstanceUID = generate_uid()
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
        "PatientOrientation",
    ):
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
    """Add what a Secondary Capture needs and may lack.

    ConversionType, and Laterality (Type 2C, empty) when no BodyPartExamined says whether the part
    is paired.
    """
    if ds.SOPClassUID != SECONDARY_CAPTURE:
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
    meta.TransferSyntaxUID = EXPLICIT_LE
    meta.ImplementationVersionName = f"PIPELINE_{__version__}"[:16]
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128


def _keep_lossy_flag(ds, source_syntax: str) -> None:
    """A lossy-compressed source stays flagged lossy in everything derived from it."""
    method = LOSSY_METHOD.get(source_syntax)
    if method and ds.get("LossyImageCompression") != "01":
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = method


#: Bytes per word of the VRs whose values pydicom keeps as raw bytes in the file's byte order.
_WORD_BYTES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _swap_to_little_endian(ds) -> None:
    """Byte-swap the word values (OW, OF, ...) of a big-endian source, nested ones too.

    The derived file is little endian, and pydicom writes such values as the bytes they hold.
    """

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
