"""Issue 13's radiograph acceptance table: X-ray dose and Gaussian noise on the patient-split test set.

    python scripts/radiograph_acceptance.py --model unet=pipeline/weights/cxr_default.pt --crop 512 \
        --work runs/acceptance_512
    python scripts/radiograph_acceptance.py --model unet=pipeline/weights/cxr_default.pt --crop 0 \
        --bm3d-images 2 --work runs/acceptance_full
    python scripts/radiograph_acceptance.py --lowres dense64=runs/cxr64_dense/<ts> --lowres conv64=runs/cxr64_conv/<ts> \
        --work runs/acceptance_64

Test images: the test part of the patient split of ``configs/cxr_shipped_xray.yaml`` (the
Hannover test patients plus the NIH and openCXR radiographs), as centre crops (``--crop``),
whole (``--crop 0``), or downscaled to 64x64 for the tutorial's 64-px models (``--lowres``,
leaving out the NIH patients of their training set). Noise: :func:`pipeline.noise.radiograph_conditions`,
seeded per image, the same for every method. BM3D is given the noise power spectrum for
X-ray noise and the noise's std for Gaussian noise (each row records which). Rows stay in
``<work>/<condition>/metrics.csv`` and are reused, so BM3D runs once and a rerun with another
model adds only that model's rows. Writes ``<work>/acceptance.json`` and ``acceptance.md``:
mean PSNR / SSIM / detail loss per method, paired 95% CIs against BM3D, and whether each
acceptance target is met (the first ``--model`` is the one judged). BM3D runs on the first
``--bm3d-images`` images, one image at a time across the conditions, until ``--bm3d-budget``
seconds are spent, so every condition has BM3D on the same images.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.baselines import make_baseline
from pipeline.bench.conditions import crop_scan
from pipeline.bench.provenance import git_commit
from pipeline.config import load_config
from pipeline.denoiser import Denoiser, NoisyInput, Renamed
from pipeline.evaluate import evaluate, noise_given_by_method, read_metrics_csv
from pipeline.image import ScanImage
from pipeline.inference import denoiser_from_checkpoint
from pipeline.metrics import estimate_noise_sigma
from pipeline.noise import make_noise, radiograph_conditions
from pipeline.report import rows_by_method, summarize_methods

ROOT = Path(__file__).resolve().parents[1]
SPLIT_CONFIG = ROOT / "configs" / "cxr_shipped_xray.yaml"
LOWRES_SIZE = 64
LOWRES_TRAIN = Path("../shared/data/cxr/lowres/nih1000_64px")  # relative to the project root, as in the configs

#: condition -> (least mean ΔPSNR over BM3D in dB, SSIM must be higher, the paired CI must lie above 0)
TARGETS = {
    "xray_dose_0.25": (1.0, True, True),
    "xray_dose_0.1": (1.0, True, True),
    "gaussian_25": (0.7, True, False),
    "gaussian_50": (2.0, False, False),
}
#: conditions where the judged model's detail loss must not be worse (higher) than BM3D's
DETAIL_TARGETS = ("gaussian_25", "xray_dose_0.1")


def test_images(seed: int) -> tuple[list[ScanImage], str]:
    """The test images of the radiograph patient split (paths in the config are relative to the project)."""
    from pipeline.ingest import load_splits

    cfg = load_config(SPLIT_CONFIG, ["data.max_clean_noise=null", f"run.seed={seed}"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fo-dicom file has no PatientID and no file meta
        splits = load_splits(cfg.data, cfg.run.seed)
    order = interleaved_by_folder(splits.test)
    return order, (f"test part of the patient split of configs/{SPLIT_CONFIG.name} (seed {cfg.run.seed}), "
                   "taken in turn from each source folder")


def interleaved_by_folder(images: list[ScanImage]) -> list[ScanImage]:
    """Images taken in turn from each source folder, so any first N (BM3D's subset) mixes the sources."""
    by_folder: dict[str, list[ScanImage]] = {}
    for img in images:
        by_folder.setdefault(str(img.meta.source.parent if img.meta.source else ""), []).append(img)
    queues = list(by_folder.values())
    return [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]


def lowres_images(images: list[ScanImage]) -> tuple[list[ScanImage], list[str]]:
    """Images downscaled to 64x64, without NIH patients of the 64-px training set; and those left out."""
    import re

    from pipeline.ingest.folder import resize_image

    nih = re.compile(r"^(\d{8})_\d{3}")
    seen = {m.group(1) for part in ("train", "valid") for f in (LOWRES_TRAIN / part).rglob("*.png") if (m := nih.match(f.name))}
    seen_before = [bool((m := nih.match(img.meta.name)) and m.group(1) in seen) for img in images]
    keep = [img for img, old in zip(images, seen_before) if not old]
    left_out = [img.meta.name for img, old in zip(images, seen_before) if old]
    return [resize_image(img, LOWRES_SIZE) for img in keep], left_out


def model_methods(specs: list[str]) -> tuple[list[Denoiser], dict[str, str]]:
    """``name=checkpoint`` pairs as evaluation methods, and where each came from."""
    methods, origins = [], {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"error: --model/--lowres takes name=checkpoint, got {spec!r}")
        denoiser, _ = denoiser_from_checkpoint(path, device="cpu", tile_size=512)
        methods.append(Renamed(denoiser, name))
        origins[name] = path
    return methods, origins


def detail_means(rows: list[dict[str, Any]], images: set[str] | None = None) -> dict[str, float]:
    """Mean detail loss per method (over `images` when given)."""
    by: dict[str, list[float]] = {}
    for r in rows:
        if images is None or r["image"] in images:
            by.setdefault(r["method"], []).append(float(r["detail_loss"]))
    return {m: float(np.mean(v)) for m, v in by.items()}


def judge(key: str, summary: dict[str, Any], detail: dict[str, float], model: str) -> dict[str, Any] | None:
    """Whether `model` meets the condition's targets against BM3D (None when either is missing)."""
    entry = summary["methods"].get(model)
    if key not in TARGETS or entry is None or "bm3d" not in summary["methods"] or not entry.get("vs_reference"):
        return None
    margin, need_ssim, need_ci = TARGETS[key]
    dpsnr, dssim = entry["vs_reference"]["psnr"], entry["vs_reference"]["ssim"]
    checks = {f"ΔPSNR ≥ +{margin} dB": dpsnr["mean"] >= margin}
    if need_ssim:
        checks["higher SSIM"] = dssim["mean"] > 0
    if need_ci:
        checks["CI above 0"] = dpsnr["ci_low"] > 0
    if key in DETAIL_TARGETS:
        checks["detail loss ≤ BM3D's"] = detail[model] <= detail["bm3d"]
    return {"checks": checks, "met": all(checks.values())}


def lead_by_reference_noise(rows: list[dict[str, Any]], model: str, noise: dict[str, float]) -> dict[str, Any] | None:
    """How `model`'s per-image PSNR lead over BM3D goes with the clean reference's own noise.

    Pearson r between the two over the images with both methods, and the mean lead on the
    cleaner and the noisier half of them (split at the median noise). A reference's own noise
    is in every method's error, so it caps how far one method can lead another there.
    """
    table = rows_by_method(rows)
    mine, bm3d = table.get(model, {}), table.get("bm3d", {})
    pairs = sorted((noise[img], float(mine[img]["psnr"]) - float(bm3d[img]["psnr"])) for img in mine if img in bm3d and img in noise)
    if len(pairs) < 4:
        return None
    sigma, lead = np.array(pairs).T
    half = len(pairs) // 2
    return {"n": len(pairs), "pearson_r": float(np.corrcoef(sigma, lead)[0, 1]),
            "cleaner_half": float(lead[:half].mean()), "noisier_half": float(lead[half:].mean()),
            "reference_noise_median": float(np.median(sigma))}


def run(args: argparse.Namespace) -> dict[str, Any]:
    images, description = test_images(args.seed)
    left_out: list[str] = []
    if args.lowres:
        images, left_out = lowres_images(images)
        description += f", whole images downscaled to {LOWRES_SIZE}x{LOWRES_SIZE}"
        methods, origins = model_methods(args.lowres)
    else:
        images = [crop_scan(img, args.crop if args.crop > 0 else None) for img in images]
        description += f", {'whole images' if args.crop <= 0 else f'central {args.crop}x{args.crop} crops'}"
        methods, origins = model_methods(args.model)
    bm3d_count = len(images) if args.bm3d_images is None else min(args.bm3d_images, len(images))
    reference_noise = {i.meta.name: estimate_noise_sigma(i.pixels) for i in images}
    result: dict[str, Any] = {"data": description, "images": [i.meta.name for i in images], "left_out": left_out,
                              "models": origins, "reference_noise": reference_noise, "conditions": {}}
    conditions = {k: v for k, v in radiograph_conditions().items() if not args.only or k in args.only}
    noises = {key: make_noise(noise_cfg) for key, (_, noise_cfg) in conditions.items()}
    for key, noise in noises.items():
        evaluate(images, noise, args.seed, [NoisyInput(), *methods], args.work / key, n_examples=0, progress=False)
    # BM3D one image at a time across the conditions, so a time budget leaves every condition the same images.
    started = time.perf_counter()
    for count in range(1, bm3d_count + 1):
        if args.bm3d_budget is not None and time.perf_counter() - started > args.bm3d_budget:
            print(f"BM3D stopped by --bm3d-budget after {count - 1} images per condition", file=sys.stderr)
            break
        for key, noise in noises.items():
            evaluate(images[:count], noise, args.seed, [make_baseline("bm3d")], args.work / key, 0, False)
    for key, (label, noise_cfg) in conditions.items():
        folder = args.work / key
        t0 = time.perf_counter()
        rows = [r for r in read_metrics_csv(folder / "metrics.csv") if r["method"] in {"noisy", "bm3d", *origins}]
        bm3d_set = {r["image"] for r in rows if r["method"] == "bm3d"}
        summary = summarize_methods([r for r in rows if r["image"] in bm3d_set] if bm3d_set else rows,
                                    reference_method="bm3d" if bm3d_set else "noisy")
        detail = detail_means(rows, bm3d_set or None)
        judged = next(iter(origins), None)
        result["bm3d_images"] = len(bm3d_set)
        result["conditions"][key] = {
            "label": label, "noise": noise_cfg.model_dump(mode="json"), "summary": summary,
            "all_images": summarize_methods(rows, reference_method="noisy")["methods"] if bm3d_set else None,
            "detail_loss": detail, "noise_given": noise_given_by_method(rows),
            "acceptance": judge(key, summary, detail, judged) if judged else None,
            "lead_by_reference_noise": lead_by_reference_noise(rows, judged, reference_noise) if judged else None,
            "summary_seconds": time.perf_counter() - t0,
        }
    return result


def fmt_ci(stat: dict[str, Any] | None, digits: int = 2, signed: bool = False) -> str:
    if not stat or not math.isfinite(float(stat.get("mean", math.nan))):
        return "–"
    sign = "+" if signed else ""
    text = f"{stat['mean']:{sign}.{digits}f}"
    if stat.get("ci_low") is None or not math.isfinite(float(stat["ci_low"])):
        return text
    return f"{text} [{stat['ci_low']:{sign}.{digits}f}, {stat['ci_high']:{sign}.{digits}f}]"


def markdown(result: dict[str, Any]) -> str:
    """acceptance.md: one table per condition, then the acceptance rows."""
    p = result["provenance"]
    measured = (f"*Measured {p['time']} at commit `{p['commit']}` with `{p['command']}` on {p['machine']}, "
                f"{p['threads']} torch threads.*")
    data = f"Data: {result['data']}; {len(result['images'])} images, BM3D on the first {result['bm3d_images']}."
    lines = [measured, "", data]
    if result["left_out"]:
        lines.append(f"Left out (patient in the 64-px training data): {', '.join(result['left_out'])}.")
    lines += ["Models: " + "; ".join(f"`{k}` = `{v}`" for k, v in result["models"].items()) + ".", ""]
    for c in result["conditions"].values():
        given = ", ".join(f"{m} given the noise {'PSD' if g == 'psd' else g}" for m, g in c["noise_given"].items())
        title = (f"**{c['label']}** ({given or 'no baseline'}; PSNR/SSIM/detail on the BM3D images, "
                 f"paired 95% CI vs {c['summary']['reference']}):")
        lines += [title, "", "| method | n | PSNR (dB) | SSIM | ΔPSNR | ΔSSIM | detail loss | s/image |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, m in c["summary"]["methods"].items():
            vs = m.get("vs_reference") or {}
            lines.append(f"| {name} | {m['n']} | {fmt_ci(m['psnr'])} | {fmt_ci(m['ssim'], 3)} | {fmt_ci(vs.get('psnr'), 2, True)} | "
                         f"{fmt_ci(vs.get('ssim'), 3, True)} | {c['detail_loss'].get(name, math.nan):+.3f} | {m['seconds_per_image']:.2f} |")
        lead = c.get("lead_by_reference_noise")
        if lead:
            lines += ["", (f"`{next(iter(result['models']))}`'s lead over BM3D against the reference's own noise "
                           f"(wavelet estimate, median {lead['reference_noise_median'] * 255:.2f}/255): Pearson r "
                           f"{lead['pearson_r']:+.2f} over {lead['n']} images; mean lead {lead['cleaner_half']:+.2f} dB "
                           f"on the cleaner half, {lead['noisier_half']:+.2f} dB on the noisier half.")]
        lines.append("")
    judged = [(k, c["acceptance"]) for k, c in result["conditions"].items() if c.get("acceptance")]
    if judged:
        model = next(iter(result["models"]))
        lines += [f"Acceptance (`{model}` against BM3D):", "", "| condition | checks | met |", "| --- | --- | --- |"]
        lines += [f"| {result['conditions'][k]['label']} | " + "; ".join(f"{n}: {'yes' if ok else 'no'}" for n, ok in a["checks"].items())
                  + f" | {'yes' if a['met'] else 'no'} |" for k, a in judged]
        lines.append("")
    return "\n".join(lines)


def provenance(argv: list[str], threads: int) -> dict[str, Any]:
    return {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": git_commit(),
            "command": "python scripts/radiograph_acceptance.py " + shlex.join(argv),
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads available",
            "threads": threads}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=[], help="name=checkpoint (repeatable; the first is judged)")
    p.add_argument("--lowres", action="append", default=[], help="name=checkpoint of a 64-px model (64x64 table instead)")
    p.add_argument("--crop", type=int, default=512, help="centre crop side (0: whole images)")
    p.add_argument("--bm3d-images", type=int, default=None, help="run BM3D on the first N images only (default all)")
    p.add_argument("--bm3d-budget", type=float, default=None, help="start no BM3D image after this many seconds")
    p.add_argument("--only", nargs="*", help="condition keys to run (default all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", type=Path, required=True, help="folder for the rows (reused) and the tables")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run(args)
    result["provenance"] = provenance(argv, args.threads)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "acceptance.json").write_text(json.dumps(result, indent=2, default=float))
    (args.work / "acceptance.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
