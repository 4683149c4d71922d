"""Benchmark on this machine: denoising quality (MNIST, radiographs) and speed.

Writes ``<out>/RESULTS.md`` (headline first, then detail tables) and the machine-readable
``<out>/results.json``. Every section records the command, git commit, date and machine
it was measured with. Per-image metrics and any models trained here go to ``--work``
(default ``runs/benchmark/<timestamp>``, git-ignored).

    python scripts/benchmark.py                    # full run (see --help for the parts)
    python scripts/benchmark.py --quick --out /tmp/bench   # smoke run, a few minutes
    python scripts/benchmark.py --only speed       # one part; merged into an existing results.json

Quality: every method of a table sees the same images and the same seeded noise
(:func:`pipeline.evaluate.evaluate`, one seed); BM3D may run on the first N of them only,
and its paired differences use those images. Speed: medians of several timed runs after
a warm-up (a warm-up slower than ``--slow-seconds`` counts as the first run); ratios are
taken within the same run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from pipeline import report
from pipeline.config import Config, ModelConfig, NoiseConfig, TrainConfig, load_config
from pipeline.checkpoint import SHIPPED_MODEL, load_model
from pipeline.evaluate import (
    Method,
    baseline_method,
    evaluate,
    model_method,
    noisy_input_method,
)
from pipeline.image import ScanImage
from pipeline.image import center_crop as crop_pixels
from pipeline.inference import ModelDenoiser, denoiser_from_checkpoint
from pipeline.models import build_model, count_parameters
from pipeline.noise import NoiseModel, make_noise, noise_rng
from pipeline.records import write_json

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
CXR_TEST_DIRS = [
    SHARED_DATA / "cxr" / "png" / "nih_chestxray14",
    SHARED_DATA / "cxr" / "png" / "opencxr_tests",
]
CXR_TRAIN_NOTE = (
    "the shipped unet (pipeline/weights/cxr_default.pt; configs/cxr_shipped.yaml, then "
    "configs/cxr_shipped_refine.yaml) is trained on Hannover radiographs (hannover_mhh_covid), "
    "none of the test images"
)
HEADLINE_CONDITION = "gaussian_25"
#: Row order of the tables (methods not listed follow in order of appearance).
ROW_ORDER = ("noisy", "tv", "nlm", "bm3d", "dense", "conv", "best", "unet", "dncnn", "dense64", "conv64")
CXR_NETWORKS = ("conv", "unet", "dncnn")
LOWRES_NETWORKS = ("dense64", "conv64")
LOWRES_SIZE = 64
LOWRES_DIR = SHARED_DATA / "cxr" / "lowres" / "nih1000_64px"
NIH_PATIENT = re.compile(r"^(\d{8})_\d{3}")
BENCH_APPLY = PROJECT_ROOT / "scripts" / "bench_apply.py"
APPLY_SIZE, APPLY_SIZE_QUICK = 4096, 1024
BASELINE_SIGMA = "BM3D and TV get the noise's true std (noise.std(clean)); NLM estimates it"

#: Defaults of the full run and of --quick (explicit options override either).
FULL: dict[str, Any] = {
    "mnist_images": 1000, "mnist_bm3d_images": 200, "epochs": None, "max_train": None,
    "cxr_crop": 512, "cxr_images": None, "sizes": [512, 1024, 2048], "bm3d_max_size": 1024,
    "repeats": 3, "matmul_n": 2048, "train_patch": 128,
}
QUICK: dict[str, Any] = {
    "mnist_images": 100, "mnist_bm3d_images": 10, "epochs": 2, "max_train": 2000,
    "cxr_crop": 128, "cxr_images": 3, "sizes": [128, 256], "bm3d_max_size": 256,
    "repeats": 2, "matmul_n": 2048, "train_patch": 64,
}


# --------------------------------------------------------------------------- settings


@dataclass
class Settings:
    """Everything a benchmark run needs, resolved from the command line."""

    out: Path
    work: Path
    parts: tuple[str, ...] = ("quality", "speed")
    quick: bool = False
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    command: str = ""
    mnist_root: Path | None = None
    mnist_images: int = 1000
    mnist_bm3d_images: int = 200
    mnist_models: dict[str, str | None] = field(default_factory=dict)
    epochs: int | None = None
    max_train: int | None = None
    train: bool = True
    cxr_dirs: list[Path] = field(default_factory=lambda: list(CXR_TEST_DIRS))
    cxr_crop: int | None = 512
    cxr_images: int | None = None
    cxr_models: dict[str, str | None] = field(default_factory=dict)
    tile_size: int | None = None
    bm3d: bool = True
    sizes: list[int] = field(default_factory=lambda: [512, 1024, 2048])
    bm3d_max_size: int = 1024
    repeats: int = 3
    slow_seconds: float = 10.0
    matmul_n: int = 2048
    train_patch: int = 128
    train_batch: int = 16
    apply_bench: bool = True


def build_parser() -> argparse.ArgumentParser:
    """The command line (defaults of None are filled from FULL or QUICK)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny sizes, few images, 2 epochs: a smoke run")
    p.add_argument("--only", choices=["quality", "speed"], help="run one part (merged into an existing results.json)")
    p.add_argument("--out", type=Path, default=PROJECT_ROOT / "benchmarks", help="where RESULTS.md and results.json go")
    p.add_argument("--work", type=Path, help="per-image metrics and trained models (default runs/benchmark/<timestamp>)")
    p.add_argument("--seed", type=int, default=0, help="noise seed shared by every method")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="auto: also measure the GPU when there is one")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's, which follows OMP_NUM_THREADS)")
    g = p.add_argument_group("MNIST (noise 0.5)")
    g.add_argument("--mnist-root", type=Path, help="MNIST IDX folder (default ../shared/data/mnist when it has t10k, else the bundled sample)")
    g.add_argument("--mnist-images", type=int, help="test images (full 1000, quick 100)")
    g.add_argument("--mnist-bm3d-images", type=int, help="first N test images for BM3D, ~0.4 s each (full 200, quick 10)")
    for name in ("dense", "conv", "best"):
        g.add_argument(f"--mnist-{name}", metavar="RUN", help=f"{name} model: checkpoint or run folder")
    g.add_argument("--epochs", type=int, help="epochs when training the MNIST models here (default: the configs' own; quick 2)")
    g.add_argument("--max-train", type=int, help="training images when training here (default all; quick 2000)")
    g.add_argument("--no-train", action="store_true", help="do not train missing MNIST models: skip them")
    g = p.add_argument_group("radiographs")
    g.add_argument("--cxr-dirs", type=Path, nargs="+", help="test image folders (default NIH + openCXR of ../shared/data)")
    g.add_argument("--cxr-crop", type=int, help="center crop side, 0 = whole images (full 512, quick 128)")
    g.add_argument("--cxr-images", type=int, help="use at most this many test images (default all; quick 3)")
    for name in (*CXR_NETWORKS, *LOWRES_NETWORKS):
        extra = " (default: the shipped model when present)" if name == "unet" else ""
        g.add_argument(f"--cxr-{name}", metavar="RUN", help=f"{name} checkpoint or run folder; 'none' skips it{extra}")
    g.add_argument("--tile-size", type=int, help="denoise large images in tiles of this size (default whole images)")
    g.add_argument("--skip-bm3d", action="store_true", help="leave BM3D out everywhere")
    g = p.add_argument_group("speed")
    g.add_argument("--sizes", type=int, nargs="+", help="square sizes (full 512 1024 2048; quick 128 256)")
    g.add_argument("--bm3d-max-size", type=int, help="measure BM3D only up to this size (~35 s/MP; full 1024)")
    g.add_argument("--repeats", type=int, help="timed runs per figure after the warm-up (full 3, quick 2)")
    g.add_argument("--slow-seconds", type=float, default=10.0, help="a warm-up slower than this counts as a timed run")
    g.add_argument("--matmul-n", type=int, help="side of the float32 matmul that measures peak (2048)")
    g.add_argument("--train-patch", type=int, help="patch side for training throughput (full 128, quick 64)")
    g.add_argument("--train-batch", type=int, default=16, help="patches per training step (configs/cxr_shipped.yaml: 16)")
    g.add_argument("--no-apply-bench", action="store_true", help="skip scripts/bench_apply.py (peak memory of `denoise apply`)")
    return p


