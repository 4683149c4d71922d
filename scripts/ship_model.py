"""Copy a run's best checkpoint into the package as the shipped radiograph model.

    python scripts/ship_model.py runs/cxr_shipped_xray/<timestamp>

Writes pipeline/weights/cxr_default.pt (weights + resolved config + version + provenance;
no optimizer state, so it stays small) and pipeline/weights/cxr_default.json (the same
provenance, readable without torch).
"""

from __future__ import annotations

import argparse
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from pipeline.checkpoint import (
    SHIPPED_MODEL,
    checkpoint_path,
    read_checkpoint,
    save_checkpoint,
    strip_training_state,
)
from pipeline.records import write_json

DATA_PROVENANCE = (
    "Hannover Medical School COVID-19 chest radiograph repository (CC BY 3.0): the 10 radiographs "
    "in ../shared/data/cxr/png/hannover_mhh_covid (2000x2000 JPEG, CR, PA and AP; the 7 of them listed "
    "in its metadata CSV are 7 different patients). Steps 1-2 (configs/cxr_shipped.yaml): split by file "
    "with seed 0, 8 for training patches, 2 for validation on whole images. Step 3 "
    "(configs/cxr_shipped_refine.yaml): the 7 radiographs whose own noise is at most 1.53/255 "
    "(data.max_clean_noise 0.006) and 3 DICOM chest radiographs of ../shared/data/cxr/dicom "
    "(pydicom RG1 CR, the SIIM pneumothorax CR, the fo-dicom ACR-NEMA CR), 8 for training, 2 for "
    "validation. Held out for testing: the NIH ChestX-ray14 and openCXR radiographs. The SIIM image is "
    "NIH-derived with an anonymised patient id; its pixel correlation with every test image is at most "
    "0.79 (not the same image); the NIH DICOM of the shared data is a test image and was not used. "
    "Step 4 (configs/cxr_shipped_xray.yaml): the 67 radiographs of hannover_mhh_covid (35 patients, from "
    "../shared/data/cxr/metadata/hannover_ccd_metadata.csv) and the same 3 DICOMs (grouped by PatientID), "
    "split by patient with seed 0: a quarter of the patients for testing (with the NIH and openCXR "
    "radiographs), 15% for validation (3 images used), the rest for training after leaving out the "
    "references noisier than 1.53/255; the run's split.csv lists every file."
)
LAST_STEP_CONFIG = "configs/cxr_shipped_xray.yaml"
TRAINING_STEPS = [
    "1: denoise run configs/cxr_shipped.yaml (110 epochs from scratch)",
    (
        "2: denoise run configs/cxr_shipped.yaml --set run.name=cxr_shipped_ft --set train.init_from=<step 1 best.pt> "
        "--set train.epochs=180 --set train.lr=0.0005 --set train.max_train_seconds=2700 (stopped by time after epoch 146)"
    ),
    "3: denoise run configs/cxr_shipped_refine.yaml --set train.init_from=<step 2 best.pt>",
    f"4: denoise run {LAST_STEP_CONFIG} --set train.init_from=<step 3 best.pt, the earlier pipeline/weights/cxr_default.pt>",
]


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder (or checkpoint) of the last training step")
    parser.add_argument("--dest", type=Path, default=SHIPPED_MODEL)
    args = parser.parse_args()
    source = checkpoint_path(args.run)
    ckpt = read_checkpoint(source)
    log = ckpt.get("state", {}).get("log", [])
    provenance = {
        "source_checkpoint": str(source),
        "epoch": ckpt["epoch"],
        "best_val_psnr": ckpt.get("state", {}).get("best_val_psnr"),
        "training_seconds": sum(row["seconds"] for row in log),
        "training_data": DATA_PROVENANCE,
        "config": LAST_STEP_CONFIG,
        "training_steps": TRAINING_STEPS,
        "initialised_from": ckpt["config"]["train"].get("init_from"),
        "commit_when_shipped": git_commit(),
        "shipped": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    save_checkpoint({**strip_training_state(ckpt), "provenance": provenance}, args.dest)
    write_json(provenance, args.dest.with_suffix(".json"))
    print(f"shipped {source} -> {args.dest} ({args.dest.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
