"""Throughput and peak memory of ``denoise apply`` against the network's own rate.

Run by ``scripts/bench_apply.py`` (its command line) and by ``scripts/benchmark.py``'s speed part
as ``python -m bench.apply_speed`` in the checkout: the measuring process must be a small one of
its own, because a child's ``ru_maxrss`` on Linux starts from its parent's peak (a benchmark
process that has held large images would inflate every figure).

``--files`` 16-bit PNGs of ``--size`` x ``--size`` (default one 4096² scan) are generated
in a temporary folder. Two figures are measured in one child process, back to back,
``--repeats`` times (medians reported):

- the network's own rate: :class:`pipeline.inference.ModelDenoiser` with the same tile
  size, overlap, batch size and device, called on each image already decoded into a
  float32 array in memory (no reading, no noise estimates, no writing), after one
  warm-up call;
- ``apply``: :func:`pipeline.apply.apply_folder` on the folder, end to end (reading,
  decoding, denoising, noise estimates, encoding, atomic writes, manifest), wall time,
  with the model already loaded.

Their ratio of wall times is what the throughput target is about (the machine may be
shared: the load average before and after is recorded, and absolute rates drop with it
while the ratio holds better). The ratio of the process's CPU seconds (all threads) is
recorded too: the extra work apply does beyond the network, which a busy machine's
scheduling cannot hide. Peak resident memory is that of ``python -m pipeline apply`` run once more
in its own child (``ru_maxrss`` from ``os.wait4``), next to that of a child that only
imports the package and loads the model (the baseline). Inputs and any untrained
checkpoint are made in a child too: on Linux a child's ``ru_maxrss`` starts from its
parent's peak, so the parent itself stays small.

    python scripts/bench_apply.py                          # the shipped model, one 4096² scan
    python scripts/bench_apply.py --files 100 --size 1024  # a folder of 100 1024² PNGs
    python scripts/bench_apply.py --model runs/x/2025...   # a given checkpoint or run folder
    python scripts/bench_apply.py --untrained unet         # no trained model at hand
    python scripts/bench_apply.py --size 2048 --tile-size 256 --repeats 1 --out /tmp/apply.json

The children run in the checkout (``--project``, default the working folder; the script passes
its own checkout), so ``python -m`` finds this module and the ``pipeline`` package there.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.config import InferenceConfig

DEFAULTS = InferenceConfig()  # the package's tile settings (pipeline.config imports no torch)
#: How this module runs its own jobs (preparing the inputs, the rates) in a child.
CHILD = [sys.executable, "-m", "bench.apply_speed"]


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


def run_child(cmd: list[str], cwd: Path) -> tuple[int, float, float]:
    """Run `cmd` in `cwd`; returns (exit status, wall seconds, peak resident memory in MiB)."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, cwd=cwd)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    scale = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KiB on Linux
    return child.returncode, time.perf_counter() - start, usage.ru_maxrss / scale


def baseline_cmd(model: Path | None, device: str) -> list[str]:
    """A child that imports the package and loads the model, and does nothing else."""
    code = (
        "import sys; import pipeline.apply; from pipeline.checkpoint import load_model; from "
        "pipeline.inference import resolve_device; "
        f"load_model(sys.argv[1] if sys.argv[1] != '-' else None, resolve_device({device!r}))"
    )
    return [sys.executable, "-c", code, str(model) if model else "-"]


def apply_cmd(args: argparse.Namespace, model: Path | None, src: Path, dest: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "apply",
        "-i",
        str(src),
        "-o",
        str(dest),
        "--no-progress",
        "--no-report",
        "--device",
        args.device,
        "--tile-size",
        str(args.tile_size),
        "--overlap",
        str(args.overlap),
        "--batch-size",
        str(args.batch_size),
    ]
    return cmd + (["--model", str(model)] if model else [])


def model_path(args: argparse.Namespace, folder: Path) -> Path | None:
    """The checkpoint to measure: the untrained one made in `folder`, else --model (None:
    shipped)."""
    return folder / f"untrained-{args.untrained}.pt" if args.untrained else args.model


def prepare(args: argparse.Namespace, folder: Path) -> None:
    """Write the scans under ``folder/in`` and, with --untrained, the untrained checkpoint."""
    for index in range(args.files):
        name = "scan.png" if args.files == 1 else f"scan_{index:04d}.png"
        make_scan(folder / "in" / name, args.size, seed=index)
    if args.untrained:
        make_untrained(args.untrained, model_path(args, folder))


