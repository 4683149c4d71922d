"""How long decoding a split's training radiographs takes, per source (is a decoded-image cache
worth it?).

    python scripts/decode_cost.py     # configs/splits/multisite.csv, training part
    python scripts/decode_cost.py --split val \
        --out benchmarks/five_sources_2026-12-07/decode_cost.md

Reads every file of the chosen part with the reader training uses (``pipeline.io.read_image``),
once, in the CSV's order, and prints a Markdown table: files, megapixels, seconds and MP/s per
source and in total, with the float32 memory the decoded images take in a training process.
Compare the total with one epoch's time in a run's train_log.csv.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict
from pathlib import Path

from pipeline.ingest.split_file import read_split_csv
from pipeline.io import read_image

PROJECT = Path(__file__).resolve().parent.parent


def measure(split_csv: Path, root: Path, part: str) -> dict[str, list[float]]:
    """Per source: [files, megapixels, seconds] of decoding every file of `part`."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    for row in read_split_csv(split_csv):
        if row["split"] != part:
            continue
        start = time.perf_counter()
        pixels = sum(image.pixels.size for image in read_image(root / row["file"]))
        entry = totals[row.get("source") or "(none)"]
        entry[0] += 1
        entry[1] += pixels / 1e6
        entry[2] += time.perf_counter() - start
    return dict(totals)


def markdown(totals: dict[str, list[float]], command: str) -> str:
    """The table, with a total row and the command that measured it."""
    lines = ["| source | files | MP | seconds | MP/s |", "| --- | ---: | ---: | ---: | ---: |"]
    rows = sorted(totals.items()) + [
        ("all", [sum(v[i] for v in totals.values()) for i in range(3)])
    ]
    for source, (files, mp, seconds) in rows:
        lines.append(
            f"| {source} | {int(files)} | {mp:.0f} | {seconds:.1f} | "
            f"{mp / max(seconds, 1e-9):.1f} |"
        )
    total_mp = rows[-1][1][1]
    lines.append("")
    lines.append(
        f"Decoded as float32 the images take {total_mp * 4 / 1024:.2f} GiB in the training process."
    )
    lines.append(f"*`{command}` on {platform.processor() or platform.machine()}.*")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split-csv", type=Path, default=PROJECT / "configs/splits/multisite.csv")
    parser.add_argument(
        "--root",
        type=Path,
        default=PROJECT.parent / "shared/data/cxr/png",
        help="the folder the CSV's files are relative to (default ../shared/data/cxr/png)",
    )
    parser.add_argument("--split", default="train", choices=["train", "val", "test"])
    parser.add_argument("--out", type=Path, help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        raise SystemExit(
            f"error: {args.root} not found: the shared radiographs are needed (--root)"
        )
    command = "python scripts/decode_cost.py" + (
        f" --split {args.split}" if args.split != "train" else ""
    )
    table = markdown(measure(args.split_csv, args.root, args.split), command)
    print(table, end="")
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
