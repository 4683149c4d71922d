"""The Indiana University chest X-ray collection (OpenI, "NLMCXR") in its published layout.

Layout under the data root (any nesting; either image release or both)
-----------------------------------------------------------------------
- PNG release: ``CXR<report>_IM-<a>-<b>.png`` (commonly in ``NLMCXR_png/``).
- DICOM release: ``<report>_IM-<a>-<b>.dcm`` (commonly in ``NLMCXR_dcm/``).
- Reports (optional): ``ecgen-radiology/<n>.xml`` with ``<uId id="CXR<n>"/>`` and one
  ``<parentImage id="CXR<n>_IM-…">`` (with a ``<caption>``) per image.
An image's id is ``CXR<report>_IM-<a>-<b>…`` for both releases (the PNG stem, "CXR" + the
DICOM stem), so the two copies of one image are matched; when both exist the DICOM is read
by default (``prefer="png"`` reads the PNG). A sub-index after the report number
(``CXR1_1_IM-…``) and a double suffix (``….dcm.png``) are accepted and dropped from the id.

Splits
------
By report (one patient per report), never by image: see :func:`split_by_report`.

Frontal views (``frontal_only``), first rule that decides, per image
--------------------------------------------------------------------
1. DICOM ``ViewPosition``: PA or AP → frontal; LL, RL, LATERAL, LARGE LATERAL → lateral.
2. DICOM ``PatientOrientation`` (row direction): L or R → frontal; A or P → lateral.
   (Rules 1 and 2 agree on every image of the collection where both are present.)
3. The report's figure caption, when it names a single view (PA/AP/frontal only →
   frontal; lateral only → lateral); the usual "PA and lateral" decides nothing.
4. Order within the report: images still undecided are lateral when the report already
   has a frontal image; otherwise the first of them is frontal and the others lateral,
   taking the order of ``<parentImage>`` in the report XML, else the image id order.
   (About a third of the DICOM headers give no view; where both views are labelled, the
   frontal one comes first in about 95% of reports.)
The DICOM header is read without pixel data, also when the PNG copy is the one loaded.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import groupby
from pathlib import Path
from typing import Literal

from pipeline.errors import PipelineError
from pipeline.image import ScanImage
from pipeline.ingest.failures import Failure
from pipeline.ingest.folder import list_files, read_files
from pipeline.ingest.splits import split_groups

FRONTAL = "frontal"
LATERAL = "lateral"
SPLITS = ("train", "val", "test")

_NAME = re.compile(r"^(?:CXR)?(?P<report>\d+)(?:_\d+)?_IM-(?P<series>\d+(?:-\d+)+)$", re.IGNORECASE)
_IMAGE_SUFFIXES = {".png": "png", ".dcm": "dicom"}
_FRONTAL_POSITIONS = {"PA", "AP"}
_LATERAL_POSITIONS = {"LL", "RL", "LATERAL", "LARGE LATERAL"}
_CAPTION_LATERAL = re.compile(r"\blat(eral)?\b", re.IGNORECASE)
_CAPTION_FRONTAL = re.compile(r"\b(pa|ap|frontal|posteroanterior|anteroposterior)\b", re.IGNORECASE)

ROOT_HINT = (
    "set the OpenI data root to the folder holding NLMCXR_png/ and/or NLMCXR_dcm/ "
    "(e.g. --set data.root=/path/to/NLMCXR); download it with `denoise fetch-data openi --dest DIR`"
)


def parse_openi_name(name: str) -> tuple[int, str]:
    """Report number and image id of an OpenI file name or XML image id.

    ``"CXR1000_IM-0003-2001.png"``, ``"1000_IM-0003-2001.dcm"`` and
    ``"CXR1000_IM-0003-2001"`` all give ``(1000, "CXR1000_IM-0003-2001")``.

    Raises
    ------
    ValueError: the name does not follow the OpenI pattern.
    """
    stem = Path(name).name.split(".", 1)[0]
    match = _NAME.match(stem)
    if match is None:
        raise ValueError(f"{name!r} is not an OpenI image name (CXR<report>_IM-<a>-<b>)")
    report = int(match["report"])
    return report, f"CXR{report}_IM-{match['series']}"


@dataclass(frozen=True)
class OpenIRecord:
    """One image of the collection.

    Attributes
    ----------
    report_id: the report (patient) number.
    image_id: ``CXR<report>_IM-<a>-<b>``.
    path: the file to read (the DICOM or the PNG, see ``prefer``).
    dicom_path: the DICOM copy when present (its header gives the view), else None.
    """

    report_id: int
    image_id: str
    path: Path
    dicom_path: Path | None = None


@dataclass
class OpenIReport:
    """What a report XML says about its images."""

    report_id: int
    image_ids: list[str] = field(default_factory=list)
    captions: dict[str, str] = field(default_factory=dict)


def _check_root(root: str | Path | None) -> Path:
    if root is None:
        raise PipelineError(f"the OpenI data root is not set: {ROOT_HINT}")
    root = Path(root)
    if not root.is_dir():
        raise PipelineError(f"OpenI data root not found: {root}; {ROOT_HINT}")
    return root


def find_openi_images(
    root: str | Path, prefer: Literal["dicom", "png"] = "dicom"
) -> list[OpenIRecord]:
    """Every OpenI image under `root`, one record per image id, sorted by (report, image id).

    Files whose names do not follow the OpenI pattern are ignored.
    """
    if prefer not in ("dicom", "png"):
        raise ValueError(f"prefer must be 'dicom' or 'png', got {prefer!r}")
    root = _check_root(root)
    copies: dict[str, dict[str, Path]] = {}
    reports: dict[str, int] = {}
    for path in list_files(root):
        kind = _IMAGE_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            continue
        try:
            report_id, image_id = parse_openi_name(path.name)
        except ValueError:
            continue
        reports[image_id] = report_id
        copies.setdefault(image_id, {}).setdefault(kind, path)
    order = ("dicom", "png") if prefer == "dicom" else ("png", "dicom")
    records = [
        OpenIRecord(reports[i], i, next(c[k] for k in order if k in c), c.get("dicom"))
        for i, c in copies.items()
    ]
    return sorted(records, key=lambda r: (r.report_id, r.image_id))


def parse_report_xml(path: str | Path) -> OpenIReport:
    """Report number, image ids (in document order) and figure captions of a report XML.

    Raises
    ------
    PipelineError: the file is not XML or has no ``<uId id="CXR<n>">``.
    """
    path = Path(path)
    try:
        tree = ET.parse(path)
    except (ET.ParseError, OSError) as err:
        raise PipelineError(f"{path}: not a readable report XML ({err})") from None
    uid = tree.find(".//uId")
    match = re.fullmatch(r"CXR(\d+)", (uid.get("id", "") if uid is not None else "").strip())
    if match is None:
        raise PipelineError(f'{path}: no <uId id="CXR<n>"> element: not an OpenI report')
    report = OpenIReport(int(match[1]))
    for element in tree.iter("parentImage"):
        try:
            _, image_id = parse_openi_name(element.get("id", ""))
        except ValueError:
            continue
        report.image_ids.append(image_id)
        caption = element.findtext("caption")
        if caption:
            report.captions[image_id] = caption.strip()
    return report


def read_reports(root: str | Path) -> tuple[dict[int, OpenIReport], list[Failure]]:
    """Parse every ``*.xml`` under `root`: reports by number, and the files that failed."""
    reports: dict[int, OpenIReport] = {}
    failures: list[Failure] = []
    for path in list_files(_check_root(root)):
        if path.suffix.lower() != ".xml":
            continue
        try:
            report = parse_report_xml(path)
        except PipelineError as err:
            failures.append(Failure(path, str(err)))
            continue
        reports.setdefault(report.report_id, report)
    return reports, failures


def view_from_header(
    view_position: str | None, patient_orientation: Sequence[str] | str | None
) -> str | None:
    """Rules 1 and 2: the view from DICOM ViewPosition / PatientOrientation, or None."""
    position = " ".join(str(view_position or "").upper().split())
    if position in _FRONTAL_POSITIONS:
        return FRONTAL
    if position in _LATERAL_POSITIONS:
        return LATERAL
    if isinstance(patient_orientation, str):
        patient_orientation = patient_orientation.split("\\")
    rows = str(patient_orientation[0]).strip().upper() if patient_orientation else ""
    if rows[:1] in ("L", "R"):
        return FRONTAL
    if rows[:1] in ("A", "P"):
        return LATERAL
    return None


def read_dicom_view(path: Path) -> str | None:
    """The view from a DICOM file's header (pixel data is not read); None if undecided."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(
            path,
            stop_before_pixels=True,
            force=True,
            specific_tags=["ViewPosition", "PatientOrientation"],
        )
    except (
        InvalidDicomError,
        OSError,
        EOFError,
        ValueError,
        LookupError,
        TypeError,
        AttributeError,
    ):
        return None  # an unreadable header only leaves the view to the other rules
    return view_from_header(ds.get("ViewPosition"), ds.get("PatientOrientation"))


