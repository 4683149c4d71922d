"""What each training-patch augmentation costs per sample (data.augment, data.scan_augment).

    python scripts/augment_cost.py                      # 12 training radiographs, 5 rounds
    python scripts/augment_cost.py --out benchmarks/five_sources_2026-12-07/augment_cost.md

Draws training samples (a 256² patch, its changes, the config's noise) from the first training
radiographs of ``configs/cxr_multisite.yaml``'s split, exactly as training does
(:class:`pipeline.train.data.NoisyPairs`), for each variant in turn, several rounds, and prints
the median milliseconds per sample of each variant and its extra cost over none. Compare with
the seconds per epoch of a run's train_log.csv: the samples are made in ``train.workers``
processes beside the network's step.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

from pipeline.config import load_config
from pipeline.ingest import load_splits
from pipeline.ingest.scan_augment import ScanAugment
from pipeline.noise import make_noise
from pipeline.train.data import NoisyPairs

PROJECT = Path(__file__).resolve().parent.parent

#: name -> (data.augment, data.scan_augment) of each variant measured
VARIANTS: dict[str, tuple[bool, ScanAugment]] = {
    "none": (False, ScanAugment()),
    "flips (data.augment)": (True, ScanAugment()),
    "display (gamma [0.8, 1.25], window 0.05)": (
        False,
        ScanAugment(gamma=(0.8, 1.25), window=0.05),
    ),
    "pixel size (scale [0.8, 1.25])": (False, ScanAugment(scale=(0.8, 1.25))),
    "rotation (rotate 5)": (False, ScanAugment(rotate=5.0)),
    "all of them": (
        True,
        ScanAugment(gamma=(0.8, 1.25), window=0.05, scale=(0.8, 1.25), rotate=5.0),
    ),
}


def training_images(config: Path, count: int) -> list:
    """The first `count` training radiographs of the config's split, loaded as training loads
    them (:func:`pipeline.ingest.load_splits`, references too noisy left out)."""
    cfg = load_config(config)
    data = cfg.data.model_copy(
        update={"root": PROJECT / cfg.data.root, "split_csv": PROJECT / cfg.data.split_csv}
    )
    return [image.pixels for image in load_splits(data, cfg.run.seed).train[:count]]


def per_sample_ms(images: list, noise, augment: bool, scan: ScanAugment, samples: int) -> float:
    """Milliseconds per sample of one pass over `samples` samples."""
    data = NoisyPairs(
        images,
        noise,
        0,
        patch_size=256,
        patches_per_image=max(1, samples // len(images)),
        min_patch_std=0.02,
        augment=augment,
        scan_augment=scan,
    )
    start = time.perf_counter()
    for i in range(len(data)):
        data[i]
    return 1000 * (time.perf_counter() - start) / len(data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=PROJECT / "configs/cxr_multisite.yaml")
    parser.add_argument("--images", type=int, default=12, help="training radiographs used")
    parser.add_argument("--samples", type=int, default=96, help="samples per variant and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    images = training_images(args.config, args.images)
    noise = make_noise(load_config(args.config).noise)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):  # variants in turn, so a change of load hits them alike
        for name, (augment, scan) in VARIANTS.items():
            times[name].append(per_sample_ms(images, noise, augment, scan, args.samples))
    base = statistics.median(times["none"])
    lines = [
        "| variant | ms per sample (median of rounds) | extra over none |",
        "| --- | ---: | ---: |",
    ]
    for name, values in times.items():
        ms = statistics.median(values)
        lines.append(f"| {name} | {ms:.1f} | {ms - base:+.1f} ({(ms / base - 1) * 100:+.0f} %) |")
    lines += [
        "",
        f"*`python scripts/augment_cost.py --images {args.images} --samples {args.samples} "
        f"--rounds {args.rounds}` on {platform.processor() or platform.machine()}: 256² patches "
        f"of the first {args.images} training radiographs with {args.config.name}'s noise, "
        "one process.*",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
