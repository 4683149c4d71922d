"""Test helper: DICOMweb runs of `denoise apply` against a real Orthanc (tests/orthanc_server.py).

Studies of synthetic radiographs uploaded through Orthanc's REST API, the apply command
run in this process, and what the run left: its records and the derived series in Orthanc.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pydicom
import requests
from orthanc_server import USER, Orthanc, write_radiograph
from pydicom.uid import generate_uid

from pipeline.cli import main

FAST = ["--tile-size", "32", "--no-progress", "--no-report", "--device", "cpu"]


def upload_study(
    orthanc: Orthanc, folder: Path, n: int, patient: str = "P001"
) -> tuple[str, list[Path]]:
    """A new study of `n` CR instances in one series, uploaded; (StudyInstanceUID, files)."""
    study, series = generate_uid(), generate_uid()
    files = [
        write_radiograph(folder / f"{i}.dcm", study, series, i + 1, patient, seed=i)
        for i in range(n)
    ]
    for path in files:
        orthanc.upload(path)
    return study, files


def apply(orthanc: Orthanc, out: Path, model: Path, *args: str) -> int:
    """The exit status of ``denoise apply -i dicomweb:<orthanc> -o OUT --model MODEL`` (fast tiles)
    ARGS."""
    return main(
        [
            "apply",
            "-i",
            f"dicomweb:{orthanc.dicomweb}",
            "-o",
            str(out),
            "--model",
            str(model),
            *FAST,
            *args,
        ]
    )


def derived_instances(orthanc: Orthanc, study: str) -> list[pydicom.Dataset]:
    """The instances of the derived series of `study`, as files read from Orthanc."""
    found = []
    for series in orthanc.series_of_study(study):
        if str(series["MainDicomTags"].get("SeriesDescription", "")).startswith("Denoised"):
            for instance in series["Instances"]:
                data = requests.get(
                    f"{orthanc.url}/instances/{instance}/file",
                    auth=(USER, orthanc.password),
                    timeout=10,
                ).content
                found.append(pydicom.dcmread(io.BytesIO(data)))
    return found


def failures(out: Path) -> list[dict[str, str]]:
    """The rows of OUT/failures.csv."""
    with open(out / "failures.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def stored_rows(out: Path) -> list[dict[str, str]]:
    """The rows of OUT/stored.csv (none when it is absent)."""
    if not (out / "stored.csv").is_file():
        return []
    with open(out / "stored.csv", newline="") as fh:
        return list(csv.DictReader(fh))