def view_from_caption(caption: str | None) -> str | None:
    """Rule 3: the view a figure caption names, when it names only one."""
    if not caption:
        return None
    lateral = bool(_CAPTION_LATERAL.search(caption))
    frontal = bool(_CAPTION_FRONTAL.search(caption))
    if lateral != frontal:
        return LATERAL if lateral else FRONTAL
    return None


def classify_views(
    records: Sequence[OpenIRecord], report: OpenIReport | None = None
) -> dict[str, str]:
    """Frontal or lateral for each image of one report, by the module's rules 1 to 4."""
    views: dict[str, str | None] = {}
    for record in records:
        view = read_dicom_view(record.dicom_path) if record.dicom_path is not None else None
        if view is None and report is not None:
            view = view_from_caption(report.captions.get(record.image_id))
        views[record.image_id] = view
    undecided = [r.image_id for r in records if views[r.image_id] is None]
    if undecided:
        listed = report.image_ids if report is not None else []
        undecided.sort(key=lambda i: (listed.index(i) if i in listed else len(listed), i))
        has_frontal = FRONTAL in views.values()
        for rank, image_id in enumerate(undecided):
            views[image_id] = FRONTAL if rank == 0 and not has_frontal else LATERAL
    return {k: v for k, v in views.items() if v is not None}


