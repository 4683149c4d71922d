"""Acceptance benchmark of ``denoise adapt`` ("another scanner"): self-supervised adaptation
against the shipped model as is, a supervised oracle and BM3D.

For each noise condition:

1. The test radiographs (default: the NIH ChestX-ray14 and openCXR PNGs of
   ../shared/data/cxr/png, one copy of 00000001_000) get seeded noise and are written as
   16-bit PNGs to ``<out>/<condition>/noisy/``. Every method sees these same noisy pixels.
2. ``denoise adapt`` runs on that folder alone (the real command, in a subprocess) for each
   method, with the time budget ``--minutes`` and ``--threads`` threads.
3. The oracle: the same fine-tuning settings, supervised, on the clean images with fresh
   noise of the same model each epoch, for the same budget.
4. Scores (PSNR, SSIM, data range 1) of: the noisy input, the shipped model as is, each
   adapted model, the oracle, and BM3D (given the noise PSD for correlated noise, sigma for
   white noise); paired differences with 95% CIs. The models denoise whole images; all
   methods are scored on the central ``--score-crop`` square (BM3D runs on that crop only,
   which keeps its time in bounds on a shared CPU).

Steps (``--steps``) can run as separate invocations on the same ``--out`` (e.g. the two adapt
methods side by side, so that they share the same machine load); ``score`` writes the results.

Each step is kept under ``<out>`` and skipped when rerun (delete a step's folder to redo it);
``<out>/results.json`` holds every number.

    python scripts/adapt_benchmark.py --out runs/adapt_benchmark --minutes 15 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))  # the checkout: `bench` is not installed

from bench.noise_conditions import ADAPT, noise_conditions
from pipeline.adapt.setup import AdaptOptions, adapt_config
from pipeline.checkpoint import SHIPPED_MODEL
from pipeline.config import InferenceConfig, NoiseSection
from pipeline.image import center_crop
from pipeline.inference import denoiser_from_checkpoint
from pipeline.metrics import paired_difference, psnr, ssim, summarize
from pipeline.noise import make_noise, noise_rng

DEFAULT_FOLDERS = [
    PROJECT_ROOT.parent / "shared" / "data" / "cxr" / "png" / name
    for name in ("nih_chestxray14", "opencxr_tests")
]
#: Files left out of the default test images: a resized copy of another test image.
DUPLICATES = ("00000001_000_512px_torchxrayvision.png",)

#: This benchmark's noise conditions (defined in :mod:`bench.noise_conditions`).
CONDITIONS = noise_conditions(ADAPT)


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def test_images(folders: list[Path]) -> list[tuple[str, np.ndarray]]:
    from pipeline.ingest.folder import load_folder

    images = []
    for folder in folders:
        found, _ = load_folder(folder)
        images += [(img.meta.name, img.pixels) for img in found if img.meta.name not in DUPLICATES]
    return images


def write_noisy(
    images: list[tuple[str, np.ndarray]], noise_cfg: NoiseSection, seed: int, folder: Path
) -> list[np.ndarray]:
    """Noisy copies as 16-bit PNGs (made once); returns the noisy pixels as read back."""
    from pipeline.io import read_image

    folder.mkdir(parents=True, exist_ok=True)
    noise = make_noise(noise_cfg)
    out = []
    for i, (name, clean) in enumerate(images):
        path = folder / (Path(name).stem + ".png")
        if not path.is_file():
            noisy = noise(clean, noise_rng(seed, "test", 0, i))
            tmp = path.with_suffix(".tmp.png")
            Image.fromarray(np.round(np.clip(noisy, 0, 1) * 65535).astype(np.uint16)).save(tmp)
            os.replace(tmp, path)
        out.append(read_image(path)[0].pixels)
    return out


def run_adapt(
    noisy_dir: Path, run_dir: Path, method: str, minutes: float, threads: int, seed: int
) -> dict[str, Any]:
    command = [
        sys.executable,
        "-m",
        "pipeline",
        "adapt",
        "-i",
        str(noisy_dir),
        "-o",
        str(run_dir),
        "--method",
        method,
        "--minutes",
        str(minutes),
        "--threads",
        str(threads),
        "--seed",
        str(seed),
        "--no-progress",
    ]
    if not (run_dir / "adapt.json").is_file():
        log("$ " + " ".join(command))
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        subprocess.run(command, check=True, env=env, cwd=PROJECT_ROOT)
    record = json.loads((run_dir / "adapt.json").read_text())
    record["load_average_at_start"] = json.loads((run_dir / "environment.json").read_text()).get(
        "load_average_1_5_15_min"
    )
    record["command"] = " ".join(["denoise", *command[3:]])
    return record


def run_oracle(
    clean_dir: Path,
    images: list[tuple[str, np.ndarray]],
    noise_cfg: NoiseSection,
    run_dir: Path,
    minutes: float,
    threads: int,
    seed: int,
) -> dict[str, Any]:
    """Supervised fine-tuning of the shipped model on the clean images with fresh noise, same
    settings and budget."""
    from pipeline.train import train

    best = run_dir / "checkpoints" / "best.pt"
    if not best.is_file():
        log(f"oracle: supervised, {minutes} min, {threads} threads")
        torch.set_num_threads(threads)
        options = AdaptOptions(
            clean_dir, run_dir, "supervised", minutes, seed, threads, progress=False
        )
        cfg = adapt_config(options, SHIPPED_MODEL, len(images))
        run_dir.mkdir(parents=True, exist_ok=True)
        load = os.getloadavg()
        t0 = time.perf_counter()
        out = train(
            cfg,
            [pixels for _, pixels in images],
            [],
            make_noise(noise_cfg),
            run_dir,
            torch.device("cpu"),
        )
        (run_dir / "oracle.json").write_text(
            json.dumps(
                {
                    "seconds": time.perf_counter() - t0,
                    "epochs": len(out.log),
                    "load_average_at_start": load,
                }
            )
        )
    return json.loads((run_dir / "oracle.json").read_text())


def crop(pixels: np.ndarray, side: int | None) -> np.ndarray:
    """The central side x side square (the whole image when side is None or larger)."""
    return pixels if side is None else np.ascontiguousarray(center_crop(pixels, side))


def score(name: str, clean: np.ndarray, output: np.ndarray, seconds: float) -> dict[str, Any]:
    return {
        "image": name,
        "psnr": psnr(clean, output, data_range=1.0),
        "ssim": ssim(clean, output, data_range=1.0),
        "seconds": seconds,
    }


def evaluate_condition(
    key: str,
    images: list[tuple[str, np.ndarray]],
    noisy: list[np.ndarray],
    models: dict[str, Path],
    folder: Path,
    threads: int,
    side: int | None,
) -> dict[str, list[dict[str, Any]]]:
    """Per-method rows (cached in <folder>/scores.json, one method at a time)."""
    from pipeline.baselines import make_baseline

    path = folder / "scores.json"
    rows: dict[str, list[dict[str, Any]]] = json.loads(path.read_text()) if path.is_file() else {}
    torch.set_num_threads(threads)
    noise = make_noise(CONDITIONS[key][1])
    rows.setdefault(
        "noisy input",
        [score(n, crop(c, side), crop(x, side), 0.0) for (n, c), x in zip(images, noisy)],
    )
    for method, checkpoint in models.items():
        if method in rows:
            continue
        log(f"{key}: scoring {method}")
        denoiser, _ = denoiser_from_checkpoint(
            checkpoint, InferenceConfig(device="cpu", batch_size=4)
        )
        method_rows = []
        for (name, clean), x in zip(images, noisy):
            t0 = time.perf_counter()
            out = denoiser(x)
            method_rows.append(
                score(name, crop(clean, side), crop(out, side), time.perf_counter() - t0)
            )
        rows[method] = method_rows
        path.write_text(json.dumps(rows, indent=1))
    bm3d_name = "bm3d (PSD)" if hasattr(noise, "psd") else "bm3d (sigma)"
    if bm3d_name not in rows:
        log(f"{key}: scoring {bm3d_name}")
        method_rows = []
        for (name, clean), x in zip(images, noisy):
            clean, x = crop(clean, side), crop(x, side)
            t0 = time.perf_counter()
            if hasattr(noise, "psd"):
                out = make_baseline("bm3d", psd=noise.psd(clean, clean.shape))(x)
            else:
                out = make_baseline("bm3d", noise.std(clean))(x)
            method_rows.append(score(name, clean, out, time.perf_counter() - t0))
        rows[bm3d_name] = method_rows
        path.write_text(json.dumps(rows, indent=1))
    return rows


def summarize_rows(
    rows: dict[str, list[dict[str, Any]]], comparisons: list[tuple[str, str]]
) -> dict[str, Any]:
    means = {
        m: {"psnr": summarize([r["psnr"] for r in rs]), "ssim": summarize([r["ssim"] for r in rs])}
        for m, rs in rows.items()
    }
    diffs = {}
    for a, b in comparisons:
        if a in rows and b in rows:
            diffs[f"{a} - {b}"] = {
                "psnr": paired_difference(
                    [r["psnr"] for r in rows[a]], [r["psnr"] for r in rows[b]]
                ),
                "ssim": paired_difference(
                    [r["ssim"] for r in rows[a]], [r["ssim"] for r in rows[b]]
                ),
            }
    return {"methods": means, "paired": diffs}


def markdown(results: dict[str, Any]) -> str:
    lines = []
    for cond in results["conditions"].values():
        lines += [
            f"#### {cond['label']}",
            "",
            "| method | PSNR (dB) | 95% CI | SSIM |",
            "|---|---|---|---|",
        ]
        for m, s in cond["summary"]["methods"].items():
            p = s["psnr"]
            lines.append(
                f"| {m} | {p['mean']:.2f} | [{p['ci_low']:.2f}, {p['ci_high']:.2f}] | "
                f"{s['ssim']['mean']:.3f} |"
            )
        lines += ["", "| paired difference | PSNR (dB) | 95% CI | SSIM |", "|---|---|---|---|"]
        for name, d in cond["summary"]["paired"].items():
            p = d["psnr"]
            lines.append(
                f"| {name} | {p['mean']:+.2f} | [{p['ci_low']:+.2f}, {p['ci_high']:+.2f}] | "
                f"{d['ssim']['mean']:+.3f} |"
            )
        lines.append("")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    """The options of this script."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "runs" / "adapt_benchmark")
    parser.add_argument(
        "--minutes", type=float, default=15.0, help="training budget of each adapt and oracle run"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--conditions",
        default=",".join(CONDITIONS),
        help=f"comma-separated: {', '.join(CONDITIONS)}",
    )
    parser.add_argument(
        "--methods", default="fitted,blindspot", help="adapt methods to run (comma-separated)"
    )
    parser.add_argument(
        "--folders", type=Path, nargs="+", default=DEFAULT_FOLDERS, help="test image folders"
    )
    parser.add_argument(
        "--max-images", type=int, help="use the first N test images only (smoke runs)"
    )
    parser.add_argument(
        "--score-crop",
        type=int,
        default=512,
        help="score on the central square of this side (0: whole images)",
    )
    parser.add_argument(
        "--steps", default="adapt,oracle,score", help="comma-separated: adapt, oracle, score"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    images = test_images(args.folders)[: args.max_images]
    log(f"{len(images)} test images: {[n for n, _ in images]}; load average {os.getloadavg()}")
    clean_dir = args.folders[0]  # recorded in the oracle's config as its data root
    results: dict[str, Any] = {
        "command": "python scripts/adapt_benchmark.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "shipped_model": str(SHIPPED_MODEL.relative_to(PROJECT_ROOT)),
        "shipped_model_info": json.loads(SHIPPED_MODEL.with_suffix(".json").read_text()).get(
            "shipped"
        )
        if SHIPPED_MODEL.with_suffix(".json").is_file()
        else None,
        "images": [{"image": n, "shape": list(p.shape)} for n, p in images],
        "minutes": args.minutes,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "score_crop": args.score_crop or None,
        "conditions": {},
    }
    earlier = args.out / "results.json"
    if earlier.is_file():  # conditions scored by an earlier invocation are kept
        results["conditions"] = json.loads(earlier.read_text()).get("conditions", {})
    for key in args.conditions.split(","):
        label, noise_cfg = CONDITIONS[key]
        folder = args.out / key
        noisy = write_noisy(images, noise_cfg, args.seed, folder / "noisy")
        steps = args.steps.split(",")
        runs: dict[str, Any] = {}
        models = {"shipped model as is": SHIPPED_MODEL}
        for method in [m for m in args.methods.split(",") if m]:
            if "adapt" in steps or (folder / f"adapt_{method}" / "adapt.json").is_file():
                runs[f"adapt {method}"] = {
                    **run_adapt(
                        folder / "noisy",
                        folder / f"adapt_{method}",
                        method,
                        args.minutes,
                        args.threads,
                        args.seed,
                    )
                }
                models[f"adapt {method}"] = folder / f"adapt_{method}" / "checkpoints" / "best.pt"
        if "oracle" in steps or (folder / "oracle" / "oracle.json").is_file():
            runs["oracle"] = {
                **run_oracle(
                    clean_dir,
                    images,
                    noise_cfg,
                    folder / "oracle",
                    args.minutes,
                    args.threads,
                    args.seed,
                )
            }
            models["supervised oracle"] = folder / "oracle" / "checkpoints" / "best.pt"
        if "score" not in steps:
            continue
        rows = evaluate_condition(
            key, images, noisy, models, folder, args.threads, args.score_crop or None
        )
        adapted = [m for m in models if m.startswith("adapt")]
        bm3d = "bm3d (PSD)" if "bm3d (PSD)" in rows else "bm3d (sigma)"
        comparisons = [
            (a, b) for a in adapted for b in ("shipped model as is", "supervised oracle", bm3d)
        ]
        comparisons += [("supervised oracle", "shipped model as is")]
        if len(adapted) == 2:
            comparisons.append((adapted[0], adapted[1]))
        results["conditions"][key] = {
            "command": results["command"],
            "date": results["date"],
            "label": label,
            "noise": noise_cfg.model_dump(mode="json"),
            "runs": runs,
            "rows": rows,
            "summary": summarize_rows(rows, comparisons),
        }
        (args.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        print(markdown({"conditions": {key: results["conditions"][key]}}), flush=True)
    if results["conditions"]:
        (args.out / "results.md").write_text(markdown(results))
    log(f"results: {args.out / 'results.json'}, {args.out / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
