"""Compare an exported TorchScript/ONNX file with its source checkpoint on real images.

Both run through ``denoise apply``'s denoiser (its reader, tiles, overlap and batch); the
script prints per file the largest absolute difference between the two results in [0, 1]
units, and exits 1 when any exceeds 1e-4.

    python scripts/check_export.py denoiser.onnx ../shared/data/cxr/dicom
    python scripts/check_export.py denoiser.pt scans/ --model runs/x/20250101-000000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from pipeline.config import InferenceConfig
from pipeline.export import TOLERANCE
from pipeline.exported import load_exported_model
from pipeline.inference import denoiser_from_checkpoint
from pipeline.io import detect_format, read_image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: The package's inference settings (the tiles `denoise apply` uses) on the CPU.
CPU = InferenceConfig(device="cpu")


def image_files(inputs: list[Path]) -> list[Path]:
    """The image files among `inputs` (files, or folders read without recursion)."""
    files = [p for item in inputs for p in (sorted(item.iterdir()) if item.is_dir() else [item])]
    return [p for p in files if p.is_file() and detect_format(p) is not None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="file written by denoise export (.onnx, .pt)")
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders of them")
    parser.add_argument(
        "--model", type=Path, help="the checkpoint it came from (default: the shipped model)"
    )
    args = parser.parse_args(argv)
    exported, _ = denoiser_from_checkpoint(load_exported_model(args.export), CPU)  # apply's tiles
    reference, _ = denoiser_from_checkpoint(args.model, CPU)
    worst = 0.0
    for path in image_files(args.inputs):
        pixels = read_image(path)[0].pixels
        diff = float(np.abs(exported(pixels) - reference(pixels)).max())
        worst = max(worst, diff)
        print(f"{path.name[:60]:60s} {pixels.shape[0]:>5d}x{pixels.shape[1]:<5d} {diff:.2e}")
    print(
        f"largest difference between {args.export.name} and the PyTorch path: {worst:.2e} "
        f"(tolerance {TOLERANCE:g})"
    )
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    raise SystemExit(main())
