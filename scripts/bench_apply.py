"""Peak memory and throughput of ``denoise apply`` on one large 16-bit PNG.

A ``SIZE`` x ``SIZE`` (default 4096) 16-bit PNG is generated in a temporary folder and
denoised by ``python -m pipeline apply`` in a child process. Peak resident memory is the
child's ``ru_maxrss`` (from ``os.wait4``), next to that of a child that only imports the
package and loads the model (the baseline). Throughput is megapixels per second from the
manifest's per-file seconds (read, denoise, noise estimates, write) and from the wall time.
The scan and any untrained checkpoint are made in a child process too: on Linux a child's
``ru_maxrss`` starts from its parent's peak, so the parent itself stays small.

    python scripts/bench_apply.py                          # the shipped model
    python scripts/bench_apply.py --model runs/x/2025...   # a given checkpoint or run folder
    python scripts/bench_apply.py --untrained unet         # no trained model at hand
    python scripts/bench_apply.py --size 2048 --tile-size 256 --out /tmp/apply.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from pipeline import __version__
from pipeline.config import InferenceConfig

DEFAULTS = InferenceConfig()  # the package's tile settings (pipeline.config imports no torch)


def make_scan(path: Path, size: int, seed: int = 0) -> Path:
    """Write a `size` x `size` 16-bit PNG: smooth anatomy-like structure plus Gaussian noise."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    body = 0.35 + 0.4 * np.exp(-(axis[:, None] ** 2 + 0.5 * axis[None, :] ** 2) * 2.0)
    noisy = body + rng.normal(0.0, 0.03, (size, size)).astype(np.float32)
    values = np.clip(noisy, 0.0, 1.0) * 65535.0
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(values.round().astype(np.uint16)).save(path)
    return path


def make_untrained(name: str, path: Path) -> Path:
    """Save an untrained network of architecture `name` as a checkpoint (seed 0)."""
    import torch

    from pipeline.checkpoint import build_checkpoint, save_checkpoint
    from pipeline.config import Config
    from pipeline.models import build_model

    cfg = Config()
    cfg.model.name = name
    cfg.run.name = f"untrained-{name}"
    torch.manual_seed(0)
    model = build_model(cfg.model)
    return save_checkpoint(build_checkpoint(model, cfg), path)


def run_child(cmd: list[str]) -> tuple[int, float, float]:
    """Run `cmd`; returns (exit status, wall seconds, peak resident memory in MiB)."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=PROJECT_ROOT)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KiB on Linux
    return child.returncode, time.perf_counter() - start, usage.ru_maxrss / scale


def baseline_cmd(model: Path | None, device: str) -> list[str]:
    """A child that imports the package and loads the model, and does nothing else."""
    code = (
        "import sys; import pipeline.apply; from pipeline.checkpoint import load_model; "
        "from pipeline.inference import resolve_device; "
        f"load_model(sys.argv[1] if sys.argv[1] != '-' else None, resolve_device({device!r}))"
    )
    return [sys.executable, "-c", code, str(model) if model else "-"]


def apply_cmd(args: argparse.Namespace, model: Path | None, src: Path, dest: Path) -> list[str]:
    cmd = [sys.executable, "-m", "pipeline", "apply", "-i", str(src), "-o", str(dest), "--no-progress",
           "--no-report", "--device", args.device, "--tile-size", str(args.tile_size),
           "--overlap", str(args.overlap), "--batch-size", str(args.batch_size)]
    return cmd + (["--model", str(model)] if model else [])


def model_path(args: argparse.Namespace, folder: Path) -> Path | None:
    """The checkpoint to measure: the untrained one made in `folder`, else --model (None: shipped)."""
    return folder / f"untrained-{args.untrained}.pt" if args.untrained else args.model


def prepare(args: argparse.Namespace, folder: Path) -> None:
    """Write the scan under ``folder/in`` and, with --untrained, the untrained checkpoint."""
    make_scan(folder / "in" / "scan.png", args.size)
    if args.untrained:
        make_untrained(args.untrained, model_path(args, folder))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the inputs, run the baseline and the apply children, gather the numbers."""
    with tempfile.TemporaryDirectory(prefix="bench_apply_") as tmp:
        tmp_dir = Path(tmp)
        status, _, _ = run_child([sys.executable, __file__, *args.argv, "--prepare", str(tmp_dir)])
        if status != 0:
            raise SystemExit(f"preparing the inputs failed (exit {status})")
        model = model_path(args, tmp_dir)
        status, _, baseline_mib = run_child(baseline_cmd(model, args.device))
        if status != 0:
            raise SystemExit(f"loading the model failed (exit {status}); give --model or --untrained")
        status, wall, peak_mib = run_child(apply_cmd(args, model, tmp_dir / "in", tmp_dir / "out"))
        if status != 0:
            raise SystemExit(f"denoise apply failed (exit {status})")
        with open(tmp_dir / "out" / "manifest.csv", newline="") as fh:
            row = next(csv.DictReader(fh))
    megapixels, seconds = float(row["megapixels"]), float(row["seconds"])
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "command": " ".join(apply_cmd(args, Path("MODEL") if model else None, Path("IN"), Path("OUT"))),
        "image": {"size": [args.size, args.size], "dtype": "uint16", "megapixels": megapixels,
                  "float32_mib": round(args.size * args.size * 4 / 2**20, 1)},
        "model": row["model"] if not args.untrained else f"untrained {args.untrained} ({row['model']})",
        "settings": {"tile_size": args.tile_size, "overlap": args.overlap, "batch_size": args.batch_size,
                     "device": args.device},
        "peak_rss_mib": round(peak_mib, 1),
        "baseline_rss_mib": round(baseline_mib, 1),
        "file_seconds": seconds,
        "wall_seconds": round(wall, 2),
        "megapixels_per_second": round(megapixels / seconds, 3),
        "megapixels_per_second_wall": round(megapixels / wall, 3),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint or run folder (default: the shipped model)")
    parser.add_argument("--untrained", choices=("conv", "unet", "dncnn"),
                        help="measure an untrained network of this architecture instead")
    parser.add_argument("--size", type=int, default=4096, help="side of the generated scan (default 4096)")
    parser.add_argument("--tile-size", type=int, default=DEFAULTS.tile_size)
    parser.add_argument("--overlap", type=float, default=DEFAULTS.overlap)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "benchmarks" / "apply.json",
                        help="JSON file to write (default benchmarks/apply.json)")
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)  # the child's job
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare is not None:
        prepare(args, args.prepare)
        return 0
    result = measure(args)
    text = json.dumps(result, indent=2)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n")
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
