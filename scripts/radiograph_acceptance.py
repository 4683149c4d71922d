"""The radiograph acceptance table: X-ray dose and Gaussian noise on the five-source patient split's
test part.

    python scripts/radiograph_acceptance.py --model unet=pipeline/weights/cxr_default.pt \
        --crop 512 --work runs/acceptance_512
    python scripts/radiograph_acceptance.py --model unet=pipeline/weights/cxr_default.pt \
        --crop 0 --bm3d-images 2 --work runs/acceptance_full
    python scripts/radiograph_acceptance.py --lowres dense64=runs/cxr64_dense/<ts> \
        --lowres conv64=runs/cxr64_conv/<ts> --work runs/acceptance_64

What it measures is :mod:`bench.split` (``scripts/benchmark.py --only split`` runs the
same tables for the shipped model). Rows stay in ``<work>/<condition>/metrics.csv`` and are
reused; writes ``<work>/acceptance.json``, ``acceptance.md`` and ``transfer.png`` (detail kept
T(f) and the residual's noise power spectrum per method and condition).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT))  # the checkout: `bench` is not installed

from bench.settings import LOWRES, shared_data_beside
from bench.split import SplitOptions, markdown, run_split, test_images
from bench.split_detail import condition_figure
from pipeline.provenance import git_commit


def named_checkpoints(specs: list[str]) -> dict[str, str]:
    """``name=checkpoint`` pairs, in order."""
    models = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"error: --model/--lowres takes name=checkpoint, got {spec!r}")
        models[name] = path
    return models


def provenance(argv: list[str], threads: int, project: Path) -> dict[str, Any]:
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(project) or "unknown",
        "command": "python scripts/radiograph_acceptance.py " + shlex.join(argv),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        "threads available",
        "threads": threads,
    }


def measured_line(p: dict[str, Any]) -> str:
    return (
        f"*Measured {p['time']} at commit `{p['commit']}` with `{p['command']}` on {p['machine']}, "
        f"{p['threads']} torch threads.*"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="name=checkpoint (repeatable; the first is judged)",
    )
    p.add_argument(
        "--lowres",
        action="append",
        default=[],
        help="name=checkpoint of a 64-px model (64x64 table instead)",
    )
    p.add_argument("--crop", type=int, default=512, help="centre crop side (0: whole images)")
    p.add_argument(
        "--images", type=int, default=None, help="the first N test images only (default all)"
    )
    p.add_argument(
        "--bm3d-images",
        type=int,
        default=None,
        help="run BM3D on the first N images only (default all)",
    )
    p.add_argument(
        "--bm3d-budget",
        type=float,
        default=None,
        help="start no BM3D image after this many seconds",
    )
    p.add_argument("--only", nargs="*", help="condition keys to run (default all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--work", type=Path, required=True, help="folder for the rows (reused) and the tables"
    )
    p.add_argument(
        "--project", type=Path, default=CHECKOUT, help="the checkout (default: this script's)"
    )
    p.add_argument(
        "--shared-data",
        type=Path,
        help="the radiographs (default: ../shared/data beside the checkout)",
    )
    args = p.parse_args(argv)
    shared_data = args.shared_data or shared_data_beside(args.project)
    torch.set_num_threads(args.threads)
    options = SplitOptions(
        work=args.work,
        models=named_checkpoints(args.lowres or args.model),
        lowres=bool(args.lowres),
        lowres_dir=shared_data / LOWRES,
        crop=args.crop,
        images=args.images,
        bm3d_images=args.bm3d_images,
        bm3d_budget=args.bm3d_budget,
        only=args.only,
        seed=args.seed,
    )
    result = run_split(*test_images(args.project, shared_data), options)
    result["provenance"] = provenance(argv, args.threads, args.project)
    args.work.mkdir(parents=True, exist_ok=True)
    text = markdown(result, measured_line(result["provenance"]))
    (args.work / "acceptance.json").write_text(json.dumps(result, indent=2, default=float))
    figure = condition_figure(result, args.work / "transfer.png")
    if figure is not None:
        text += (
            "\n![detail kept T(f) and the residual's noise power spectrum per "
            f"method]({figure.name})\n"
        )
    (args.work / "acceptance.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