def _pick(args: argparse.Namespace, name: str) -> Any:
    value = getattr(args, name)
    return value if value is not None else (QUICK if args.quick else FULL)[name]


def _default_mnist_root() -> Path | None:
    shared = SHARED_DATA / "mnist"
    return shared if any(shared.glob("t10k-images-idx3-ubyte*")) else None


def _cxr_model_arg(args: argparse.Namespace, name: str) -> str | None:
    value = getattr(args, f"cxr_{name}")
    if value is None and name == "unet" and SHIPPED_MODEL.is_file():
        return str(SHIPPED_MODEL)
    return value


def settings_from_args(argv: list[str] | None = None) -> Settings:
    """Parse the command line into :class:`Settings`."""
    args = build_parser().parse_args(argv)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    crop = _pick(args, "cxr_crop")
    return Settings(
        out=args.out, work=args.work or PROJECT_ROOT / "runs" / "benchmark" / stamp,
        parts=(args.only,) if args.only else ("quality", "speed"), quick=args.quick, seed=args.seed,
        device=args.device, threads=args.threads,
        command=shlex.join(["python", "scripts/benchmark.py", *(sys.argv[1:] if argv is None else argv)]),
        mnist_root=args.mnist_root if args.mnist_root is not None else _default_mnist_root(),
        mnist_images=_pick(args, "mnist_images"), mnist_bm3d_images=_pick(args, "mnist_bm3d_images"),
        mnist_models={n: getattr(args, f"mnist_{n}") for n in ("dense", "conv", "best")},
        epochs=_pick(args, "epochs"), max_train=_pick(args, "max_train"), train=not args.no_train,
        cxr_dirs=args.cxr_dirs or list(CXR_TEST_DIRS), cxr_crop=crop or None,
        cxr_images=_pick(args, "cxr_images"),
        cxr_models={n: _cxr_model_arg(args, n) for n in (*CXR_NETWORKS, *LOWRES_NETWORKS)},
        tile_size=args.tile_size, bm3d=not args.skip_bm3d, sizes=_pick(args, "sizes"),
        bm3d_max_size=_pick(args, "bm3d_max_size"), repeats=_pick(args, "repeats"),
        slow_seconds=args.slow_seconds, matmul_n=_pick(args, "matmul_n"),
        train_patch=_pick(args, "train_patch"), train_batch=args.train_batch,
        apply_bench=not args.no_apply_bench,
    )


def log(message: str) -> None:
    """Progress on stderr, with the time."""
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- provenance


def git_commit() -> str:
    """``git rev-parse HEAD``, with ``+dirty`` when the tree has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (platform's guess elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(settings: Settings) -> dict[str, Any]:
    """Command, commit, date and machine, recorded with every figure."""
    from pipeline.runner import environment

    env = environment()
    return {
        "command": settings.command,
        "git_commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": settings.quick,
        "machine": {
            "cpu_model": cpu_model(),
            "cpu_cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "gpu": env["cuda"],
            "platform": env["platform"],
        },
        "versions": {k: env[k] for k in ("package", "python", "torch", "monai", "scikit_image", "numpy")},
    }


# --------------------------------------------------------------------------- models


@dataclass
class ModelEntry:
    """A network for a table: its denoiser and description, or why it is absent."""

    name: str
    denoiser: ModelDenoiser | None = None
    info: dict[str, Any] = field(default_factory=dict)
    skipped: str | None = None


def quality_device(settings: Settings) -> str:
    return "cuda" if settings.device != "cpu" and torch.cuda.is_available() else "cpu"


def load_entry(name: str, path: str | None, settings: Settings, origin: str = "given on the command line") -> ModelEntry:
    """Load a checkpoint (or run folder) as a named denoiser; absent or unreadable: skipped."""
    if path is None or path.lower() == "none":
        return ModelEntry(name, skipped="no checkpoint given" if path is None else "disabled with 'none'")
    from pipeline.errors import PipelineError

    try:
        denoiser, loaded = denoiser_from_checkpoint(path, quality_device(settings), settings.tile_size)
    except PipelineError as err:
        return ModelEntry(name, skipped=f"checkpoint unusable: {err}")
    cfg = loaded.config
    info = {
        "checkpoint": str(loaded.path), "origin": origin, "model": cfg.model.model_dump(mode="json"),
        "run": cfg.run.name, "checkpoint_epoch": loaded.meta.get("epoch"),
        "train_data": str(cfg.data.root) if cfg.data.root is not None else f"{cfg.data.kind}: bundled sample",
        "train_noise": cfg.noise.kind, "parameters": count_parameters(loaded.model),
    }
    return ModelEntry(name, denoiser, info)


def train_mnist(config_file: Path, settings: Settings) -> tuple[Path, int]:
    """Train an MNIST config with :func:`pipeline.runner.run`; its best checkpoint and epochs asked."""
    from pipeline.runner import run

    cfg = load_config(config_file)
    cfg.run.output_dir = settings.work / "runs"
    cfg.run.stages = ["train"]
    cfg.run.seed = settings.seed
    cfg.run.device = settings.device
    cfg.train.progress = False
    cfg.data.root = settings.mnist_root
    if settings.epochs is not None:
        cfg.train.epochs = settings.epochs
    if settings.max_train is not None:
        cfg.data.max_train = settings.max_train
    log(f"training {config_file.name} for {cfg.train.epochs} epochs")
    result = run(cfg)
    return result.checkpoint, cfg.train.epochs


def mnist_entry(name: str, settings: Settings) -> ModelEntry:
    """An MNIST model: the given checkpoint, else trained here from its config (dense, conv)."""
    given = settings.mnist_models.get(name)
    if given is not None:
        return load_entry(name, given, settings)
    config_file = PROJECT_ROOT / "configs" / f"mnist_{name}.yaml"
    if name == "best" or not config_file.is_file():
        return ModelEntry(name, skipped=f"no --mnist-{name} checkpoint given")
    if not settings.train:
        return ModelEntry(name, skipped=f"no --mnist-{name} given and training disabled (--no-train)")
    checkpoint, epochs = train_mnist(config_file, settings)
    default_epochs = load_config(config_file).train.epochs
    origin = f"trained by this script from configs/{config_file.name} for {epochs} epochs (the config says {default_epochs})"
    return load_entry(name, str(checkpoint), settings, origin)


def require_size(entry: ModelEntry, side: int | None) -> ModelEntry:
    """Skip a fixed-size (dense) model that cannot take side x side images (None: any size)."""
    size = getattr(entry.denoiser.model, "fixed_size", None) if entry.denoiser else None
    if size is not None and size != side:
        where = f"{side}x{side} images" if side else "images of any size"
        return ModelEntry(entry.name, skipped=f"{entry.info['checkpoint']} takes only {size}x{size} images, not {where}")
    return entry


def cxr_entry(name: str, settings: Settings) -> ModelEntry:
    """A radiograph model from its --cxr-NAME option (unet defaults to the shipped model)."""
    path = settings.cxr_models.get(name)
    if path is None and name == "unet":
        return ModelEntry(name, skipped=f"no --cxr-unet given and the shipped model {SHIPPED_MODEL.relative_to(PROJECT_ROOT)} is absent")
    if path is None:
        return ModelEntry(name, skipped=f"no checkpoint given (--cxr-{name} RUN)")
    return load_entry(name, path, settings, "shipped model" if path == str(SHIPPED_MODEL) else "given on the command line")


# --------------------------------------------------------------------------- quality


def model_methods(entries: list[ModelEntry]) -> list[Method]:
    return [model_method(e.name, e.denoiser) for e in entries if e.denoiser is not None]


def run_table(
    images: list[ScanImage], noise: NoiseModel, methods: list[Method], bm3d_images: int, folder: Path,
    seed: int,
) -> list[dict[str, Any]]:
    """Evaluate methods (BM3D on the first `bm3d_images` only) on the same seeded noise; all rows."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.csv").unlink(missing_ok=True)  # a benchmark never reuses old rows
    rows = evaluate(images, noise, seed, methods, folder, n_examples=0, progress=False).rows
    if bm3d_images > 0:
        rows = evaluate(images[:bm3d_images], noise, seed, [baseline_method("bm3d")], folder, 0, False).rows
    return rows


