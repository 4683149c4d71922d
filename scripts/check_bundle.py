"""Run a model's MONAI bundle and ``denoise apply`` on the same radiographs and compare them.

The bundle is exported to a temporary folder, run with MONAI's own command
(``python -m monai.bundle run --config_file configs/inference.json --meta_file
configs/metadata.json``) in a child process, and ``denoise apply`` runs on the same files.
For each file it prints the largest absolute difference, in [0, 1] units (high = bright):

- ``vs_apply_pixels``: bundle output against the denoised pixels ``denoise apply`` computes
  (its reader, tiled model with its defaults) before they are written;
- ``vs_apply_file``: bundle output against the file ``denoise apply`` wrote, which is
  quantised to the input's bit depth (``file_step`` is one stored level).

    python scripts/check_bundle.py ../shared/data/cxr/dicom ../shared/data/cxr/png/nih_chestxray14
    python scripts/check_bundle.py --model runs/x/20250101-000000 scans/ --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parents[1]

from pipeline.apply import ApplyOptions, apply_folder
from pipeline.bundle import write_bundle
from pipeline.config import InferenceConfig
from pipeline.inference import denoiser_from_checkpoint
from pipeline.io import read_image

TOLERANCE = 1e-4


def gather(inputs: list[Path], folder: Path) -> list[Path]:
    """Copies in `folder` of every image file of `inputs` (files or folders, not recursive).

    Copies, not symbolic links: ``denoise apply`` refuses links that leave its input folder.
    """
    import shutil

    from pipeline.io import detect_format

    folder.mkdir(parents=True)
    copies = []
    for item in inputs:
        for path in sorted(item.iterdir()) if item.is_dir() else [item]:
            if path.is_file() and detect_format(path) is not None:
                copies.append(Path(shutil.copy2(path, folder / path.name)))
    return copies


def run_bundle(bundle: Path, scans: Path, out: Path) -> None:
    """MONAI's bundle command, from the bundle folder, in a child process."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    )
    command = [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "configs/inference.json",
        "--meta_file",
        "configs/metadata.json",
        "--dataset_dir",
        str(scans),
        "--output_dir",
        str(out),
    ]
    proc = subprocess.run(command, cwd=bundle, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the bundle run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def bundle_unit(path: Path, meta: Any) -> np.ndarray:
    """A bundle output (file values, columns first) as [0, 1] pixels, rows first, high = bright."""
    import nibabel

    values = np.asarray(nibabel.load(path).dataobj, dtype=np.float64).T
    unit = (values - meta.value_min) / (meta.value_max - meta.value_min)
    return 1.0 - unit if meta.photometric == "MONOCHROME1" else unit


def compare(inputs: list[Path], model: Path | None, work: Path) -> list[dict[str, Any]]:
    """Rows of per-file differences (see the module doc)."""
    scans = work / "scans"
    files = gather(inputs, scans)
    bundle = write_bundle(model, work / "bundle").path
    run_bundle(bundle, scans, work / "bundle_out")
    cpu = InferenceConfig(device="cpu")  # the package's tile settings, as apply
    apply_folder(scans, work / "apply_out", model, ApplyOptions(progress=False, report=False), cpu)
    denoiser, _ = denoiser_from_checkpoint(model, cpu)
    written = {
        Path(p).name.split(".")[0]: p
        for p in (work / "apply_out").iterdir()
        if not p.name.startswith(".")
    }
    rows = []
    for path in files:
        image = read_image(path)[0]
        meta = image.meta
        got = bundle_unit(
            work / "bundle_out" / f"{path.name.rsplit('.', 1)[0]}_denoised.nii.gz", meta
        )
        applied = read_image(written[path.name.split(".")[0]])[0]
        rows.append(
            {
                "file": path.name,
                "height": got.shape[0],
                "width": got.shape[1],
                "vs_apply_pixels": float(np.abs(got - denoiser(image.pixels)).max()),
                "vs_apply_file": float(np.abs(got - applied.pixels).max()),
                "file_step": 1.0 / (applied.meta.value_max - applied.meta.value_min),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="image files or folders of them")
    parser.add_argument(
        "--model", type=Path, help="checkpoint or run folder (default: the shipped model)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = compare(args.inputs, args.model, Path(tmp))
    print(
        f"{'file':60s} {'size':>11s} {'vs_apply_pixels':>16s} {'vs_apply_file':>14s} "
        f"{'file_step':>10s}"
    )
    for r in rows:
        size = f"{r['height']}x{r['width']}"
        print(
            f"{r['file'][:60]:60s} {size:>11s} {r['vs_apply_pixels']:16.2e} "
            f"{r['vs_apply_file']:14.2e} {r['file_step']:10.2e}"
        )
    worst = max(r["vs_apply_pixels"] for r in rows)
    print(
        f"largest difference to denoise apply's pixels: {worst:.2e} (tolerance {TOLERANCE:g}) on "
        f"{len(rows)} files"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if worst <= TOLERANCE else 1


if __name__ == "__main__":
    raise SystemExit(main())
