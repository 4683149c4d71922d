"""Copy a run's best checkpoint into the package as the shipped radiograph model.

    python scripts/ship_model.py runs/cxr_shipped/<timestamp>

Writes pipeline/weights/cxr_default.pt (weights + resolved config + version + provenance;
no optimizer state, so it stays small) and pipeline/weights/cxr_default.json (the same
provenance, readable without torch).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch

from pipeline.denoise import SHIPPED_MODEL, checkpoint_path

DATA_PROVENANCE = (
    "Hannover Medical School COVID-19 chest radiograph repository (CC BY 3.0): the 10 radiographs "
    "in ../shared/data/cxr/png/hannover_mhh_covid (2000x2000 JPEG, CR, PA and AP; the 7 of them listed "
    "in its metadata CSV are 7 different patients), split by file with seed 0: 8 for training patches, "
    "2 for validation on whole images. The NIH ChestX-ray14 and openCXR radiographs (other institutions, "
    "so other patients) were held out for testing."
)


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder (or checkpoint) of configs/cxr_shipped.yaml")
    parser.add_argument("--dest", type=Path, default=SHIPPED_MODEL)
    args = parser.parse_args()
    source = checkpoint_path(args.run)
    ckpt = torch.load(source, map_location="cpu", weights_only=True)
    log = ckpt.get("state", {}).get("log", [])
    provenance = {
        "source_checkpoint": str(source),
        "epoch": ckpt["epoch"],
        "best_val_psnr": ckpt.get("state", {}).get("best_val_psnr"),
        "training_seconds": sum(row["seconds"] for row in log),
        "training_data": DATA_PROVENANCE,
        "config": "configs/cxr_shipped.yaml",
        "initialised_from": ckpt["config"]["train"].get("init_from"),
        "commit_when_shipped": git_commit(),
        "shipped": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    shipped = {
        "model_state": ckpt["model_state"], "config": ckpt["config"], "version": ckpt["version"],
        "epoch": ckpt["epoch"], "provenance": provenance,
    }
    args.dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(shipped, args.dest)
    args.dest.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"shipped {source} -> {args.dest} ({args.dest.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
