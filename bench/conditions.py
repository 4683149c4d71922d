"""Test data of the quality tables: MNIST and radiograph test images, crops, patients left out."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.settings import CXR_PNG, Settings, from_checkout
from pipeline.baselines import make_baseline
from pipeline.config import load_config
from pipeline.denoiser import Denoiser
from pipeline.errors import PipelineError
from pipeline.image import ScanImage, center_crop
from pipeline.ingest import load_splits
from pipeline.ingest.folder import load_folder, read_files
from pipeline.ingest.split_file import read_split_csv

#: In the checkout: the previous radiograph patient split (its data section), the shipped model's
#: own test set.
SPLIT_CONFIG = Path("configs/cxr_shipped_xray.yaml")
#: In the checkout: the five-source patient split (scripts/make_multisite_split.py) whose test part
#: the tables use.
MULTISITE_SPLIT = Path("configs/splits/multisite.csv")
CXR_TRAIN_NOTE = (
    "the shipped unet (pipeline/weights/cxr_default.pt, configs/cxr_default.yaml) learned from the "
    "training part of the same patient split: no test image's patient is in its training data"
)
NIH_PATIENT = re.compile(r"^(\d{8})_\d{3}")
BASELINE_SIGMA = "BM3D and TV get the noise's true std (noise.std(clean)); NLM estimates it"


def mnist_test_images(settings: Settings) -> tuple[list[ScanImage], str]:
    """The first N MNIST test images: official t10k when present, else the bundled split."""
    cfg = load_config(settings.project / "configs" / "mnist_conv.yaml").data
    cfg.root = settings.mnist_root
    cfg.max_test = settings.mnist_images
    splits = load_splits(cfg, settings.seed)
    return splits.test, splits.description


def crop_scan(image: ScanImage, size: int | None) -> ScanImage:
    """The central size x size region (a smaller side is kept whole)."""
    if size is None:
        return image
    return replace(image, pixels=np.ascontiguousarray(center_crop(image.pixels, size)))


def cxr_test_images(settings: Settings) -> tuple[list[ScanImage], list[str], str]:
    """The radiograph test images (uncropped), the reasons of files that failed to load, and what
    they are.

    Default: the test part of the earlier radiograph patient split (configs/cxr_shipped_xray.yaml);
    with ``--cxr-dirs``, every image of those folders.
    """
    images: list[ScanImage] = []
    failures: list[str] = []
    if not settings.cxr_dirs:
        try:
            images, description = patient_split_test_images(settings.seed, settings.project)
        except PipelineError as err:
            return [], [f"the patient-split test images could not be read: {err}"], "none"
    else:
        for folder in settings.cxr_dirs:
            if not folder.is_dir():
                failures.append(f"{folder}: folder absent")
                continue
            found, failed = load_folder(folder)
            images += found
            failures += [f.reason for f in failed]
        description = "every image of " + ", ".join(d.name for d in settings.cxr_dirs)
    return images[: settings.cxr_images] if settings.cxr_images else images, failures, description


def patient_split_test_images(seed: int, project: Path) -> tuple[list[ScanImage], str]:
    """The test images of the radiograph patient split (paths in the config are relative to the
    checkout `project`)."""
    cfg = load_config(project / SPLIT_CONFIG, ["data.max_clean_noise=null", f"run.seed={seed}"])
    for name in ("root", "test_root"):  # relative to the checkout, so any working folder works
        paths = getattr(cfg.data, name)
        if paths is not None:
            setattr(
                cfg.data,
                name,
                [from_checkout(p, project) for p in paths]
                if isinstance(paths, list)
                else from_checkout(paths, project),
            )
    if cfg.data.groups is not None:
        cfg.data.groups.csv = from_checkout(cfg.data.groups.csv, project)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fo-dicom file has no PatientID and no file meta
        splits = load_splits(cfg.data, cfg.run.seed)
    order = interleaved_by_folder(splits.test)
    return order, (
        f"test part of the patient split of configs/{SPLIT_CONFIG.name} (seed {cfg.run.seed}), "
        "taken in turn from each source folder"
    )


def multisite_test_images(project: Path, shared_data: Path) -> tuple[list[ScanImage], str]:
    """The test part of the five-source patient split, each image's source in
    ``meta.extra['source']``.

    The split CSV is in the checkout `project`, the images under `shared_data`. Taken in turn
    from each source, so any first N (BM3D's subset) mixes the sources.

    Raises
    ------
    PipelineError: the split CSV or one of its test files cannot be read.
    """
    rows = [r for r in read_split_csv(project / MULTISITE_SPLIT) if r["split"] == "test"]
    images: list[ScanImage] = []
    for row in rows:
        found, failed = read_files([shared_data / CXR_PNG / row["file"]])
        if failed:
            raise PipelineError(failed[0].reason)
        images += [
            replace(img, meta=replace(img.meta, extra={**img.meta.extra, "source": row["source"]}))
            for img in found
        ]
    patients = len({r["patient"] for r in rows})
    sources = sorted({r["source"] for r in rows})
    return interleaved_by_folder(images), (
        f"test part of the five-source patient split {MULTISITE_SPLIT} "
        f"({patients} patients from {', '.join(sources)}), taken in turn from each source"
    )


def interleaved_by_folder(images: list[ScanImage]) -> list[ScanImage]:
    """Images taken in turn from each source (``meta.extra['source']``, else folder), so any first N
    mixes the sources."""
    by_folder: dict[str, list[ScanImage]] = {}
    for img in images:
        key = (img.meta.extra or {}).get("source") or str(
            img.meta.source.parent if img.meta.source else ""
        )
        by_folder.setdefault(key, []).append(img)
    queues = list(by_folder.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def classical_methods() -> list[Denoiser]:
    """NLM and TV (BM3D runs separately so it can take a subset)."""
    return [make_baseline("nlm"), make_baseline("tv")]


def describe_images(images: list[ScanImage]) -> list[dict[str, Any]]:
    return [
        {
            "image": img.meta.name,
            "folder": img.meta.source.parent.name if img.meta.source else None,
            "shape": list(img.pixels.shape),
        }
        for img in images
    ]


def nih_patients(roots: list[Path]) -> set[str]:
    """NIH patient ids of the PNG files under those of `roots` that exist."""
    return {
        m.group(1)
        for root in roots
        if root.is_dir()
        for f in root.rglob("*.png")
        if (m := NIH_PATIENT.match(f.name))
    }


def unseen_images(images: list[ScanImage], patients: set[str]) -> tuple[list[ScanImage], list[str]]:
    """Images of patients the low-res models never saw, and the names of those left out."""
    keep, dropped = [], []
    for img in images:
        match = NIH_PATIENT.match(img.meta.name)
        (dropped if match and match.group(1) in patients else keep).append(img)
    return keep, [img.meta.name for img in dropped]