def summarize_table(rows: list[dict[str, Any]], reference: str | None = None) -> dict[str, Any]:
    """summarize_methods plus megapixels/s per method from the evaluation timings."""
    summary = report.summarize_methods(rows, reference_method=reference)
    rank = {name: i for i, name in enumerate(ROW_ORDER)}
    summary["methods"] = dict(sorted(summary["methods"].items(), key=lambda kv: rank.get(kv[0], len(rank))))
    for name, entry in summary["methods"].items():
        mine = [r for r in rows if r["method"] == name]
        seconds = sum(float(r["seconds"]) for r in mine)
        megapixels = sum(float(r.get("megapixels") or 0.0) for r in mine)
        entry["megapixels_per_second"] = megapixels / seconds if seconds > 0 else math.nan
    return summary


def subset_summary(rows: list[dict[str, Any]], method: str, reference: str | None = None) -> dict[str, Any] | None:
    """The summary over the images `method` has (e.g. BM3D's subset), or None when it has none."""
    images = {r["image"] for r in rows if r["method"] == method}
    if not images:
        return None
    return summarize_table([r for r in rows if r["image"] in images], reference)


def mnist_test_images(settings: Settings) -> tuple[list[ScanImage], str]:
    """The first N MNIST test images: official t10k when present, else the bundled split."""
    from pipeline.ingest import load_splits

    cfg = load_config(PROJECT_ROOT / "configs" / "mnist_conv.yaml").data
    cfg.root = settings.mnist_root
    cfg.max_test = settings.mnist_images
    splits = load_splits(cfg, settings.seed)
    return splits.test, splits.description


def quality_mnist(settings: Settings) -> dict[str, Any]:
    """MNIST at noise 0.5: noisy, TV, NLM, BM3D, dense (tutorial), conv, best."""
    images, description = mnist_test_images(settings)
    noise_cfg = load_config(PROJECT_ROOT / "configs" / "mnist_conv.yaml").noise
    entries = [require_size(mnist_entry(name, settings), images[0].pixels.shape[0]) for name in ("dense", "conv", "best")]
    methods = [noisy_input_method(), baseline_method("tv"), baseline_method("nlm"), *model_methods(entries)]
    n_bm3d = min(settings.mnist_bm3d_images, len(images)) if settings.bm3d else 0
    log(f"MNIST: {len(images)} images ({n_bm3d} for BM3D), methods {[m.name for m in methods]}")
    rows = run_table(images, make_noise(noise_cfg), methods, n_bm3d, settings.work / "mnist", settings.seed)
    skipped = {e.name: e.skipped for e in entries if e.skipped}
    if not settings.bm3d:
        skipped["bm3d"] = "left out (--skip-bm3d)"
    return {
        "provenance": provenance(settings),
        "data": description,
        "test_set": "official t10k" if "t10k" in description else "bundled split (no t10k files found)",
        "n_images": len(images), "n_bm3d_images": n_bm3d,
        "noise": noise_cfg.model_dump(mode="json"),
        "models": {e.name: e.info for e in entries if e.denoiser is not None},
        "skipped": skipped,
        "summary": summarize_table(rows),
        "bm3d_subset": subset_summary(rows, "bm3d") if 0 < n_bm3d < len(images) else None,
        "metrics_csv": str(settings.work / "mnist" / "metrics.csv"),
    }


def center_crop(image: ScanImage, size: int | None) -> ScanImage:
    """The central size x size region (a smaller side is kept whole)."""
    if size is None:
        return image
    return replace(image, pixels=np.ascontiguousarray(crop_pixels(image.pixels, size)))


def cxr_test_images(settings: Settings) -> tuple[list[ScanImage], list[str]]:
    """The radiograph test images (uncropped) and the reasons of files that failed to load."""
    from pipeline.ingest.folder import load_folder

    images: list[ScanImage] = []
    failures: list[str] = []
    for folder in settings.cxr_dirs:
        if not folder.is_dir():
            failures.append(f"{folder}: folder absent")
            continue
        found, failed = load_folder(folder)
        images += found
        failures += [f.reason for f in failed]
    return images[: settings.cxr_images] if settings.cxr_images else images, failures


def cxr_noise_conditions() -> dict[str, tuple[str, NoiseConfig]]:
    """Gaussian sigma 15/25/50 of 255 (clipped) and Poisson-Gaussian at dose 0.25 and 0.05."""
    conditions = {
        f"gaussian_{s}": (f"Gaussian σ={s}/255", NoiseConfig(kind="gaussian", sigma=s / 255, clip=True))
        for s in (15, 25, 50)
    }
    for dose in (0.25, 0.05):
        conditions[f"poisson_gaussian_dose_{dose}"] = (
            f"Poisson-Gaussian 10⁴ photons, dose {dose}, read noise 10",
            NoiseConfig(kind="poisson_gaussian", photons=1e4, dose=dose, read_noise=10.0, clip=True),
        )
    return conditions


def classical_methods() -> list[Method]:
    """NLM and TV (BM3D runs separately so it can take a subset)."""
    return [baseline_method("nlm"), baseline_method("tv")]


def run_conditions(
    images: list[ScanImage], methods: list[Method], settings: Settings, folder: Path,
) -> dict[str, Any]:
    """Every noise condition: rows, then a summary against BM3D (when it ran)."""
    reference = "bm3d" if settings.bm3d else None
    out: dict[str, Any] = {}
    for key, (label, noise_cfg) in cxr_noise_conditions().items():
        log(f"{folder.name}: {label}, {len(images)} images, methods {[m.name for m in methods]}{' + bm3d' if reference else ''}")
        rows = run_table(images, make_noise(noise_cfg), methods, len(images) if reference else 0, folder / key, settings.seed)
        out[key] = {"label": label, "noise": noise_cfg.model_dump(mode="json"), "summary": summarize_table(rows, reference)}
    return out


