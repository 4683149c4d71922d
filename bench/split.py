"""The radiograph acceptance: X-ray dose and Gaussian noise on the five-source patient split's test
part, against BM3D.

Test images: the test part of ``configs/splits/multisite.csv`` (five sources, split by patient;
:func:`bench.conditions.multisite_test_images`), as centre crops, whole, or
downscaled to 64x64 for the tutorial's 64-px models (leaving out the NIH patients of their
training set). Noise: :data:`bench.noise_conditions.ACCEPTANCE`, seeded per image, the same
for every method. BM3D is given the noise power spectrum for X-ray noise and the noise's std
for Gaussian noise (each row records which). Rows stay in ``<work>/<condition>/metrics.csv``
and are reused, so BM3D runs once and a rerun with another model adds only that model's rows.
The result: mean PSNR / SSIM and detail kept (:mod:`pipeline.detail`) per method, pooled and per
source, paired 95% CIs against BM3D, and whether each acceptance target is met (the first
model is the one judged). BM3D runs on the first ``bm3d_images`` images, one image at a time across
the conditions, until ``bm3d_budget`` seconds are spent, so every condition has BM3D on the same
images.

Run by ``scripts/radiograph_acceptance.py`` and by ``scripts/benchmark.py --only split``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.conditions import crop_scan, nih_patients, unseen_images
from bench.conditions import multisite_test_images as test_images
from bench.formatting import DETAIL_COLUMN, fmt, fmt_ci
from bench.noise_conditions import ACCEPTANCE, noise_conditions
from bench.provenance import log, provenance
from bench.settings import LOWRES_SIZE, Settings, as_recorded
from bench.split_detail import (
    by_source,
    condition_spectra,
    source_of,
    transfer_by_method,
    transfer_curves,
)
from pipeline.baselines import make_baseline
from pipeline.checkpoint import checkpoint_path
from pipeline.config import InferenceConfig
from pipeline.denoiser import Denoiser, NoisyInput, Renamed
from pipeline.detail import BANDS, band_name
from pipeline.errors import PipelineError
from pipeline.evaluate import evaluate, noise_given_by_method, read_metrics_csv
from pipeline.image import ScanImage
from pipeline.inference import denoiser_from_checkpoint
from pipeline.ingest.folder import resize_image
from pipeline.metrics import estimate_noise_sigma
from pipeline.noise import make_noise
from pipeline.provenance import file_sha256
from pipeline.report import rows_by_method, summarize_methods

#: condition -> least mean ΔPSNR over BM3D in dB; every condition also asks for higher SSIM and a
#: paired 95% CI of ΔPSNR above 0, pooled, and no source on which the model is below BM3D in PSNR.
TARGETS = {
    "xray_dose_0.25": 1.0,
    "xray_dose_0.1": 1.5,
    "gaussian_25": 0.7,
    "gaussian_50": 2.0,
}
#: conditions where the judged model must keep at least BM3D's detail in the acceptance band
#: (pooled)
DETAIL_TARGETS = ("gaussian_25", "xray_dose_0.1")


@dataclass
class SplitOptions:
    """One acceptance table: which models, which view of the images, how much BM3D, where the rows
    go."""

    work: Path
    models: dict[str, str] = field(default_factory=dict)  # name -> checkpoint; the first is judged
    lowres: bool = False  # the models are 64-px ones: images downscaled to 64x64
    lowres_dir: Path | None = (
        None  # with lowres: the 64-px training data (its patients are left out)
    )
    crop: int = 512  # centre crop side; 0: whole images
    images: int | None = None  # the first N test images only (default all)
    bm3d_images: int | None = None  # BM3D on the first N images only (default all)
    bm3d_budget: float | None = None  # start no BM3D image after this many seconds
    only: list[str] | None = None  # condition keys (default all)
    seed: int = 0


def lowres_images(images: list[ScanImage], lowres_dir: Path) -> tuple[list[ScanImage], list[str]]:
    """Images downscaled to 64x64, without NIH patients of the 64-px training set in `lowres_dir`;
    and those left out."""
    kept, left_out = unseen_images(
        images, nih_patients([lowres_dir / "train", lowres_dir / "valid"])
    )
    return [resize_image(img, LOWRES_SIZE) for img in kept], left_out


def model_methods(models: dict[str, str]) -> list[Denoiser]:
    """Checkpoints by name as evaluation methods."""
    return [
        Renamed(denoiser_from_checkpoint(path, InferenceConfig(device="cpu"))[0], name)
        for name, path in models.items()
    ]


def judge(key: str, condition: dict[str, Any], model: str) -> dict[str, Any] | None:
    """Whether `model` meets the condition's targets against BM3D (None when either is missing)."""
    summary = condition["summary"]
    entry = summary["methods"].get(model)
    if (
        key not in TARGETS
        or entry is None
        or "bm3d" not in summary["methods"]
        or not entry.get("vs_reference")
    ):
        return None
    margin = TARGETS[key]
    dpsnr, dssim = entry["vs_reference"]["psnr"], entry["vs_reference"]["ssim"]
    checks = {
        f"ΔPSNR ≥ +{margin} dB": dpsnr["mean"] >= margin,
        "higher SSIM": dssim["mean"] > 0,
        "CI above 0": dpsnr["ci_low"] > 0,
    }
    sources = condition.get("by_source") or {}
    behind = [
        s
        for s, v in sources.items()
        if (v["methods"].get(model, {}).get("vs_reference") or {}).get("psnr", {}).get("mean", -1)
        <= 0
    ]
    checks["no source below BM3D" + (f" ({', '.join(behind)} is)" if behind else "")] = not behind
    if key in DETAIL_TARGETS:
        kept = condition.get("transfer", {})
        mine, theirs = (
            kept.get(model, {}).get(DETAIL_COLUMN),
            kept.get("bm3d", {}).get(DETAIL_COLUMN),
        )
        checks[f"detail kept {DETAIL_COLUMN} ≥ BM3D's"] = (
            mine is not None and theirs is not None and mine >= theirs
        )
    return {"checks": checks, "met": all(checks.values())}


