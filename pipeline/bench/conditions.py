"""Test data and noise conditions of the quality tables: MNIST and radiograph test images, crops, noise levels."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import numpy as np

from pipeline.baselines import make_baseline
from pipeline.bench.settings import PROJECT_ROOT, Settings
from pipeline.config import NoiseConfig, load_config
from pipeline.denoiser import Denoiser
from pipeline.image import ScanImage, center_crop
from pipeline.ingest import load_splits
from pipeline.ingest.folder import load_folder

CXR_TRAIN_NOTE = (
    "the shipped unet (pipeline/weights/cxr_default.pt; configs/cxr_shipped.yaml, then "
    "configs/cxr_shipped_refine.yaml) is trained on Hannover radiographs (hannover_mhh_covid), "
    "none of the test images"
)
NIH_PATIENT = re.compile(r"^(\d{8})_\d{3}")
BASELINE_SIGMA = "BM3D and TV get the noise's true std (noise.std(clean)); NLM estimates it"


def mnist_test_images(settings: Settings) -> tuple[list[ScanImage], str]:
    """The first N MNIST test images: official t10k when present, else the bundled split."""
    cfg = load_config(PROJECT_ROOT / "configs" / "mnist_conv.yaml").data
    cfg.root = settings.mnist_root
    cfg.max_test = settings.mnist_images
    splits = load_splits(cfg, settings.seed)
    return splits.test, splits.description


def crop_scan(image: ScanImage, size: int | None) -> ScanImage:
    """The central size x size region (a smaller side is kept whole)."""
    if size is None:
        return image
    return replace(image, pixels=np.ascontiguousarray(center_crop(image.pixels, size)))


def cxr_test_images(settings: Settings) -> tuple[list[ScanImage], list[str]]:
    """The radiograph test images (uncropped) and the reasons of files that failed to load."""
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


def classical_methods() -> list[Denoiser]:
    """NLM and TV (BM3D runs separately so it can take a subset)."""
    return [make_baseline("nlm"), make_baseline("tv")]


def describe_images(images: list[ScanImage]) -> list[dict[str, Any]]:
    return [{"image": img.meta.name, "folder": img.meta.source.parent.name if img.meta.source else None,
             "shape": list(img.pixels.shape)} for img in images]


def unseen_images(images: list[ScanImage], patients: set[str]) -> tuple[list[ScanImage], list[str]]:
    """Images of patients the low-res models never saw, and the names of those left out."""
    keep, dropped = [], []
    for img in images:
        match = NIH_PATIENT.match(img.meta.name)
        (dropped if match and match.group(1) in patients else keep).append(img)
    return keep, [img.meta.name for img in dropped]
