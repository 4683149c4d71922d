"""Every grey image under ../shared/data/cxr loads (PNG, JPEG, the five DICOMs, the 64-px set, the
five-source collections), the colour ones are refused with a reason; the patient split."""

from __future__ import annotations

import numpy as np

from pipeline.config import load_config
from pipeline.ingest.folder import load_folder


def test_every_shared_radiograph_loads(cxr_dir) -> None:
    import csv
    from pathlib import Path

    images, failures = load_folder(
        cxr_dir
    )  # the ACR-NEMA file logs a warning (no file meta), by design
    excluded = Path(__file__).resolve().parents[1] / "configs" / "splits" / "multisite_excluded.csv"
    with excluded.open(newline="") as fh:
        colour = {Path(row["file"]).name for row in csv.DictReader(fh)}
    assert len(colour) == 14 and {f.path.name for f in failures} == colour, failures
    assert all("a colour image" in f.reason for f in failures)
    by_format: dict[str, int] = {}
    for img in images:
        by_format[img.meta.format] = by_format.get(img.meta.format, 0) + 1
        assert img.pixels.dtype == np.float32 and img.pixels.ndim == 2
        assert 0.0 <= float(img.pixels.min()) and float(img.pixels.max()) <= 1.0
        assert float(img.pixels.std()) > 0.01, f"{img.meta.source} looks empty"
    # multisite/: 192 PNG and 130 JPEG files, 14 of the JPEGs colour
    assert by_format == {"dicom": 5, "png": 7 + 1000 + 192, "jpeg": 67 + 130 - 14}


def test_radiograph_split_is_by_patient(cxr_dir, monkeypatch) -> None:
    """configs/cxr_shipped_xray.yaml: 67 Hannover JPEGs of 35 patients, split by patient (seed
    0)."""
    import csv
    from pathlib import Path

    from pipeline.ingest import load_splits

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # the config's data paths are relative to the project root
    table = cxr_dir / "metadata" / "hannover_ccd_metadata.csv"
    with table.open(newline="") as f:
        patients = {row["filename"]: row["patientid"] for row in csv.DictReader(f)}
    assert len(patients) == 67 and len(set(patients.values())) == 35
    cfg = load_config(
        root / "configs" / "cxr_shipped_xray.yaml",
        ["data.max_clean_noise=null", "data.max_val=null"],
    )
    rows = load_splits(
        cfg.data, cfg.run.seed
    ).assignment  # logs that the fo-dicom file has no PatientID
    split_of = {}
    for row in rows:
        split_of.setdefault(row["patient"], set()).add(row["split"])
    assert all(len(parts) == 1 for parts in split_of.values()), "a patient in two splits"
    names = {Path(r["file"]).name: r["split"] for r in rows}
    hannover_test = [n for n, part in names.items() if n in patients and part == "test"]
    assert len(hannover_test) >= 14 and len({patients[n] for n in hannover_test}) >= 8
    assert sum(1 for n in names if n in patients) == 67
    others = {
        "00000001_000.png",
        "00000002_000.png",
        "00000013_003.png",
        "00027426_000_512px_torchxrayvision.png",
        "c0001_8bit.png",
        "c3574.png",
    }
    assert all(names[n] == "test" for n in others)
    assert not any(n.startswith("00000001_000_") for n in names), "one copy of 00000001_000 only"
