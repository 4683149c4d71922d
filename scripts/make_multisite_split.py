"""Write the five-source patient split of the chest radiographs in ../shared/data.

    python scripts/make_multisite_split.py            # writes configs/splits/multisite.csv

Sources: the Hannover radiographs (patients from hannover_ccd_metadata.csv), the four
multi-site collections (patients and sources from multisite_patients.csv) and the NIH files of
cxr/png/nih_chestxray14 (patient: the first 8 digits of the file name; the 512-px copy of
00000001_000 is left out). Each source is split by patient on its own (seed 0): 15% of its
patients for testing, at least 8; 5% for validation, at least 1; the rest for training. The
test patients of the previous shipped model's split (benchmarks/gpu_xray_2026-11-30/split.csv)
stay in test. Files the reader refuses (colour JPEGs: this tool denoises grey images) are
left out before splitting and listed with their reasons in configs/splits/multisite_excluded.csv.
``file`` is relative to ../shared/data/cxr/png (the config's data.root).
"""

from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

from pipeline.errors import ImageReadError
from pipeline.ingest.split_file import read_split_csv
from pipeline.ingest.splits import stratified_split
from pipeline.records import write_csv

PROJECT = Path(__file__).resolve().parent.parent
PNG = Path("cxr/png")
METADATA = Path("cxr/metadata")
PREVIOUS_SPLIT = PROJECT / "benchmarks/gpu_xray_2026-11-30/split.csv"
RESIZED_COPY = "00000001_000_512px_torchxrayvision.png"


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def nih_patient(name: str) -> str:
    """NIH ChestX-ray14 patient key of a file name (its first 8 digits)."""
    match = re.match(r"(\d{8})_", name)
    if not match:
        raise ValueError(f"not an NIH ChestX-ray14 file name: {name}")
    return f"nih:{match.group(1)}"


def collect(shared: Path) -> list[dict[str, str]]:
    """One row (file, patient, source) per radiograph of the five sources."""
    rows = [
        {
            "file": f"hannover_mhh_covid/{r['filename']}",
            "patient": f"hannover:{r['patientid']}",
            "source": "hannover_mhh",
        }
        for r in _csv_rows(shared / METADATA / "hannover_ccd_metadata.csv")
        if (shared / PNG / "hannover_mhh_covid" / r["filename"]).is_file()
    ]
    rows += [
        {"file": f"multisite/{r['file']}", "patient": r["patientid"], "source": r["source"]}
        for r in _csv_rows(shared / METADATA / "multisite_patients.csv")
    ]
    rows += [
        {
            "file": f"nih_chestxray14/{p.name}",
            "patient": nih_patient(p.name),
            "source": "nih_chestxray14",
        }
        for p in sorted((shared / PNG / "nih_chestxray14").glob("*.png"))
        if p.name != RESIZED_COPY
    ]
    return rows


def previous_test_patients(path: Path = PREVIOUS_SPLIT) -> set[str]:
    """Hannover and NIH test patients of the previous split, in this script's patient keys."""
    keys: set[str] = set()
    for row in read_split_csv(path):
        name = Path(row["file"]).name
        if row["split"] != "test":
            continue
        if row["patient"].startswith("csv:"):
            keys.add("hannover:" + row["patient"][4:])
        elif re.match(r"\d{8}_", name) and name != RESIZED_COPY:
            keys.add(nih_patient(name))
    return keys


def readable(
    rows: list[dict[str, str]], root: Path
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The rows whose file the project's reader takes, and the others with the reason."""
    from pipeline.io import read_image

    kept, refused = [], []
    for row in rows:
        try:
            read_image(root / row["file"])
            kept.append(row)
        except ImageReadError as err:
            refused.append({**row, "reason": str(err).replace(str(root) + "/", "")})
    return kept, refused


def make_split(shared: Path, seed: int = 0) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The split rows (file, patient, split, source), sorted by split, source and file; the refused
    files."""
    rows, refused = readable(collect(shared), shared / PNG)
    sources = {r["patient"]: r["source"] for r in rows}
    where = stratified_split(
        sources,
        test_fraction=0.15,
        val_fraction=0.05,
        seed=seed,
        min_test=8,
        min_val=1,
        keep_test=previous_test_patients(),
    )
    out = [{**r, "split": where[r["patient"]]} for r in rows]
    order = {"train": 0, "val": 1, "test": 2}
    return sorted(out, key=lambda r: (order[r["split"]], r["source"], r["file"])), refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=PROJECT.parent / "shared/data")
    parser.add_argument("--out", type=Path, default=PROJECT / "configs/splits/multisite.csv")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows, refused = make_split(args.shared, args.seed)
    write_csv(rows, args.out, ("file", "patient", "split", "source"))
    write_csv(
        refused,
        args.out.with_name(args.out.stem + "_excluded.csv"),
        ("file", "patient", "source", "reason"),
    )
    print(f"left out {len(refused)} files the reader refuses (see {args.out.stem}_excluded.csv)")
    for part in ("train", "val", "test"):
        n_files = sum(r["split"] == part for r in rows)
        n_patients = len({r["patient"] for r in rows if r["split"] == part})
        print(f"{part}: {n_files} radiographs of {n_patients} patients")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
