"""Which patient each image belongs to, so that every split keeps a patient's images together.

A patient (group) key comes from, in this order:

1. the metadata CSV of ``data.groups`` (``file_column`` holds the file name, ``group_column``
   the patient), e.g. ``hannover_ccd_metadata.csv`` mapping each JPEG to its ``patientid``;
2. the DICOM PatientID tag of a DICOM file (when ``data.groups.dicom_patient_id`` is on);
3. ``data.group_pattern``, a regex on the file name (e.g. NIH names ``00000001_000.png``);
4. otherwise the file itself. With ``data.groups`` set this is worth a warning: such a file
   may share a patient with another one and the split cannot know.

CSV and DICOM keys carry their origin (``csv:``, ``dicom:``) so that a CSV patient ``219``
and a DICOM PatientID ``219`` from another collection stay apart; name and file keys are the
regex match and the path, so configs without groups split files by name or path alone.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from pipeline.config import DataConfig, GroupsConfig
from pipeline.errors import PipelineError
from pipeline.image import ScanImage
from pipeline.records import write_csv

log = logging.getLogger(__name__)


def read_group_csv(cfg: GroupsConfig) -> dict[str, str]:
    """File name -> patient id from the metadata CSV (empty when no CSV is configured).

    Raises
    ------
    PipelineError: the CSV is missing or lacks one of the two columns.
    """
    if cfg.csv is None:
        return {}
    path = Path(cfg.csv)
    if not path.is_file():
        raise PipelineError(
            f"data.groups.csv not found: {path} (give the metadata CSV that maps files to patients)"
        )
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [
            c for c in (cfg.file_column, cfg.group_column) if c not in (reader.fieldnames or [])
        ]
        if missing:
            raise PipelineError(
                f"{path} has no column {', '.join(missing)} (its columns: "
                f"{', '.join(reader.fieldnames or [])}); set data.groups.file_column / "
                "group_column"
            )
        return {
            Path(row[cfg.file_column]).name: row[cfg.group_column].strip()
            for row in reader
            if row[cfg.group_column].strip()
        }


def _dicom_patient(image: ScanImage) -> str | None:
    dataset = image.meta.dataset
    value = str(getattr(dataset, "PatientID", "") or "").strip() if dataset is not None else ""
    return value or None


def group_keys(images: list[ScanImage], cfg: DataConfig, warn: bool = True) -> list[str]:
    """One patient key per image (see the module rules); warns once about files without one.

    ``warn=False`` for images whose split is fixed anyway (test_root), where a missing
    patient cannot mix splits.
    """
    from_csv = read_group_csv(cfg.groups) if cfg.groups is not None else {}
    keys: list[str] = []
    alone: list[str] = []
    for image in images:
        source = image.meta.source or Path(image.meta.name)
        patient = from_csv.get(source.name)
        if patient is not None:
            keys.append(f"csv:{patient}")
            continue
        patient = (
            _dicom_patient(image)
            if cfg.groups is not None and cfg.groups.dicom_patient_id
            else None
        )
        if patient is not None:
            keys.append(f"dicom:{patient}")
            continue
        match = re.search(cfg.group_pattern, source.name) if cfg.group_pattern else None
        if match:
            keys.append(match.group(1))
            continue
        keys.append(str(source))
        alone.append(source.name)
    if warn and cfg.groups is not None and alone:
        shown = ", ".join(alone[:5]) + (f" and {len(alone) - 5} more" if len(alone) > 5 else "")
        log.warning(
            "%d file(s) have no patient in data.groups (CSV, DICOM PatientID) or "
            "data.group_pattern and are each their own group: %s",
            len(alone),
            shown,
        )
    return keys


SPLIT_COLUMNS = ("file", "patient", "split")


def write_split_csv(assignment: list[dict[str, str]], path: str | Path) -> Path:
    """Write which file went to which split, with its patient key (a run's ``split.csv``).

    A ``source`` column (the site of each file) is added when the rows carry one.
    """
    columns = SPLIT_COLUMNS + (("source",) if any(row.get("source") for row in assignment) else ())
    return write_csv(assignment, path, columns)
