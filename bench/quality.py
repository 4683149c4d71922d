"""Quality tables: every method on the same images and seeded noise (MNIST, radiograph crops, 64-px
radiographs)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.conditions import (
    BASELINE_SIGMA,
    CXR_TRAIN_NOTE,
    classical_methods,
    crop_scan,
    cxr_test_images,
    describe_images,
    mnist_test_images,
    unseen_images,
)
from bench.models import (
    ModelEntry,
    cxr_entry,
    lowres_entry,
    mnist_entry,
    require_size,
    seen_patients,
)
from bench.noise_conditions import QUALITY, noise_conditions
from bench.provenance import log, provenance
from bench.settings import (
    CXR_NETWORKS,
    LOWRES_NETWORKS,
    LOWRES_SIZE,
    ROW_ORDER,
    Settings,
)
from pipeline import report
from pipeline.baselines import make_baseline
from pipeline.config import load_config
from pipeline.denoiser import Denoiser, NoisyInput, Renamed
from pipeline.evaluate import evaluate
from pipeline.image import ScanImage
from pipeline.ingest.folder import resize_image
from pipeline.noise import NoiseModel, make_noise


def model_methods(entries: list[ModelEntry]) -> list[Denoiser]:
    return [Renamed(e.denoiser, e.name) for e in entries if e.denoiser is not None]


def run_table(
    images: list[ScanImage],
    noise: NoiseModel,
    methods: list[Denoiser],
    bm3d_images: int,
    folder: Path,
    seed: int,
) -> list[dict[str, Any]]:
    """Evaluate methods (BM3D on the first `bm3d_images` only) on the same seeded noise; all
    rows."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.csv").unlink(missing_ok=True)  # a benchmark never reuses old rows
    rows = evaluate(images, noise, seed, methods, folder, n_examples=0, progress=False).rows
    if bm3d_images > 0:
        rows = evaluate(
            images[:bm3d_images], noise, seed, [make_baseline("bm3d")], folder, 0, False
        ).rows
    return rows


def summarize_table(rows: list[dict[str, Any]], reference: str | None = None) -> dict[str, Any]:
    """summarize_methods plus megapixels/s per method from the evaluation timings."""
    summary = report.summarize_methods(rows, reference_method=reference)
    rank = {name: i for i, name in enumerate(ROW_ORDER)}
    summary["methods"] = dict(
        sorted(summary["methods"].items(), key=lambda kv: rank.get(kv[0], len(rank)))
    )
    for name, entry in summary["methods"].items():
        mine = [r for r in rows if r["method"] == name]
        seconds = sum(float(r["seconds"]) for r in mine)
        megapixels = sum(float(r.get("megapixels") or 0.0) for r in mine)
        entry["megapixels_per_second"] = megapixels / seconds if seconds > 0 else math.nan
    return summary


def subset_summary(
    rows: list[dict[str, Any]], method: str, reference: str | None = None
) -> dict[str, Any] | None:
    """The summary over the images `method` has (e.g. BM3D's subset), or None when it has none."""
    images = {r["image"] for r in rows if r["method"] == method}
    if not images:
        return None
    return summarize_table([r for r in rows if r["image"] in images], reference)


def quality_mnist(settings: Settings) -> dict[str, Any]:
    """MNIST at noise 0.5: noisy, TV, NLM, BM3D, dense (tutorial), conv, best."""
    images, description = mnist_test_images(settings)
    noise_cfg = load_config(settings.project / "configs" / "mnist_conv.yaml").noise
    entries = [
        require_size(mnist_entry(name, settings), images[0].pixels.shape[0])
        for name in ("dense", "conv", "best")
    ]
    methods = [NoisyInput(), make_baseline("tv"), make_baseline("nlm"), *model_methods(entries)]
    n_bm3d = min(settings.mnist_bm3d_images, len(images)) if settings.bm3d else 0
    log(f"MNIST: {len(images)} images ({n_bm3d} for BM3D), methods {[m.name for m in methods]}")
    rows = run_table(
        images, make_noise(noise_cfg), methods, n_bm3d, settings.work / "mnist", settings.seed
    )
    skipped = {e.name: e.skipped for e in entries if e.skipped}
    if not settings.bm3d:
        skipped["bm3d"] = "left out (--skip-bm3d)"
    return {
        "provenance": provenance(settings),
        "data": description,
        "test_set": "official t10k"
        if "t10k" in description
        else "bundled split (no t10k files found)",
        "n_images": len(images),
        "n_bm3d_images": n_bm3d,
        "noise": noise_cfg.model_dump(mode="json"),
        "models": {e.name: e.info for e in entries if e.denoiser is not None},
        "skipped": skipped,
        "summary": summarize_table(rows),
        "bm3d_subset": subset_summary(rows, "bm3d") if 0 < n_bm3d < len(images) else None,
        "metrics_csv": str(settings.work / "mnist" / "metrics.csv"),
    }