def split_by_report(
    records: Sequence[OpenIRecord], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, list[OpenIRecord]]:
    """Split records into ``train``/``val``/``test`` by report, deterministically from `seed`.

    Whole reports move together (see :func:`pipeline.ingest.splits.split_groups`), so no patient's
    images cross splits; each split keeps the records' order.
    """
    where = split_groups([str(r.report_id) for r in records], val_fraction, test_fraction, seed)
    return {name: [r for r, w in zip(records, where) if w == name] for name in SPLITS}


def _kept_records(
    records: Sequence[OpenIRecord], frontal_only: bool, reports: dict[int, OpenIReport]
) -> Iterator[OpenIRecord]:
    """The records to load, lazily (views are classified one report at a time)."""
    for report_id, group in groupby(records, key=lambda r: r.report_id):
        group = list(group)
        if not frontal_only:
            yield from group
            continue
        views = classify_views(group, reports.get(report_id))
        yield from (r for r in group if views.get(r.image_id) == FRONTAL)


def _tag(images: Iterable[ScanImage]) -> list[ScanImage]:
    """Put the report and image ids (from the file name) into each image's ``meta.extra``."""
    out = []
    for img in images:
        if img.meta.source is not None:
            report_id, image_id = parse_openi_name(img.meta.source.name)
            extra = {**img.meta.extra, "report_id": report_id, "image_id": image_id}
            img = replace(img, meta=replace(img.meta, extra=extra))
        out.append(img)
    return out


def load_openi(
    root: str | Path | None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    frontal_only: bool = False,
    resize: int | None = None,
    max_train: int | None = None,
    max_val: int | None = None,
    max_test: int | None = None,
    prefer: Literal["dicom", "png"] = "dicom",
    strict: bool = False,
) -> tuple[dict[str, list[ScanImage]], list[Failure]]:
    """Images of the OpenI collection split by report: ``{"train", "val", "test"}``, failures.

    The split is made over all images before the frontal filter, so a report's split does
    not depend on `frontal_only`. ``max_*`` cap the images per split (files beyond the cap
    are not read). Unreadable files and report XMLs are failures (or, with `strict`,
    errors).

    Raises
    ------
    PipelineError: the root is not set or missing, or holds no OpenI images.
    """
    root = _check_root(root)
    records = find_openi_images(root, prefer=prefer)
    if not records:
        raise PipelineError(
            f"no OpenI images under {root}: expected CXR<report>_IM-<a>-<b>.png (NLMCXR_png/) "
            f"or <report>_IM-<a>-<b>.dcm (NLMCXR_dcm/) files; {ROOT_HINT}"
        )
    reports: dict[int, OpenIReport] = {}
    failures: list[Failure] = []
    if frontal_only:
        reports, failures = read_reports(root)
        if strict and failures:
            raise PipelineError(f"{failures[0].reason}; stopped because data.strict is on")
    limits = {"train": max_train, "val": max_val, "test": max_test}
    splits: dict[str, list[ScanImage]] = {}
    for name, members in split_by_report(records, val_fraction, test_fraction, seed).items():
        paths = (r.path for r in _kept_records(members, frontal_only, reports))
        images, failed = read_files(paths, strict=strict, resize=resize, limit=limits[name])
        splits[name] = _tag(images)
        failures.extend(failed)
    return splits, failures
