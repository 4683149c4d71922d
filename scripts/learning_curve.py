"""Learning curve: one training recipe on growing parts of the training patients, each scored
against BM3D.

    python scripts/learning_curve.py --config configs/cxr_multisite.yaml --patients 37 100 200 0 \
        --work runs/learning_curve --crop 512 --out benchmarks/learning_curve

For each size N (0: all training patients) the config is run with ``data.max_train_patients=N``
(each source keeps its share; a smaller set is inside every larger one, see
:func:`pipeline.ingest.split_file.subset_rows`), its best checkpoint is scored on the test part of
the five-source split by :mod:`bench.split` (rows and BM3D reused across sizes), and the
PSNR gain over BM3D at X-ray dose 0.25 and Gaussian sigma 25/255 is tabulated and drawn against N.
The config must have ``data.split_csv``. Extra ``--set key=value`` overrides apply to every run
(e.g. a shorter budget: ``--set train.epochs=3``). ``--patches-per-epoch P`` gives every size
the same number of training patches per epoch (``data.patches_per_image`` = ceil(P / training
images of that size)), so each point gets the same optimizer steps and differs only in the
patients it sees. A size whose run folder already has a ``checkpoints/best.pt`` under
``<work>/runs/n<N>`` is not trained again.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

CHECKOUT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(CHECKOUT))  # the checkout: `bench` is not installed

from bench.settings import shared_data_beside
from bench.split import SplitOptions, run_split, test_images
from pipeline.config import load_config
from pipeline.ingest.split_file import read_split_csv, subset_rows
from pipeline.records import write_json
from pipeline.runner import run

#: The conditions the curve follows (keys of bench.noise_conditions.ACCEPTANCE).
CURVE_CONDITIONS = ("xray_dose_0.25", "gaussian_25")


def train_size(
    config: Path,
    patients: int,
    work: Path,
    overrides: list[str],
    patches_per_epoch: int | None = None,
) -> Path:
    """Train the recipe on `patients` training patients (0: all); the best checkpoint's path."""
    out = work / "runs" / f"n{patients}"
    existing = sorted(out.glob("**/checkpoints/best.pt"))
    if existing:
        return existing[-1]
    sets = [f"run.output_dir={out}", "run.stages=[train]", f"run.name=n{patients}", *overrides]
    if patients:
        sets.append(f"data.max_train_patients={patients}")
    cfg = load_config(config, sets)
    if cfg.data.split_csv is None:
        raise SystemExit(
            f"error: {config} has no data.split_csv; the learning curve needs a fixed split"
        )
    if patches_per_epoch:
        images = training_images(cfg.data.split_csv, patients, cfg.run.seed)
        per_image = math.ceil(patches_per_epoch / images)
        cfg = load_config(config, [*sets, f"data.patches_per_image={per_image}"])
    result = run(cfg)
    return result.run_dir / "checkpoints" / "best.pt"


def training_images(split_csv: Path, patients: int, seed: int) -> int:
    """Training images of a split CSV cut to `patients` patients (0: all)."""
    rows = subset_rows(read_split_csv(split_csv), patients or None, seed)
    return sum(r["split"] == "train" for r in rows)


def split_train_patients(config: Path) -> int:
    """Training patients of the config's split CSV (before any reference is left out as too
    noisy)."""
    cfg = load_config(config)
    return len({r["patient"] for r in read_split_csv(cfg.data.split_csv) if r["split"] == "train"})


def gains(result: dict[str, Any], model: str) -> dict[str, dict[str, float]]:
    """Per curve condition: the model's mean PSNR gain over BM3D and its paired 95% CI."""
    out = {}
    for key in CURVE_CONDITIONS:
        vs = result["conditions"][key]["summary"]["methods"][model]["vs_reference"]["psnr"]
        out[key] = {"mean": vs["mean"], "ci_low": vs["ci_low"], "ci_high": vs["ci_high"]}
    return out


def curve_markdown(points: list[dict[str, Any]], command: str) -> str:
    """The table of the curve."""
    lines = [
        f"*Measured with `{command}`.*",
        "",
        "| training patients | "
        + " | ".join(f"ΔPSNR vs BM3D, {k} [95% CI]" for k in CURVE_CONDITIONS)
        + " |",
        "|" + " --- |" * (1 + len(CURVE_CONDITIONS)),
    ]
    for p in points:
        cells = [
            f"{g['mean']:+.2f} [{g['ci_low']:+.2f}, {g['ci_high']:+.2f}]"
            for g in (p["gain"][k] for k in CURVE_CONDITIONS)
        ]
        lines.append(
            f"| {p['patients']}{' (all)' if p.get('all') else ''} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def curve_figure(points: list[dict[str, Any]], path: Path) -> Path:
    """Gain over BM3D against training patients, with the CIs as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    n = [p["patients"] for p in points]
    for key in CURVE_CONDITIONS:
        g = [p["gain"][key] for p in points]
        ax.errorbar(
            n,
            [x["mean"] for x in g],
            yerr=[[x["mean"] - x["ci_low"] for x in g], [x["ci_high"] - x["mean"] for x in g]],
            marker="o",
            capsize=3,
            label=key,
        )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("training patients")
    ax.set_ylabel("ΔPSNR vs BM3D (dB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, required=True)
    p.add_argument(
        "--patients",
        type=int,
        nargs="+",
        default=[37, 100, 200, 0],
        help="training patients per point (0: all)",
    )
    p.add_argument("--work", type=Path, required=True, help="runs and acceptance rows (reused)")
    p.add_argument("--out", type=Path, required=True, help="writes OUT.md, OUT.json, OUT.png")
    p.add_argument(
        "--crop", type=int, default=512, help="centre crop side of the test images (0: whole)"
    )
    p.add_argument("--images", type=int, default=None, help="the first N test images only")
    p.add_argument(
        "--bm3d-images", type=int, default=None, help="BM3D on the first N test images only"
    )
    p.add_argument(
        "--patches-per-epoch",
        type=int,
        default=None,
        help="the same training patches per epoch at every size (equal optimizer steps)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        help="key=value for every training run",
    )
    args = p.parse_args(argv)
    images, description = test_images(CHECKOUT, shared_data_beside(CHECKOUT))
    points = []
    for patients in args.patients:
        checkpoint = train_size(
            args.config, patients, args.work, args.overrides, args.patches_per_epoch
        )
        name = f"n{patients}"
        options = SplitOptions(
            work=args.work / "acceptance",
            models={name: str(checkpoint)},
            crop=args.crop,
            images=args.images,
            bm3d_images=args.bm3d_images,
            only=list(CURVE_CONDITIONS),
        )
        result = run_split(images, description, options)
        points.append(
            {
                "patients": patients or split_train_patients(args.config),
                "all": not patients,
                "checkpoint": str(checkpoint),
                "gain": gains(result, name),
                "n_test_images": len(result["images"]),
            }
        )
    command = "python scripts/learning_curve.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(
        {"command": command, "data": description, "points": points}, args.out.with_suffix(".json")
    )
    args.out.with_suffix(".md").write_text(curve_markdown(points, command))
    curve_figure(points, args.out.with_suffix(".png"))
    print(json.dumps(points, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