def lead_by_reference_noise(
    rows: list[dict[str, Any]], model: str, noise: dict[str, float]
) -> dict[str, Any] | None:
    """How `model`'s per-image PSNR lead over BM3D goes with the clean reference's own noise.

    Pearson r between the two over the images with both methods, and the mean lead on the
    cleaner and the noisier half of them (split at the median noise). A reference's own noise
    is in every method's error, so it caps how far one method can lead another there.
    """
    table = rows_by_method(rows)
    mine, bm3d = table.get(model, {}), table.get("bm3d", {})
    pairs = sorted(
        (noise[img], float(mine[img]["psnr"]) - float(bm3d[img]["psnr"]))
        for img in mine
        if img in bm3d and img in noise
    )
    if len(pairs) < 4:
        return None
    sigma, lead = np.array(pairs).T
    half = len(pairs) // 2
    return {
        "n": len(pairs),
        "pearson_r": float(np.corrcoef(sigma, lead)[0, 1]),
        "cleaner_half": float(lead[:half].mean()),
        "noisier_half": float(lead[half:].mean()),
        "reference_noise_median": float(np.median(sigma)),
    }


def prepare_images(
    images: list[ScanImage], description: str, options: SplitOptions
) -> tuple[list[ScanImage], str, list[str]]:
    """The test images as the table sees them (first N, cropped, whole or 64-px), what that is, who
    was left out."""
    images = images[: options.images] if options.images is not None else images
    if options.lowres:
        if options.lowres_dir is None:
            raise ValueError("SplitOptions.lowres needs lowres_dir (the 64-px training data)")
        images, left_out = lowres_images(images, options.lowres_dir)
        return (
            images,
            description + f", whole images downscaled to {LOWRES_SIZE}x{LOWRES_SIZE}",
            left_out,
        )
    view = "whole images" if options.crop <= 0 else f"central {options.crop}x{options.crop} crops"
    return (
        [crop_scan(img, options.crop if options.crop > 0 else None) for img in images],
        f"{description}, {view}",
        [],
    )


def run_split(images: list[ScanImage], description: str, options: SplitOptions) -> dict[str, Any]:
    """Every method on every condition (rows reused from ``options.work``), summarised and
    judged."""
    images, description, left_out = prepare_images(images, description, options)
    methods = model_methods(options.models)
    bm3d_count = (
        len(images) if options.bm3d_images is None else min(options.bm3d_images, len(images))
    )
    reference_noise = {i.meta.name: estimate_noise_sigma(i.pixels) for i in images}
    result: dict[str, Any] = {
        "data": description,
        "images": [i.meta.name for i in images],
        "left_out": left_out,
        "models": dict(options.models),
        "reference_noise": reference_noise,
        "conditions": {},
    }
    conditions = noise_conditions(k for k in ACCEPTANCE if not options.only or k in options.only)
    noises = {key: make_noise(noise_cfg) for key, (_, noise_cfg) in conditions.items()}
    for key, noise in noises.items():
        evaluate(
            images,
            noise,
            options.seed,
            [NoisyInput(), *methods],
            options.work / key,
            n_examples=0,
            progress=False,
        )
    # BM3D one image at a time across the conditions, so a time budget leaves every condition the
    # same images.
    started = time.perf_counter()
    for count in range(1, bm3d_count + 1):
        if options.bm3d_budget is not None and time.perf_counter() - started > options.bm3d_budget:
            warnings.warn(
                f"BM3D stopped by its time budget after {count - 1} images per condition",
                stacklevel=2,
            )
            break
        for key, noise in noises.items():
            evaluate(
                images[:count],
                noise,
                options.seed,
                [make_baseline("bm3d")],
                options.work / key,
                0,
                False,
            )
    names = {i.meta.name for i in images}
    sources = {i.meta.name: source_of(i) for i in images}
    result["sources"] = sources
    judged = next(iter(options.models), None)
    for key, (label, noise_cfg) in conditions.items():
        result["conditions"][key] = summarise_condition(
            options.work / key, names, sources, options.models, label, noise_cfg
        )
        condition = result["conditions"][key]
        condition["acceptance"] = judge(key, condition, judged) if judged else None
        condition["lead_by_reference_noise"] = (
            lead_by_reference_noise(condition.pop("rows"), judged, reference_noise)
            if judged
            else None
        )
        result["bm3d_images"] = condition.pop("bm3d_images")
    return result