def describe_images(images: list[ScanImage]) -> list[dict[str, Any]]:
    return [{"image": img.meta.name, "folder": img.meta.source.parent.name if img.meta.source else None,
             "shape": list(img.pixels.shape)} for img in images]


def quality_cxr(settings: Settings, images: list[ScanImage], failures: list[str]) -> dict[str, Any]:
    """Radiographs (center crops): noisy, BM3D, NLM, TV and the conv/unet/dncnn checkpoints."""
    cropped = [center_crop(img, settings.cxr_crop) for img in images]
    entries = [require_size(cxr_entry(name, settings), None) for name in CXR_NETWORKS]
    methods = [noisy_input_method(), *classical_methods(), *model_methods(entries)]
    skipped = {e.name: e.skipped for e in entries if e.skipped}
    if not settings.bm3d:
        skipped["bm3d"] = "left out (--skip-bm3d)"
    return {
        "provenance": provenance(settings),
        "data": f"{len(cropped)} radiographs from {', '.join(d.name for d in settings.cxr_dirs)}",
        "training_note": CXR_TRAIN_NOTE,
        "crop": settings.cxr_crop, "images": describe_images(cropped), "load_failures": failures,
        "baseline_sigma": BASELINE_SIGMA,
        "models": {e.name: e.info for e in entries if e.denoiser is not None},
        "skipped": skipped,
        "conditions": run_conditions(cropped, methods, settings, settings.work / "cxr"),
    }


def lowres_entry(name: str, settings: Settings) -> ModelEntry:
    """A 64-px model; a dense one must take exactly 64x64 images."""
    return require_size(cxr_entry(name, settings), LOWRES_SIZE)


def seen_patients(entries: list[ModelEntry]) -> set[str]:
    """NIH patient ids in the low-res training/validation folders and the models' data roots."""
    roots = [LOWRES_DIR / "train", LOWRES_DIR / "valid"]
    roots += [Path(e.info["train_data"]) for e in entries if e.info.get("train_data")]
    patients: set[str] = set()
    for root in roots:
        if root.is_dir():
            patients |= {m.group(1) for f in root.rglob("*.png") if (m := NIH_PATIENT.match(f.name))}
    return patients


def unseen_images(images: list[ScanImage], patients: set[str]) -> tuple[list[ScanImage], list[str]]:
    """Images of patients the low-res models never saw, and the names of those left out."""
    keep, dropped = [], []
    for img in images:
        match = NIH_PATIENT.match(img.meta.name)
        (dropped if match and match.group(1) in patients else keep).append(img)
    return keep, [img.meta.name for img in dropped]


def quality_cxr_lowres(settings: Settings, images: list[ScanImage]) -> dict[str, Any]:
    """The 64-px models on the test images downscaled to 64x64, with the baselines at 64x64.

    Test images of patients in the low-res training/validation set are left out (the NIH
    test radiographs 00000001, 00000002 and 00000013 are in nih1000_64px/train).
    """
    from pipeline.ingest.folder import resize_image

    entries = [lowres_entry(name, settings) for name in LOWRES_NETWORKS]
    skipped = {e.name: e.skipped for e in entries if e.skipped}
    if all(e.denoiser is None for e in entries):
        return {"provenance": provenance(settings), "skipped": skipped, "conditions": {},
                "note": "no 64-px model given (--cxr-dense64 / --cxr-conv64): section not run"}
    kept, dropped = unseen_images(images, seen_patients(entries))
    if not kept:
        return {"provenance": provenance(settings), "skipped": skipped, "conditions": {},
                "note": f"every test image's patient is in the low-res training data ({dropped})"}
    small = [resize_image(img, LOWRES_SIZE) for img in kept]
    methods = [noisy_input_method(), *classical_methods(), *model_methods(entries)]
    return {
        "provenance": provenance(settings),
        "data": f"{len(small)} of the radiographs, whole images downscaled to {LOWRES_SIZE}x{LOWRES_SIZE} (bilinear)",
        "excluded_seen_patients": dropped, "baseline_sigma": BASELINE_SIGMA,
        "training_note": f"left out, patient in the low-res training data: {', '.join(dropped) or 'none'}",
        "models": {e.name: e.info for e in entries if e.denoiser is not None},
        "skipped": skipped,
        "conditions": run_conditions(small, methods, settings, settings.work / f"cxr{LOWRES_SIZE}"),
    }


def run_quality(settings: Settings) -> dict[str, Any]:
    """All quality tables."""
    images, failures = cxr_test_images(settings)
    quality: dict[str, Any] = {"mnist": quality_mnist(settings)}
    if images:
        quality["cxr"] = quality_cxr(settings, images, failures)
        quality["cxr_lowres"] = quality_cxr_lowres(settings, images)
    else:
        quality["cxr"] = {"provenance": provenance(settings), "skipped": {"all": f"no radiographs found in {settings.cxr_dirs}: {failures}"}, "conditions": {}}
    return quality


# --------------------------------------------------------------------------- speed: tools


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CPU = torch.device("cpu")


def time_call(fn: Callable[[], Any], repeats: int, slow_seconds: float, device: torch.device = CPU) -> dict[str, Any]:
    """Median seconds of `repeats` runs after one warm-up (a slow warm-up counts as a run)."""

    def once() -> float:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - t0

    warm = once()
    runs = [warm] if warm > slow_seconds else []
    while len(runs) < max(repeats, 1):
        runs.append(once())
    return {"median_s": statistics.median(runs), "runs_s": runs, "warmup_s": warm, "warmup_counted": warm > slow_seconds}


