"""Score checkpoints on the benchmark's radiograph crops against its recorded BM3D figures.

    python scripts/compare_to_benchmark.py pipeline/weights/cxr_default.pt \
        runs/x/checkpoints/best.pt

Uses the test radiographs, centre crop, noise conditions and seed of the last full run of
``scripts/benchmark.py``, read from the settings recorded in ``benchmarks/results.json``, so each
checkpoint sees exactly the noisy images that BM3D saw there, without running BM3D again (about 9
minutes). Prints, per noise condition, each checkpoint's mean PSNR / SSIM and its mean ΔPSNR
against BM3D (the mean of the paired differences; for confidence intervals run the benchmark
itself).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT))  # the checkout: `bench` is not installed

from bench.conditions import crop_scan, cxr_test_images
from bench.noise_conditions import QUALITY, noise_conditions
from bench.quality import run_table, summarize_table
from bench.settings import Settings
from pipeline.config import InferenceConfig
from pipeline.denoiser import Renamed
from pipeline.inference import denoiser_from_checkpoint
from pipeline.noise import make_noise


def compare(
    checkpoints: list[str], results: Path, threads: int, project: Path = CHECKOUT
) -> list[dict]:
    """One row per (noise condition, checkpoint): mean PSNR, SSIM and ΔPSNR vs the recorded BM3D
    mean.

    The recorded settings' relative paths are taken in the checkout `project`.
    """
    recorded = json.loads(results.read_text())["quality"]["cxr"]
    if "settings" not in recorded["provenance"]:
        raise SystemExit(
            f"{results} records no settings (written before they were stored); run "
            "scripts/benchmark.py again"
        )
    settings = Settings.from_dict(
        recorded["provenance"]["settings"], project
    )  # its seed, folders, crop
    images, _, _ = cxr_test_images(settings)
    crops = [crop_scan(img, recorded["crop"]) for img in images]
    if [c.meta.name for c in crops] != [i["image"] for i in recorded["images"]]:
        raise SystemExit(
            f"the test radiographs differ from those in {results}; run scripts/benchmark.py instead"
        )
    torch.set_num_threads(threads)
    methods = [
        Renamed(denoiser_from_checkpoint(path, InferenceConfig(device="cpu"))[0], path)
        for path in checkpoints
    ]
    rows = []
    for key, (label, noise_cfg) in noise_conditions(QUALITY).items():
        bm3d = recorded["conditions"][key]["summary"]["methods"]["bm3d"]
        with tempfile.TemporaryDirectory() as tmp:
            table = run_table(crops, make_noise(noise_cfg), methods, 0, Path(tmp), settings.seed)
        summary = summarize_table(table)["methods"]
        for path in checkpoints:
            psnr, ssim = summary[path]["psnr"]["mean"], summary[path]["ssim"]["mean"]
            rows.append(
                {
                    "condition": label,
                    "checkpoint": path,
                    "psnr": psnr,
                    "ssim": ssim,
                    "bm3d_psnr": bm3d["psnr"]["mean"],
                    "delta_psnr": psnr - bm3d["psnr"]["mean"],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="checkpoints or run folders")
    p.add_argument("--results", type=Path, default=CHECKOUT / "benchmarks" / "results.json")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    for row in compare(args.checkpoints, args.results, args.threads):
        print(
            f"{row['condition']:<56} {row['checkpoint']:<40} {row['psnr']:6.2f} dB / "
            f"{row['ssim']:.3f}"
            f"  BM3D {row['bm3d_psnr']:6.2f}  ΔPSNR {row['delta_psnr']:+.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
