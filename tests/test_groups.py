"""Patient groups: from a metadata CSV, the DICOM PatientID, a name pattern; splits by patient."""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from pipeline.config import DataConfig, GroupsConfig
from pipeline.errors import PipelineError
from pipeline.image import ImageMeta, ScanImage
from pipeline.ingest import load_splits
from pipeline.ingest.groups import group_keys, write_split_csv


def _write_pngs(folder: Path, names: list[str], noise: float = 0.0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:64, 0:64] / 64.0
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        img = np.clip(
            0.3 + 0.3 * np.sin(3 * xx + i) * np.cos(2 * yy) + noise * rng.standard_normal(xx.shape),
            0,
            1,
        )
        Image.fromarray(np.uint16(img * 65535)).save(folder / name)


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["filename", "patientid", "view"])
        writer.writerows((name, patient, "PA") for name, patient in rows)
    return path


def _dicom_image(name: str, patient_id: str | None) -> ScanImage:
    ds = Dataset()
    if patient_id is not None:
        ds.PatientID = patient_id
    return ScanImage(
        np.zeros((4, 4), np.float32), ImageMeta(format="dicom", source=Path(name), dataset=ds)
    )


def test_keys_from_csv_dicom_and_pattern_and_a_warning_for_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    table = _write_csv(tmp_path / "meta.csv", [("a.png", "7"), ("b.png", "7"), ("c.png", "8")])
    images = [
        ScanImage(np.zeros((4, 4), np.float32), ImageMeta(source=tmp_path / n))
        for n in ("a.png", "b.png", "c.png", "0042_1.png", "lone.png")
    ]
    images += [
        _dicom_image("x.dcm", "7"),
        _dicom_image("y.dcm", "P9"),
        _dicom_image("z.dcm", "P9"),
        _dicom_image("w.dcm", None),
    ]
    cfg = DataConfig(kind="folder", groups=GroupsConfig(csv=table), group_pattern=r"^(\d+)_")
    with caplog.at_level(logging.WARNING, logger="pipeline.ingest.groups"):
        keys = group_keys(images, cfg)
    assert re.search(r"2 file\(s\) have no patient.*lone.png, w.dcm", caplog.text)
    assert keys[:3] == ["csv:7", "csv:7", "csv:8"] and keys[3] == "0042"
    assert keys[5] == "dicom:7" != keys[0], (
        "a CSV patient and a DICOM PatientID of another collection stay apart"
    )
    assert keys[6] == keys[7] == "dicom:P9"
    assert keys[4] == str(tmp_path / "lone.png") and keys[8] == "w.dcm"


def test_bad_csv_is_named(tmp_path: Path) -> None:
    images = [ScanImage(np.zeros((4, 4), np.float32), ImageMeta(source=tmp_path / "a.png"))]
    with pytest.raises(PipelineError, match="not found"):
        group_keys(
            images, DataConfig(kind="folder", groups=GroupsConfig(csv=tmp_path / "absent.csv"))
        )
    table = _write_csv(tmp_path / "meta.csv", [("a.png", "1")])
    with pytest.raises(PipelineError, match="no column patient"):
        group_keys(
            images,
            DataConfig(kind="folder", groups=GroupsConfig(csv=table, group_column="patient")),
        )


def test_split_by_patient_with_test_from_root_and_test_root(tmp_path: Path) -> None:
    names = [f"f{i:02d}.png" for i in range(20)]
    _write_pngs(tmp_path / "root", names)
    _write_pngs(tmp_path / "root", ["grainy.png"], noise=0.05)
    _write_pngs(tmp_path / "extra", ["e1.png", "e2.png"])
    table = _write_csv(
        tmp_path / "meta.csv",
        [(n, str(i // 3)) for i, n in enumerate(names)] + [("grainy.png", "6")],
    )
    cfg = DataConfig(
        kind="folder",
        root=tmp_path / "root",
        test_root=tmp_path / "extra",
        test_also_from_root=True,
        groups=GroupsConfig(csv=table),
        val_fraction=0.2,
        test_fraction=0.3,
        max_clean_noise=0.006,
    )
    splits = load_splits(cfg, seed=1)
    rows = splits.assignment
    patients = {
        part: {r["patient"] for r in rows if r["split"] == part}
        for part in ("train", "val", "test")
    }
    assert not (
        patients["train"] & patients["val"]
        or patients["train"] & patients["test"]
        or patients["val"] & patients["test"]
    )
    assert (
        len(patients["test"] - {r["patient"] for r in rows if "extra" in r["file"]}) == 2
    )  # 30% of 7 patients
    files = {Path(r["file"]).name: r["split"] for r in rows}
    assert files["e1.png"] == files["e2.png"] == "test"
    assert [len(splits.train), len(splits.val), len(splits.test)] == [
        sum(1 for r in rows if r["split"] == part) for part in ("train", "val", "test")
    ]
    grainy_in_test = files.get("grainy.png") == "test"
    assert grainy_in_test or [f.path.name for f in splits.failures] == ["grainy.png"], (
        "only train/val are filtered"
    )
    assert load_splits(cfg, seed=1).assignment == rows, "same seed, same split"
    written = write_split_csv(rows, tmp_path / "split.csv").read_text().splitlines()
    assert written[0] == "file,patient,split" and len(written) == len(rows) + 1


def test_group_pattern_alone_splits_by_patient(tmp_path: Path) -> None:
    _write_pngs(tmp_path / "root", [f"{p:03d}_{k}.png" for p in range(6) for k in range(2)])
    cfg = DataConfig(
        kind="folder",
        root=tmp_path / "root",
        group_pattern=r"^(\d+)_",
        val_fraction=0.2,
        test_fraction=0.2,
    )
    rows = load_splits(cfg, seed=0).assignment
    by_patient: dict[str, set[str]] = {}
    for r in rows:
        by_patient.setdefault(r["patient"], set()).add(r["split"])
    assert len(by_patient) == 6 and all(len(s) == 1 for s in by_patient.values())