def measure_rates(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """The network's own MP/s and apply's end-to-end MP/s, back to back, ``--repeats`` times.

    Runs in a child process (``--rates``); writes ``folder/rates.json``.
    """
    import shutil

    from pipeline.apply import ApplyOptions, apply_folder
    from pipeline.inference import denoiser_from_checkpoint
    from pipeline.io import read_image

    model = model_path(args, folder)
    settings = InferenceConfig(
        device=args.device,
        tile_size=args.tile_size,
        overlap=args.overlap,
        batch_size=args.batch_size,
    )
    denoiser, loaded = denoiser_from_checkpoint(model, settings)
    pixels = [
        image.pixels for path in sorted((folder / "in").iterdir()) for image in read_image(path)
    ]
    megapixels = sum(p.size for p in pixels) / 1e6
    denoiser(pixels[0])  # warm-up: first-call allocations and kernel selection
    network, apply, network_cpu, apply_cpu = [], [], [], []
    for _ in range(args.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        for image in pixels:
            denoiser(image)
        network.append(time.perf_counter() - start)
        network_cpu.append(time.process_time() - cpu)
        out = folder / "out-rates"
        shutil.rmtree(out, ignore_errors=True)
        start, cpu = time.perf_counter(), time.process_time()
        result = apply_folder(
            folder / "in", out, loaded, ApplyOptions(progress=False, report=False), settings
        )
        apply.append(time.perf_counter() - start)
        apply_cpu.append(time.process_time() - cpu)
        if result.failed or result.done != args.files:
            raise SystemExit(f"apply_folder denoised {result.done} of {args.files} files")
    rates = {
        "model": loaded.identity
        if not args.untrained
        else f"untrained {args.untrained} ({loaded.identity})",
        "megapixels": round(megapixels, 4),
        "network_seconds": [round(t, 3) for t in network],
        "apply_seconds": [round(t, 3) for t in apply],
        "ratios": [round(n / a, 3) for n, a in zip(network, apply)],
        "network_cpu_seconds": [round(t, 3) for t in network_cpu],
        "apply_cpu_seconds": [round(t, 3) for t in apply_cpu],
    }
    (folder / "rates.json").write_text(json.dumps(rates))
    return rates


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the inputs, run the baseline and the apply children, gather the numbers."""
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_apply_") as tmp:
        tmp_dir = Path(tmp)
        status, _, _ = run_child([*CHILD, *args.argv, "--prepare", str(tmp_dir)], args.project)
        if status != 0:
            raise SystemExit(f"preparing the inputs failed (exit {status})")
        status, _, _ = run_child([*CHILD, *args.argv, "--rates", str(tmp_dir)], args.project)
        if status != 0:
            raise SystemExit(f"measuring the rates failed (exit {status})")
        rates = json.loads((tmp_dir / "rates.json").read_text())
        model = model_path(args, tmp_dir)
        memory = {} if args.no_memory else measure_memory(args, model, tmp_dir)
    megapixels = rates["megapixels"]
    network_s, apply_s = (
        statistics.median(rates["network_seconds"]),
        statistics.median(rates["apply_seconds"]),
    )
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": __version__,
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "command": " ".join(
            [
                "python",
                *apply_cmd(args, Path("MODEL") if model else None, Path("IN"), Path("OUT"))[1:],
            ]
        ),
        "load_average": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "image": {
            "size": [args.size, args.size],
            "dtype": "uint16",
            "files": args.files,
            "megapixels": megapixels,
            "float32_mib": round(args.size * args.size * 4 / 2**20, 1),
        },
        "model": rates["model"],
        "settings": {
            "tile_size": args.tile_size,
            "overlap": args.overlap,
            "batch_size": args.batch_size,
            "device": args.device,
        },
        "repeats": args.repeats,
        "network_megapixels_per_second": round(megapixels / network_s, 3),
        "apply_megapixels_per_second": round(megapixels / apply_s, 3),
        "apply_files_per_second": round(args.files / apply_s, 3),
        "ratio_to_network": round(network_s / apply_s, 3),
        "cpu_ratio_to_network": round(
            statistics.median(rates["network_cpu_seconds"])
            / statistics.median(rates["apply_cpu_seconds"]),
            3,
        ),
        "rates": rates,
        "megapixels_per_second": round(megapixels / apply_s, 3),
        **memory,
    }


def measure_memory(args: argparse.Namespace, model: Path | None, folder: Path) -> dict[str, Any]:
    """Peak RSS of ``python -m pipeline apply`` on ``folder/in`` and of the import-and-load
    baseline."""
    status, _, baseline_mib = run_child(baseline_cmd(model, args.device), args.project)
    if status != 0:
        raise SystemExit(f"loading the model failed (exit {status}); give --model or --untrained")
    status, wall, peak_mib = run_child(
        apply_cmd(args, model, folder / "in", folder / "out"), args.project
    )
    if status != 0:
        raise SystemExit(f"denoise apply failed (exit {status})")
    with open(folder / "out" / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    megapixels = sum(float(r["megapixels"]) for r in rows)
    return {
        "peak_rss_mib": round(peak_mib, 1),
        "baseline_rss_mib": round(baseline_mib, 1),
        "cli_wall_seconds": round(wall, 2),
        "megapixels_per_second_cli_wall": round(megapixels / wall, 3),
    }


def parse_args(argv: list[str] | None = None, project: Path | None = None) -> argparse.Namespace:
    """The command line; `project` is the checkout when ``--project`` is not given (else the working
    folder)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, help="checkpoint or run folder (default: the shipped model)"
    )
    parser.add_argument(
        "--untrained",
        choices=("conv", "unet", "dncnn"),
        help="measure an untrained network of this architecture instead",
    )
    parser.add_argument(
        "--size", type=int, default=4096, help="side of each generated scan (default 4096)"
    )
    parser.add_argument(
        "--files", type=int, default=1, help="number of generated scans in the folder (default 1)"
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="network and apply timings, back to back (default 3)"
    )
    parser.add_argument("--tile-size", type=int, default=DEFAULTS.tile_size)
    parser.add_argument("--overlap", type=float, default=DEFAULTS.overlap)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the peak-memory run of the CLI (rates only)"
    )
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--out", type=Path, help="JSON file to write (default benchmarks/apply.json)"
    )
    parser.add_argument(
        "--project",
        type=Path,
        default=project or Path.cwd(),
        help="the checkout the children run in (default: the working folder)",
    )
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)  # the children's jobs
    parser.add_argument("--rates", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.project = args.project.resolve()
    args.out = args.out or args.project / "benchmarks" / "apply.json"
    return args


def main(argv: list[str] | None = None, project: Path | None = None) -> int:
    """Measure and write the JSON (or, in a child, do one of its jobs)."""
    args = parse_args(argv, project)
    if args.prepare is not None:
        prepare(args, args.prepare)
        return 0
    if args.rates is not None:
        measure_rates(args, args.rates)
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
