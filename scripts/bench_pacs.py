"""Throughput of ``denoise apply`` over DICOMweb against a folder run on the same files and model.

``--files`` synthetic 12-bit CR DICOMs of ``--size`` x ``--size`` are uploaded to a real
Orthanc (Debian's orthanc + orthanc-dicomweb, started on free local ports in a temporary
folder, as the tests do). Both passes run in this process with the model loaded once,
alternating ``--repeats`` times (medians reported):

- folder: :func:`pipeline.apply.apply_folder` on the files on disk;
- DICOMweb: :func:`pipeline.pacs.dicomweb.apply_dicomweb` on their study: QIDO-RS search,
  then WADO-RS retrieval, folder runs on the batches that arrived and STOW-RS of the derived
  series (each verified by a search) overlapping one another, each pass into a new output
  folder and a new upload of the study.

    python scripts/bench_pacs.py                                # shipped model, 4 files of 1024²
    python scripts/bench_pacs.py --files 8 --size 2048 --device cuda --out bench_pacs.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [
    str(PROJECT_ROOT),
    str(PROJECT_ROOT / "tests"),
]  # this checkout; the tests' Orthanc launcher

from orthanc_server import USER, start_orthanc, write_radiograph

from pipeline.apply import ApplyOptions, apply_folder
from pipeline.config import InferenceConfig
from pipeline.pacs.auth import PASSWORD_VAR, USER_VAR
from pipeline.pacs.dicomweb import Server, apply_dicomweb, load_run_model
from pipeline.pacs.select import Selection


def _study(folder: Path, n: int, size: int) -> tuple[str, list[Path]]:
    from pydicom.uid import generate_uid

    study, series = generate_uid(), generate_uid()
    return study, [
        write_radiograph(folder / f"{i}.dcm", study, series, i + 1, seed=i, shape=(size, size))
        for i in range(n)
    ]


def _rates(seconds: float, n: int, size: int) -> dict[str, float]:
    return {
        "seconds": round(seconds, 3),
        "megapixels_per_s": round(n * size * size / 1e6 / seconds, 4),
        "instances_per_min": round(60 * n / seconds, 2),
    }


def measure(args: argparse.Namespace, root: Path) -> dict:
    """Alternate folder and DICOMweb passes; per-pass rates and medians."""
    commit = _commit()  # before the passes: the code measured is the code imported now
    loaded, _sha = load_run_model(args.model)
    options = ApplyOptions(fmt="dicom", progress=False, report=False)
    inference = InferenceConfig(tile_size=args.tile_size, device=args.device)
    orthanc = start_orthanc(root / "orthanc")
    os.environ[USER_VAR], os.environ[PASSWORD_VAR] = USER, orthanc.password
    server = Server(orthanc.dicomweb)
    passes: dict[str, list[dict]] = {"folder": [], "dicomweb": []}
    try:
        for r in range(args.repeats):
            study, files = _study(root / f"in{r}", args.files, args.size)
            start = time.perf_counter()
            apply_folder(root / f"in{r}", root / f"folder{r}", loaded, options, inference)
            passes["folder"].append(_rates(time.perf_counter() - start, args.files, args.size))
            for path in files:
                orthanc.upload(path)
            start = time.perf_counter()
            result = apply_dicomweb(
                server,
                Selection(studies=(study,)),
                root / f"web{r}",
                loaded,
                destination=server,
                options=options,
                inference=inference,
            )
            passes["dicomweb"].append(_rates(time.perf_counter() - start, args.files, args.size))
            assert not result.failures and result.stored.sent == args.files, result.summary()
    finally:
        orthanc.stop()
    median = {k: statistics.median(p["megapixels_per_s"] for p in v) for k, v in passes.items()}
    return {
        "passes": passes,
        "median_megapixels_per_s": median,
        "ratio_dicomweb_to_folder": round(median["dicomweb"] / median["folder"], 3),
        "model": loaded.identity,
        "files": args.files,
        "size": args.size,
        "tile_size": args.tile_size,
        "device": args.device,
        "load_average": os.getloadavg(),
        "commit": commit,
    }


def _commit() -> str:
    """The checkout's commit (with ``+changes`` when files differ from it), or "unknown"."""
    import subprocess

    try:
        run = [
            subprocess.run(
                cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30, check=True
            ).stdout
            for cmd in (
                ["git", "rev-parse", "--short", "HEAD"],
                ["git", "status", "--porcelain", "--untracked-files=no"],
            )
        ]
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return run[0].strip() + ("+changes" if run[1].strip() else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--model", help="checkpoint or run folder (default: the shipped model)")
    parser.add_argument("--tile-size", type=int, default=512)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(args, Path(tmp))
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