def count_macs(model: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass, counted by hooks on Conv2d/ConvTranspose2d/Linear."""
    total = 0

    def conv_hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        kernel = module.kernel_size[0] * module.kernel_size[1]
        if isinstance(module, nn.ConvTranspose2d):
            total += inputs[0].numel() * (module.out_channels // module.groups) * kernel
        else:
            total += output.numel() * (module.in_channels // module.groups) * kernel

    def linear_hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += output.numel() * module.in_features

    handles = []
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return total


def macs_per_pixel(model: nn.Module, side: int) -> float:
    """MACs per output pixel on a side x side image (the fixed size for dense models)."""
    side = getattr(model, "fixed_size", None) or side
    device = next(model.parameters()).device
    return count_macs(model, torch.zeros(1, 1, side, side, device=device)) / side**2


def matmul_peak(n: int, device: torch.device, repeats: int) -> dict[str, Any]:
    """Float32 n x n matmul throughput, GFLOP/s = 2 n^3 / t (the machine's practical peak)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    timing = time_call(lambda: torch.mm(a, b), max(repeats, 5), math.inf, device)
    return {"n": n, "gflops": 2 * n**3 / timing["median_s"] / 1e9, **timing}


@lru_cache(maxsize=8)
def speed_image(side: int, seed: int) -> tuple[np.ndarray, float]:
    """A noisy (sigma 25/255) radiograph resized to side x side (synthetic without the data)."""
    from pipeline.ingest.folder import load_folder, resize_image
    from pipeline.noise import GaussianNoise

    sigma = 25 / 255
    folder = CXR_TEST_DIRS[0]
    found = load_folder(folder, limit=1)[0] if folder.is_dir() else []
    if found:
        clean = resize_image(found[0], side).pixels
    else:
        y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
        clean = (0.3 + 0.4 * np.exp(-((x - 0.5) ** 2 + (y - 0.45) ** 2) / 0.08)).astype(np.float32)
    return GaussianNoise(sigma)(clean, noise_rng(seed, "test", 0, 0)), sigma


# --------------------------------------------------------------------------- speed: figures


@dataclass
class Network:
    """A network timed for speed: its module, config and where its weights come from."""

    name: str
    model: nn.Module
    config: ModelConfig
    train: TrainConfig
    weights: str


def speed_network(name: str, path: str | None, fallback: Config) -> Network:
    """The network of a checkpoint, else the architecture of `fallback` (untrained: speed only)."""
    if path is not None and path.lower() != "none":
        try:
            loaded = load_model(path)
            return Network(name, loaded.model, loaded.config.model, loaded.config.train, f"checkpoint {loaded.path}")
        except Exception as err:  # noqa: BLE001 - an unusable checkpoint falls back to the architecture
            log(f"{name}: {err}; timing the default architecture")
    torch.manual_seed(0)
    model = build_model(fallback.model).eval()
    return Network(name, model, fallback.model, fallback.train, "untrained, architecture of its default config (speed does not depend on weights)")


def speed_networks(settings: Settings) -> list[Network]:
    """conv, unet, dncnn (+ 64-px models given) for images; dense and conv MNIST for training."""
    shipped = load_config(PROJECT_ROOT / "configs" / "cxr_shipped.yaml")
    defaults = {
        "conv": Config(model=ModelConfig(name="conv"), train=shipped.train),
        "unet": shipped,
        "dncnn": Config(model=ModelConfig(name="dncnn"), train=shipped.train),
    }
    nets = [speed_network(n, settings.cxr_models.get(n), defaults[n]) for n in CXR_NETWORKS]
    for name in LOWRES_NETWORKS:
        path = settings.cxr_models.get(name)
        if path is not None and path.lower() != "none":
            nets.append(speed_network(name, path, Config(model=ModelConfig(name="conv"), train=shipped.train)))
    for name in ("dense", "conv"):
        cfg = load_config(PROJECT_ROOT / "configs" / f"mnist_{name}.yaml")
        nets.append(speed_network(f"mnist_{name}", settings.mnist_models.get(name), cfg))
    return nets


def image_methods(settings: Settings, nets: list[Network], device: torch.device) -> dict[str, Callable[[np.ndarray, float], np.ndarray]]:
    """Denoisers timed on whole images: the baselines (CPU only) and fully convolutional networks."""
    methods: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {}
    if device.type == "cpu":
        names = (["bm3d"] if settings.bm3d else []) + ["nlm", "tv"]
        methods.update({name: baseline_method(name).fn for name in names})
    for net in nets:
        if getattr(net.model, "fixed_size", None) is None and not net.name.startswith("mnist_"):
            denoiser = ModelDenoiser(net.model, device, settings.tile_size)
            methods[net.name] = lambda noisy, sigma, d=denoiser: d(noisy)
    return methods


def time_method(name: str, fn: Callable[[np.ndarray, float], np.ndarray], side: int, settings: Settings, device: torch.device) -> dict[str, Any]:
    """Megapixels/s of one method at one size (or why it was not measured)."""
    if name == "bm3d" and side > settings.bm3d_max_size:
        return {"skipped": f"not measured: BM3D above {settings.bm3d_max_size}² (~35 s/MP; --bm3d-max-size {side} measures it)"}
    noisy, sigma = speed_image(side, settings.seed)
    timing = time_call(lambda: fn(noisy, sigma), settings.repeats, settings.slow_seconds, device)
    return {**timing, "megapixels_per_second": side * side / 1e6 / timing["median_s"]}


def add_ratios(table: dict[str, dict[str, Any]]) -> None:
    """Ratio of each method's MP/s to BM3D's at the same size (else BM3D's largest measured size)."""
    bm3d = {s: v["megapixels_per_second"] for s, v in table.get("bm3d", {}).items() if "megapixels_per_second" in v}
    if not bm3d:
        return
    largest = max(bm3d, key=int)
    for by_size in table.values():
        for size, figure in by_size.items():
            if "megapixels_per_second" not in figure:
                continue
            basis = size if size in bm3d else largest
            figure["ratio_to_bm3d"] = figure["megapixels_per_second"] / bm3d[basis]
            figure["ratio_basis"] = f"bm3d at {basis}²" + ("" if basis == size else " (not measured at this size)")


def image_speed(settings: Settings, nets: list[Network], device: torch.device) -> dict[str, Any]:
    """MP/s of every method at every size on one device."""
    table: dict[str, dict[str, Any]] = {}
    for name, fn in image_methods(settings, nets, device).items():
        for side in settings.sizes:
            log(f"speed {device.type}: {name} at {side}²")
            table.setdefault(name, {})[str(side)] = time_method(name, fn, side, settings, device)
    add_ratios(table)
    return table


def batch_speed(net: Network, side: int, settings: Settings, device: torch.device) -> dict[str, Any]:
    """MP/s and images/s of a network on batches of 256 small images (MNIST, dense models)."""
    batch = torch.rand(256, 1, side, side, device=device)
    model = net.model.to(device).eval()

    def step() -> None:
        with torch.inference_mode():
            model(batch)

    timing = time_call(step, settings.repeats, settings.slow_seconds, device)
    return {**timing, "size": side, "batch": 256, "images_per_second": 256 / timing["median_s"],
            "megapixels_per_second": 256 * side * side / 1e6 / timing["median_s"]}


def training_speed(net: Network, settings: Settings, device: torch.device) -> dict[str, Any]:
    """Samples/s of training steps (forward, loss, backward, optimizer) on random data.

    Image networks: ``--train-patch`` patches, ``--train-batch`` per step; MNIST networks:
    28x28 images with their config's batch size. Data loading and noise are not included.
    """
    from pipeline.train import make_loss, make_optimizer

    mnist = net.name.startswith("mnist_")
    side = 28 if mnist else settings.train_patch
    side = getattr(net.model, "fixed_size", None) or side
    batch = net.train.batch_size if mnist else settings.train_batch
    torch.manual_seed(0)
    model = build_model(net.config).to(device).train()
    optimizer = make_optimizer(model.parameters(), net.train)
    loss_fn = make_loss(net.train.loss)
    x, y = torch.rand(batch, 1, side, side, device=device), torch.rand(batch, 1, side, side, device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    timing = time_call(step, settings.repeats, settings.slow_seconds, device)
    unit = "images" if mnist else "patches"
    return {**timing, "unit": f"{unit}/s", "sample": f"{side}x{side}", "batch": batch, "loss": net.train.loss,
            "optimizer": net.train.optimizer, "samples_per_second": batch / timing["median_s"]}


def compute_rate(macs_per_px: float, megapixels_per_second: float, peak_gflops: float) -> dict[str, float]:
    """GFLOP/s = 2 * MACs/pixel * pixels/s, and its fraction of the matmul peak."""
    gflops = 2 * macs_per_px * megapixels_per_second * 1e6 / 1e9
    return {"gflops": gflops, "fraction_of_peak": gflops / peak_gflops}


def network_table(nets: list[Network], images: dict[str, Any], peak: float, settings: Settings, device: torch.device) -> dict[str, Any]:
    """Per network: parameters, MACs/pixel, and GFLOP/s and fraction of the matmul peak per size."""
    table: dict[str, Any] = {}
    for net in nets:
        model = net.model.to(device).eval()
        macs = macs_per_pixel(model, 64 if model.fixed_size is None else model.fixed_size)
        entry: dict[str, Any] = {"parameters": count_parameters(model), "macs_per_pixel": macs,
                                 "architecture": net.config.model_dump(mode="json"), "weights": net.weights}
        entry["compute"] = {size: compute_rate(macs, f["megapixels_per_second"], peak)
                            for size, f in images.get(net.name, {}).items() if "megapixels_per_second" in f}
        small = model.fixed_size or (28 if net.name.startswith("mnist_") else None)
        if small is not None:
            batch = batch_speed(net, small, settings, device)
            entry["batch_inference"] = {**batch, **compute_rate(macs, batch["megapixels_per_second"], peak)}
        log(f"training speed {device.type}: {net.name}")
        entry["training"] = training_speed(net, settings, device)
        table[net.name] = entry
    return table


def device_speed(settings: Settings, nets: list[Network], device: torch.device) -> dict[str, Any]:
    """All speed figures on one device."""
    log(f"speed {device.type}: matmul peak")
    peak = matmul_peak(settings.matmul_n, device, settings.repeats)
    images = image_speed(settings, nets, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    precision = {"float32_matmul_precision": torch.get_float32_matmul_precision()}
    if device.type == "cuda":
        precision |= {"tf32_matmul": torch.backends.cuda.matmul.allow_tf32, "tf32_cudnn": torch.backends.cudnn.allow_tf32}
    return {
        "device": name, "torch_threads": torch.get_num_threads(), "precision": precision, "matmul_peak": peak,
        "images": images, "networks": network_table(nets, images, peak["gflops"], settings, device),
        "input": "a NIH radiograph resized to each size, Gaussian noise σ=25/255 (BM3D/TV get the true σ)",
    }


def run_bench_apply(cmd: list[str], out: Path) -> dict[str, Any]:
    """Run scripts/bench_apply.py once; its JSON, or why there is none."""
    log(f"apply memory: {shlex.join(cmd)}")
    done = subprocess.run(cmd, check=False, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        return {"command": shlex.join(cmd), "skipped": f"bench_apply.py failed (exit {done.returncode}): {done.stderr.strip()[-500:]}"}
    return {"command": shlex.join(cmd), "result": json.loads(out.read_text())}


def apply_memory(settings: Settings) -> dict[str, Any]:
    """Peak memory and throughput of `denoise apply` on a 4096² 16-bit PNG (1024² in --quick).

    Runs scripts/bench_apply.py on the CPU (and on the GPU when there is one) with the unet
    checkpoint of this benchmark, or an untrained unet when there is none.
    """
    if not settings.apply_bench:
        return {"skipped": "not run (--no-apply-bench)"}
    if not BENCH_APPLY.is_file():
        return {"skipped": f"{BENCH_APPLY.relative_to(PROJECT_ROOT)} is not there (hook: benchmark.apply_memory)"}
    unet = settings.cxr_models.get("unet")
    model = ["--model", unet] if unet is not None and unet.lower() != "none" else ["--untrained", "unet"]
    size = APPLY_SIZE_QUICK if settings.quick else APPLY_SIZE
    devices = ["cpu"] + (["cuda"] if settings.device != "cpu" and torch.cuda.is_available() else [])
    runs = {}
    for device in devices:
        out = settings.work / f"bench_apply_{device}.json"
        cmd = [sys.executable, str(BENCH_APPLY), *model, "--size", str(size), "--device", device, "--out", str(out)]
        runs[device] = run_bench_apply(cmd, out)
    return {"size": size, "runs": runs}


def run_speed(settings: Settings) -> dict[str, Any]:
    """CPU figures always, GPU figures when torch sees one (and --device is not cpu)."""
    nets = speed_networks(settings)
    speed: dict[str, Any] = {"provenance": provenance(settings), "devices": {"cpu": device_speed(settings, nets, CPU)}}
    if settings.device != "cpu" and torch.cuda.is_available():
        speed["devices"]["cuda"] = device_speed(settings, nets, torch.device("cuda"))
    else:
        speed["gpu"] = "no GPU visible to torch on this machine: CPU figures only"
    speed["apply_memory"] = apply_memory(settings)
    return speed


# --------------------------------------------------------------------------- headline


def best_cxr_model(condition: dict[str, Any]) -> str | None:
    """The network with the highest mean PSNR in one radiograph condition."""
    methods = condition["summary"]["methods"]
    candidates = [m for m in CXR_NETWORKS if m in methods]
    return max(candidates, key=lambda m: methods[m]["psnr"]["mean"]) if candidates else None


def speed_ratio(speed: dict[str, Any] | None, model: str) -> dict[str, Any] | None:
    """The model's CPU MP/s over BM3D's, at the largest size where BM3D was measured."""
    if not speed:
        return None
    table = speed["devices"]["cpu"]["images"]
    bm3d = {int(s): f for s, f in table.get("bm3d", {}).items() if "megapixels_per_second" in f}
    mine = table.get(model, {})
    common = [s for s in bm3d if "megapixels_per_second" in mine.get(str(s), {})]
    if not common:
        return None
    side = max(common)
    mp_model, mp_bm3d = mine[str(side)]["megapixels_per_second"], bm3d[side]["megapixels_per_second"]
    return {"size": side, "model_mp_per_s": mp_model, "bm3d_mp_per_s": mp_bm3d, "ratio": mp_model / mp_bm3d}


def headline(results: dict[str, Any]) -> dict[str, Any]:
    """Best radiograph model vs BM3D at sigma 25 (PSNR gain, speed ratio)."""
    cxr = results.get("quality", {}).get("cxr", {})
    condition = cxr.get("conditions", {}).get(HEADLINE_CONDITION)
    if not condition:
        return {"note": "no radiograph quality results (run --only quality)"}
    model = best_cxr_model(condition)
    if model is None:
        return {"note": "no radiograph model was available: " + "; ".join(f"{k}: {v}" for k, v in cxr.get("skipped", {}).items())}
    entry = condition["summary"]["methods"][model]
    out: dict[str, Any] = {"condition": condition["label"], "best_model": model, "psnr": entry["psnr"], "ssim": entry["ssim"]}
    if "bm3d" in condition["summary"]["methods"]:
        out["bm3d_psnr"] = condition["summary"]["methods"]["bm3d"]["psnr"]
        out["psnr_gain_vs_bm3d"] = entry["vs_reference"]["psnr"]
        out["ssim_gain_vs_bm3d"] = entry["vs_reference"]["ssim"]
    out["speed_vs_bm3d"] = speed_ratio(results.get("speed"), model)
    return out


# --------------------------------------------------------------------------- markdown


def md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table followed by an empty line."""
    return [*report.markdown_table((header, rows)), ""]


def fmt(x: Any, digits: int = 2, signed: bool = False) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def fmt_ci(stat: dict[str, Any] | None, digits: int = 2, signed: bool = False) -> str:
    if not stat:
        return "–"
    text = fmt(stat.get("mean"), digits, signed)
    if stat.get("ci_low") is None or not math.isfinite(float(stat["ci_low"])):
        return text
    return f"{text} [{fmt(stat['ci_low'], digits, signed)}, {fmt(stat['ci_high'], digits, signed)}]"


def provenance_line(p: dict[str, Any]) -> str:
    m = p["machine"]
    gpu = f", GPU {m['gpu']}" if m.get("gpu") else ""
    quick = " **(quick mode: smoke-test sizes, not results)**" if p.get("quick") else ""
    return (f"*Measured {p['date']} at commit `{p['git_commit']}` with `{p['command']}` on {m['cpu_model']}, "
            f"{m['cpu_cores']} cores, {m['torch_threads']} torch threads{gpu}.*{quick}")


def summary_rows(summary: dict[str, Any], skipped: dict[str, str], notes: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    """Method table (report.summary_table) plus a row per skipped method and a note column."""
    header, rows = report.summary_table(summary)
    header = [*header, "MP/s", "note"]
    methods = list(summary["methods"].values())
    rows = [[*r, fmt(m.get("megapixels_per_second"), 3), notes.get(r[0], "")] for r, m in zip(rows, methods)]
    rows += [[name, "0", *["–"] * (len(header) - 3), f"skipped: {reason}"] for name, reason in skipped.items()]
    return header, rows


def mnist_notes(mnist: dict[str, Any]) -> dict[str, str]:
    notes = {name: f"{info.get('origin', '')}; best checkpoint at epoch {info.get('checkpoint_epoch')}" for name, info in mnist["models"].items()}
    if "dense" in notes:
        notes["dense"] = "the tutorial's model: " + notes["dense"]
    if mnist.get("n_bm3d_images"):
        notes["bm3d"] = f"first {mnist['n_bm3d_images']} of the {mnist['n_images']} images, σ given"
    return notes


#: Issue 4's acceptance for the shipped radiograph model: (condition, minimum paired ΔPSNR vs BM3D in dB,
#: whether its SSIM must be higher too), and its CPU speed floor in MP/s.
ACCEPTANCE = (("gaussian_25", 0.5, True), ("poisson_gaussian_dose_0.05", 1.0, False), ("poisson_gaussian_dose_0.25", 1.0, False))
ACCEPTANCE_MP_PER_S = 1.0
ACCEPTANCE_MODEL = "unet"  # the shipped model unless --cxr-unet names another checkpoint


def acceptance(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The shipped model against each acceptance target: what was asked, what was measured, met or not."""
    conditions = results.get("quality", {}).get("cxr", {}).get("conditions", {})
    rows: list[dict[str, Any]] = []
    for key, min_gain, need_ssim in ACCEPTANCE:
        methods = conditions.get(key, {}).get("summary", {}).get("methods", {})
        if ACCEPTANCE_MODEL not in methods or "bm3d" not in methods:
            continue
        mine, bm3d = methods[ACCEPTANCE_MODEL], methods["bm3d"]
        gain = mine["vs_reference"]["psnr"]
        met = gain["mean"] >= min_gain and (not need_ssim or mine["ssim"]["mean"] > bm3d["ssim"]["mean"])
        target = f"ΔPSNR ≥ +{min_gain:.1f} dB" + (" and higher SSIM" if need_ssim else "")
        measured = (f"ΔPSNR {fmt_ci(gain, 2, True)} dB; SSIM {mine['ssim']['mean']:.3f} vs {bm3d['ssim']['mean']:.3f}")
        rows.append({"what": conditions[key]["label"], "target": target, "measured": measured, "met": met})
    speed = results.get("speed", {}).get("devices", {}).get("cpu", {}).get("images", {}).get(ACCEPTANCE_MODEL, {}).get("1024", {})
    if "megapixels_per_second" in speed:
        mp = speed["megapixels_per_second"]
        rows.append({"what": "speed, 1024² on the CPU", "target": f"≥ {ACCEPTANCE_MP_PER_S:g} MP/s",
                     "measured": f"{mp:.2f} MP/s", "met": mp >= ACCEPTANCE_MP_PER_S})
    return rows


def render_acceptance(results: dict[str, Any]) -> list[str]:
    rows = acceptance(results)
    if not rows:
        return []
    origin = results.get("quality", {}).get("cxr", {}).get("models", {}).get(ACCEPTANCE_MODEL, {}).get("origin", "origin not recorded")
    lines = [f"`{ACCEPTANCE_MODEL}` ({origin}) against the acceptance targets (radiograph crops below; BM3D given the noise's std):", ""]
    return lines + md_table(["condition", "target", "measured", "met"],
                            [[r["what"], r["target"], r["measured"], "yes" if r["met"] else "**no**"] for r in rows])


def render_headline(results: dict[str, Any]) -> list[str]:
    h = results.get("headline", {})
    lines = ["## Headline", ""]
    if "best_model" not in h:
        lines += [f"Radiographs: {h.get('note', 'not measured')}", ""]
    else:
        gain = fmt_ci(h.get("psnr_gain_vs_bm3d"), 2, True) if "psnr_gain_vs_bm3d" in h else "– (BM3D not run)"
        lines.append(f"**Radiographs, {h['condition']}: best model `{h['best_model']}` {fmt_ci(h['psnr'])} dB vs BM3D "
                     f"{fmt_ci(h.get('bm3d_psnr'))} dB: ΔPSNR {gain} dB (paired, 95% CI).**")
        s = h.get("speed_vs_bm3d")
        if s:
            lines.append(f"**Speed on CPU at {s['size']}²: {s['model_mp_per_s']:.3f} MP/s vs BM3D {s['bm3d_mp_per_s']:.4f} MP/s "
                         f"= {s['ratio']:.0f}× BM3D's throughput.**")
        else:
            lines.append("Speed ratio: not measured in these results (run --only speed).")
        lines.append("")
    lines += render_acceptance(results)
    mnist = results.get("quality", {}).get("mnist")
    if mnist:
        lines += [f"MNIST, Gaussian noise 0.5 ({mnist['test_set']}, {mnist['n_images']} images):", ""]
        lines += md_table(*summary_rows(mnist["summary"], mnist["skipped"], mnist_notes(mnist)))
    return lines


def render_mnist(mnist: dict[str, Any]) -> list[str]:
    lines = ["## Quality: MNIST details", "", provenance_line(mnist["provenance"]), "",
             f"Data: {mnist['data']}; first {mnist['n_images']} test images. Noise: Gaussian σ=0.5, clipped, seed shared by all methods.", ""]
    for name, info in mnist["models"].items():
        lines.append(f"- `{name}`: {info['origin']}; best checkpoint at epoch {info['checkpoint_epoch']}; trained on {info['train_data']}; {info['parameters']} parameters; `{info['checkpoint']}`")
    if mnist.get("bm3d_subset"):
        lines += ["", f"On BM3D's {mnist['n_bm3d_images']} images only (like-for-like means):", ""]
        lines += md_table(*summary_rows(mnist["bm3d_subset"], {}, {}))
    lines.append(f"Per-image rows: `{mnist['metrics_csv']}`")
    return [*lines, ""]


def render_cxr(cxr: dict[str, Any], title: str) -> list[str]:
    lines = [f"## Quality: {title}", "", provenance_line(cxr["provenance"]), ""]
    if not cxr.get("conditions"):
        return [*lines, cxr.get("note", "not run") + "; " + "; ".join(f"{k}: {v}" for k, v in cxr.get("skipped", {}).items()), ""]
    lines += [f"Data: {cxr['data']}" + (f", center-cropped to {cxr['crop']}²" if cxr.get("crop") else "") + ".",
              f"Note: {cxr.get('training_note', CXR_TRAIN_NOTE)}.", f"Baselines: {cxr.get('baseline_sigma', '')}.", ""]
    for name, info in cxr["models"].items():
        lines.append(f"- `{name}`: {info['origin']}; best checkpoint at epoch {info['checkpoint_epoch']}; trained on {info['train_data']} ({info['train_noise']} noise); `{info['checkpoint']}`")
    lines.append("")
    conditions = cxr["conditions"]
    methods = list(next(iter(conditions.values()))["summary"]["methods"])
    header = ["method", *[c["label"] for c in conditions.values()]]
    rows = [[m, *[f"{fmt(c['summary']['methods'].get(m, {}).get('psnr', {}).get('mean'))} / "
                  f"{fmt(c['summary']['methods'].get(m, {}).get('ssim', {}).get('mean'), 3)}" for c in conditions.values()]]
            for m in methods]
    lines += ["Mean PSNR (dB) / SSIM per noise:", "", *md_table(header, rows)]
    for c in conditions.values():
        lines += [f"### {c['label']}", "", *md_table(*summary_rows(c["summary"], cxr.get("skipped", {}), {}))]
    return lines


def render_speed_device(key: str, dev: dict[str, Any]) -> list[str]:
    lines = [f"### {'CPU' if key == 'cpu' else 'GPU'}: {dev['device']} ({dev['torch_threads']} torch threads)", "",
             f"Input: {dev['input']}. Matmul peak ({dev['matmul_peak']['n']}², float32): {dev['matmul_peak']['gflops']:.1f} GFLOP/s.", ""]
    sizes = sorted({s for by in dev["images"].values() for s in by}, key=int)
    header = ["method", *[f"{s}² MP/s (× BM3D)" for s in sizes], "runs"]
    rows = []
    for name, by in dev["images"].items():
        cells = []
        for s in sizes:
            f = by.get(s, {})
            if "megapixels_per_second" in f:
                ratio = f" (×{f['ratio_to_bm3d']:.1f}{'*' if 'not measured' in f.get('ratio_basis', '') else ''})" if "ratio_to_bm3d" in f else ""
                cells.append(f"{f['megapixels_per_second']:.4g}{ratio}")
            else:
                cells.append("skipped" if "skipped" in f else "–")
        runs = max((len(f.get("runs_s", [])) for f in by.values()), default=0)
        rows.append([name, *cells, f"median of {runs}"])
    lines += md_table(header, rows)
    lines += ["\\* ratio to BM3D at its largest measured size (BM3D not measured at this size).",
              "BM3D above the --bm3d-max-size is skipped, not estimated.", ""]
    header = ["network", "params", "MACs/pixel", *[f"GFLOP/s {s}² (% peak)" for s in sizes],
              "batch of 256 small images", "training", "weights"]
    rows = []
    for name, n in dev["networks"].items():
        comp = n["compute"]
        cells = [f"{comp[s]['gflops']:.2f} ({100 * comp[s]['fraction_of_peak']:.1f}%)" if s in comp else "–" for s in sizes]
        b = n.get("batch_inference")
        batch = (f"{b['size']}²: {b['images_per_second']:.0f} img/s, {b['gflops']:.2f} GFLOP/s "
                 f"({100 * b['fraction_of_peak']:.1f}%)") if b else "–"
        t = n["training"]
        rows.append([name, str(n["parameters"]), f"{n['macs_per_pixel']:.0f}", *cells, batch,
                     f"{t['samples_per_second']:.1f} {t['unit']} ({t['sample']}, batch {t['batch']})", n["weights"]])
    lines += md_table(header, rows)
    note = ("MNIST and dense networks are timed on batches of 256 images at their own size. A fraction of "
            "the matmul peak above 100% means the network's kernels ran faster than the 2048² matmul did.")
    return [*lines, note, ""]


def render_apply_memory(mem: dict[str, Any]) -> list[str]:
    """Peak resident memory of `denoise apply`, one line per device."""
    lines = [f"### Peak memory of `denoise apply` ({mem.get('size', APPLY_SIZE)}² 16-bit PNG, scripts/bench_apply.py)", ""]
    if "skipped" in mem:
        return [*lines, f"Skipped: {mem['skipped']}", ""]
    for device, run in mem.get("runs", {}).items():
        r = run.get("result")
        if r is None:
            lines.append(f"- {device}: skipped: {run['skipped']}")
            continue
        lines.append(f"- {device}: peak RSS **{r.get('peak_rss_mib')} MiB** (import + model load alone: "
                     f"{r.get('baseline_rss_mib')} MiB), {r.get('megapixels_per_second')} MP/s, model {r.get('model')}, "
                     f"settings {r.get('settings')}; `{run['command']}`")
    return [*lines, ""]


def render_speed(speed: dict[str, Any]) -> list[str]:
    lines = ["## Speed", "", provenance_line(speed["provenance"]), ""]
    if "gpu" in speed:
        lines += [speed["gpu"] + ".", ""]
    for key, dev in speed["devices"].items():
        lines += render_speed_device(key, dev)
    lines += render_apply_memory(speed.get("apply_memory", {}))
    lines += ["", "Training throughput: training steps (forward, loss, backward, optimizer) on random tensors; data loading and noise excluded.",
              "MACs counted with forward hooks on Conv2d/ConvTranspose2d/Linear; GFLOP/s = 2·MACs·pixels/s.", ""]
    return lines


def render_markdown(results: dict[str, Any]) -> str:
    """RESULTS.md: headline (radiographs vs BM3D, MNIST table), then detail tables."""
    lines = ["# Benchmarks", "", "Written by `scripts/benchmark.py`; numbers in `results.json`.", ""]
    lines += render_headline(results)
    quality = results.get("quality", {})
    if "mnist" in quality:
        lines += render_mnist(quality["mnist"])
    if "cxr" in quality:
        lines += render_cxr(quality["cxr"], "radiographs")
    if "cxr_lowres" in quality:
        lines += render_cxr(quality["cxr_lowres"], f"radiographs at {LOWRES_SIZE}×{LOWRES_SIZE} (low-res models)")
    if "speed" in results:
        lines += render_speed(results["speed"])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def load_previous(out: Path) -> dict[str, Any]:
    """An earlier results.json in `out` (for --only), else empty."""
    path = out / "results.json"
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except json.JSONDecodeError:
        return {}


def run_benchmark(settings: Settings) -> dict[str, Any]:
    """Run the asked parts, merge with earlier results for --only, write JSON and markdown."""
    if settings.threads:
        torch.set_num_threads(settings.threads)
    settings.work.mkdir(parents=True, exist_ok=True)
    results = load_previous(settings.out) if len(settings.parts) == 1 else {}
    started = time.perf_counter()
    if "quality" in settings.parts:
        results["quality"] = run_quality(settings)
    if "speed" in settings.parts:
        results["speed"] = run_speed(settings)
    results["headline"] = headline(results)
    results["last_run"] = {**provenance(settings), "parts": list(settings.parts), "seconds": time.perf_counter() - started,
                           "work_dir": str(settings.work)}
    write_json(results, settings.out / "results.json")
    (settings.out / "RESULTS.md").write_text(render_markdown(results))
    return results


def main(argv: list[str] | None = None) -> int:
    settings = settings_from_args(argv)
    results = run_benchmark(settings)
    log(f"done in {results['last_run']['seconds']:.0f} s: {settings.out / 'RESULTS.md'}, {settings.out / 'results.json'} (work: {settings.work})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