def summarise_condition(
    work: Path,
    names: set[str],
    sources: dict[str, str],
    models: dict[str, str],
    label: str,
    noise_cfg: Any,
) -> dict[str, Any]:
    """One condition's pooled summary, detail kept, spectra and per-source leads (on BM3D's
    images)."""
    t0 = time.perf_counter()
    rows = [
        r
        for r in read_metrics_csv(work / "metrics.csv")
        if r["method"] in {"noisy", "bm3d", *models} and r["image"] in names
    ]
    bm3d_set = {r["image"] for r in rows if r["method"] == "bm3d"}
    scored = [r for r in rows if r["image"] in bm3d_set] if bm3d_set else rows
    summary = summarize_methods(scored, reference_method="bm3d" if bm3d_set else "noisy")
    images = bm3d_set or names
    spectra = condition_spectra(work)
    return {
        "label": label,
        "noise": noise_cfg.model_dump(mode="json"),
        "summary": summary,
        "rows": rows,
        "all_images": summarize_methods(rows, reference_method="noisy")["methods"]
        if bm3d_set
        else None,
        "transfer": transfer_by_method(spectra, images),
        "curves": transfer_curves(spectra, images),
        "by_source": by_source(rows, sources, spectra) if bm3d_set else {},
        "noise_given": noise_given_by_method(rows),
        "bm3d_images": len(bm3d_set),
        "summary_seconds": time.perf_counter() - t0,
    }


def _method_lines(c: dict[str, Any]) -> list[str]:
    """A condition's pooled table: PSNR, SSIM, their paired differences to the reference, detail
    kept per band."""
    bands = [band_name(b) for b in BANDS]
    head = (
        "| method | n | PSNR (dB) | SSIM | ΔPSNR | ΔSSIM | "
        + " | ".join(f"{b} cyc/px" for b in bands)
        + " | s/image |"
    )
    lines = [head, "|" + " --- |" * (7 + len(bands))]
    for name, m in c["summary"]["methods"].items():
        vs = m.get("vs_reference") or {}
        kept = c.get("transfer", {}).get(name, {})
        lines.append(
            f"| {name} | {m['n']} | {fmt_ci(m['psnr'])} | {fmt_ci(m['ssim'], 3)} | "
            f"{fmt_ci(vs.get('psnr'), 2, True)} | "
            f"{fmt_ci(vs.get('ssim'), 3, True)} | "
            + " | ".join(fmt(kept.get(b), 3) for b in bands)
            + f" | {fmt(m['seconds_per_image'])} |"
        )
    return lines