def run_conditions(
    images: list[ScanImage],
    methods: list[Denoiser],
    settings: Settings,
    folder: Path,
) -> dict[str, Any]:
    """Every noise condition: rows, then a summary against BM3D (when it ran)."""
    reference = "bm3d" if settings.bm3d else None
    out: dict[str, Any] = {}
    for key, (label, noise_cfg) in noise_conditions(QUALITY).items():
        log(
            f"{folder.name}: {label}, {len(images)} images, methods "
            f"{[m.name for m in methods]}{' + bm3d' if reference else ''}"
        )
        rows = run_table(
            images,
            make_noise(noise_cfg),
            methods,
            len(images) if reference else 0,
            folder / key,
            settings.seed,
        )
        out[key] = {
            "label": label,
            "noise": noise_cfg.model_dump(mode="json"),
            "summary": summarize_table(rows, reference),
        }
    return out


def quality_cxr(
    settings: Settings, images: list[ScanImage], failures: list[str], description: str
) -> dict[str, Any]:
    """Radiographs (center crops): noisy, BM3D, NLM, TV and the conv/unet/dncnn checkpoints."""
    cropped = [crop_scan(img, settings.cxr_crop) for img in images]
    entries = [require_size(cxr_entry(name, settings), None) for name in CXR_NETWORKS]
    methods = [NoisyInput(), *classical_methods(), *model_methods(entries)]
    skipped = {e.name: e.skipped for e in entries if e.skipped}
    if not settings.bm3d:
        skipped["bm3d"] = "left out (--skip-bm3d)"
    return {
        "provenance": provenance(settings),
        "data": f"{len(cropped)} radiographs: {description}",
        "training_note": CXR_TRAIN_NOTE,
        "crop": settings.cxr_crop,
        "images": describe_images(cropped),
        "load_failures": failures,
        "baseline_sigma": BASELINE_SIGMA,
        "models": {e.name: e.info for e in entries if e.denoiser is not None},
        "skipped": skipped,
        "conditions": run_conditions(cropped, methods, settings, settings.work / "cxr"),
    }


def quality_cxr_lowres(settings: Settings, images: list[ScanImage]) -> dict[str, Any]:
    """The 64-px models on the test images downscaled to 64x64, with the baselines at 64x64.

    Test images of patients in the low-res training/validation set are left out (the NIH
    test radiographs 00000001, 00000002 and 00000013 are in nih1000_64px/train).
    """
    entries = [lowres_entry(name, settings) for name in LOWRES_NETWORKS]
    skipped = {e.name: e.skipped for e in entries if e.skipped}
    if all(e.denoiser is None for e in entries):
        return {
            "provenance": provenance(settings),
            "skipped": skipped,
            "conditions": {},
            "note": "no 64-px model given (--cxr-dense64 / --cxr-conv64): section not run",
        }
    kept, dropped = unseen_images(images, seen_patients(entries, settings))
    if not kept:
        return {
            "provenance": provenance(settings),
            "skipped": skipped,
            "conditions": {},
            "note": f"every test image's patient is in the low-res training data ({dropped})",
        }
    small = [resize_image(img, LOWRES_SIZE) for img in kept]
    methods = [NoisyInput(), *classical_methods(), *model_methods(entries)]
    return {
        "provenance": provenance(settings),
        "data": f"{len(small)} of the radiographs, whole images downscaled to "
        f"{LOWRES_SIZE}x{LOWRES_SIZE} (bilinear)",
        "excluded_seen_patients": dropped,
        "baseline_sigma": BASELINE_SIGMA,
        "training_note": "left out, patient in the low-res training data: "
        f"{', '.join(dropped) or 'none'}",
        "models": {e.name: e.info for e in entries if e.denoiser is not None},
        "skipped": skipped,
        "conditions": run_conditions(small, methods, settings, settings.work / f"cxr{LOWRES_SIZE}"),
    }


def run_quality(settings: Settings) -> dict[str, Any]:
    """All quality tables."""
    images, failures, description = cxr_test_images(settings)
    quality: dict[str, Any] = {"mnist": quality_mnist(settings)}
    if images:
        quality["cxr"] = quality_cxr(settings, images, failures, description)
        quality["cxr_lowres"] = quality_cxr_lowres(settings, images)
    else:
        quality["cxr"] = {
            "provenance": provenance(settings),
            "skipped": {"all": f"no radiographs found ({description}): {failures}"},
            "conditions": {},
        }
    return quality