def _source_lines(c: dict[str, Any], model: str | None) -> list[str]:
    """Per source: the judged model's ΔPSNR / ΔSSIM against BM3D and both methods' detail kept."""
    if not model or not c.get("by_source"):
        return []
    lines = [
        f"Per source (`{model}` against BM3D):",
        "",
        f"| source | n | ΔPSNR [95% CI] | ΔSSIM | {DETAIL_COLUMN} {model} | {DETAIL_COLUMN} bm3d |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for source, v in c["by_source"].items():
        vs = v["methods"].get(model, {}).get("vs_reference") or {}
        kept = v.get("transfer", {})
        lines.append(
            f"| {source} | {v['n']} | {fmt_ci(vs.get('psnr'), 2, True)} | "
            f"{fmt_ci(vs.get('ssim'), 3, True)} | "
            f"{fmt(kept.get(model, {}).get(DETAIL_COLUMN), 3)} | "
            f"{fmt(kept.get('bm3d', {}).get(DETAIL_COLUMN), 3)} |"
        )
    return lines + [""]


def markdown(result: dict[str, Any], measured: str) -> str:
    """One table per condition (pooled, then per source), then the acceptance rows; `measured` is
    the provenance line."""
    data = (
        f"Data: {result['data']}; {len(result['images'])} images, BM3D on the first "
        f"{result.get('bm3d_images', 0)}."
    )
    lines = [measured, "", data]
    if result["left_out"]:
        lines.append(
            f"Left out (patient in the 64-px training data): {', '.join(result['left_out'])}."
        )
    lines += [
        "Models: " + "; ".join(f"`{k}` = `{v}`" for k, v in result["models"].items()) + ".",
        "",
        (
            "Detail kept T: the task transfer function on the content (Re F(out)·conj F(clean) / "
            "|F(clean)|², Hann-windowed, pooled over the images) per band of cycles/pixel: 1 keeps "
            "all, lower smooths more; noise left in does not raise it."
        ),
        "",
    ]
    model = next(iter(result["models"]), None)
    for c in result["conditions"].values():
        given = ", ".join(
            f"{m} given the noise {'PSD' if g == 'psd' else g}" for m, g in c["noise_given"].items()
        )
        where = "on the BM3D images" if c["summary"]["reference"] == "bm3d" else "on all images"
        title = (
            f"**{c['label']}** ({given or 'no baseline'}; {where}, "
            f"paired 95% CI vs {c['summary']['reference']}):"
        )
        lines += [title, "", *_method_lines(c), ""]
        lines += _source_lines(c, model)
        lead = c.get("lead_by_reference_noise")
        if lead:
            lines += [
                (
                    f"`{model}`'s lead over BM3D against the reference's own noise "
                    f"(wavelet estimate, median {lead['reference_noise_median'] * 255:.2f}/255): "
                    "Pearson r "
                    f"{lead['pearson_r']:+.2f} over {lead['n']} images; mean lead "
                    f"{lead['cleaner_half']:+.2f} dB "
                    f"on the cleaner half, {lead['noisier_half']:+.2f} dB on the noisier half."
                ),
                "",
            ]
    judged = [(k, c["acceptance"]) for k, c in result["conditions"].items() if c.get("acceptance")]
    if judged:
        lines += [
            f"Acceptance (`{model}` against BM3D):",
            "",
            "| condition | checks | met |",
            "| --- | --- | --- |",
        ]
        lines += [
            f"| {result['conditions'][k]['label']} | "
            + "; ".join(f"{n}: {'yes' if ok else 'no'}" for n, ok in a["checks"].items())
            + f" | {'yes' if a['met'] else 'no'} |"
            for k, a in judged
        ]
        lines.append("")
    return "\n".join(lines)


#: The judged model's name in the benchmark's tables (the shipped model unless --cxr-unet names
#: another).
BENCH_MODEL = "unet"


def view_key(side: int) -> str:
    """Key of a view in results.json (crop side, 0 or less: whole images)."""
    return "whole" if side <= 0 else f"crop_{side}"


def view_title(key: str) -> str:
    """Heading of a view's tables in RESULTS.md."""
    return "Whole images" if key == "whole" else f"{key.removeprefix('crop_')}² centre crops"


def run_split_part(settings: Settings) -> dict[str, Any]:
    """``scripts/benchmark.py``'s split part: the acceptance tables of each view (crop side or
    whole)."""
    checkpoint = settings.cxr_models.get(BENCH_MODEL)
    if not checkpoint or checkpoint == "none":
        return {
            "provenance": provenance(settings),
            "skipped": "no radiograph model (the shipped weights are missing and no --cxr-unet)",
        }
    try:
        images, description = test_images(settings.project, settings.shared_data)
    except PipelineError as err:
        return {
            "provenance": provenance(settings),
            "skipped": f"the patient-split test images could not be read: {err}",
        }
    views = {}
    for side in settings.split_views:
        options = SplitOptions(
            work=settings.work / "split" / view_key(side),
            models={BENCH_MODEL: checkpoint},
            crop=side,
            images=settings.split_images,
            bm3d_images=settings.split_bm3d_images if settings.bm3d else 0,
            bm3d_budget=settings.split_bm3d_budget,
            seed=settings.seed,
        )
        log(f"split: {view_key(side)} ({options.work})")
        result = run_split(images, description, options)
        result["models"] = as_recorded(
            result["models"], settings.project
        )  # no machine's absolute path in results.json
        views[view_key(side)] = result
    model = {
        "name": BENCH_MODEL,
        "checkpoint": as_recorded(checkpoint, settings.project),
        "sha256": file_sha256(checkpoint_path(checkpoint)),
    }
    return {"provenance": provenance(settings), "model": model, "views": views}
