"""What a benchmark run measures: its settings (from the command line or a results.json), data
folders, defaults."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.checkpoint import SHIPPED_MODEL

USAGE = """Benchmark on this machine: denoising quality (MNIST, radiographs) and speed.

Writes ``<out>/RESULTS.md`` (headline first, then detail tables) and the machine-readable
``<out>/results.json``. Every section records the command, git commit, date and machine
it was measured with. Per-image metrics and any models trained here go to ``--work``
(default ``runs/benchmark/<timestamp>``, git-ignored).

    python scripts/benchmark.py                    # full run (see --help for the parts)
    python scripts/benchmark.py --quick --out /tmp/bench   # smoke run, a few minutes
    python scripts/benchmark.py --only speed       # one part; merged into an existing results.json

Quality: every method of a table sees the same images and the same seeded noise
(:func:`pipeline.evaluate.evaluate`, one seed); BM3D may run on the first N of them only,
and its paired differences use those images. Speed: medians of several timed runs after
a warm-up (a warm-up slower than ``--slow-seconds`` counts as the first run); ratios are
taken within the same run.
"""
#: Row order of the tables (methods not listed follow in order of appearance).
ROW_ORDER = (
    "noisy",
    "tv",
    "nlm",
    "bm3d",
    "dense",
    "conv",
    "best",
    "unet",
    "dncnn",
    "dense64",
    "conv64",
)
CXR_NETWORKS = ("conv", "unet", "dncnn")
LOWRES_NETWORKS = ("dense64", "conv64")
LOWRES_SIZE = 64
#: Inside the shared data: the radiograph PNGs, the NIH ones (the speed part's input image, a
#: synthetic one without them) and the 64-px models' training data.
CXR_PNG, NIH_PNG, LOWRES = (
    Path("cxr/png"),
    Path("cxr/png/nih_chestxray14"),
    Path("cxr/lowres/nih1000_64px"),
)
#: Settings fields that say where this run happens, not what it measures: not recorded.
WHERE = {"recorded": False}
#: Defaults of the full run and of --quick (explicit options override either).
FULL: dict[str, Any] = {
    "mnist_images": 1000,
    "mnist_bm3d_images": 200,
    "epochs": None,
    "max_train": None,
    "cxr_crop": 512,
    "cxr_images": None,
    "sizes": [512, 1024, 2048],
    "bm3d_max_size": 1024,
    "repeats": 3,
    "matmul_n": 2048,
    "train_patch": 128,
    "split_views": [512, 0],
    "split_images": None,
}
QUICK: dict[str, Any] = {
    "mnist_images": 100,
    "mnist_bm3d_images": 10,
    "epochs": 2,
    "max_train": 2000,
    "cxr_crop": 128,
    "cxr_images": 3,
    "sizes": [128, 256],
    "bm3d_max_size": 256,
    "repeats": 2,
    "matmul_n": 2048,
    "train_patch": 64,
    "split_views": [128],
    "split_images": 3,
}


@dataclass
class Settings:
    """Everything a benchmark run needs, resolved from the command line.

    Stored as data in every section of results.json (``provenance.settings``, see
    :meth:`to_dict`), so a later script reads them back with :meth:`from_dict`.
    """

    out: Path
    work: Path
    parts: tuple[str, ...] = ("quality", "speed", "split")
    quick: bool = False
    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    command: str = ""
    project: Path = field(
        default_factory=Path.cwd, metadata=WHERE
    )  # the checkout: configs/, benchmarks/
    shared_data: Path | None = field(default=None, metadata=WHERE)  # None: ../shared/data beside it
    mnist_root: Path | None = None
    mnist_images: int = 1000
    mnist_bm3d_images: int = 200
    mnist_models: dict[str, str | None] = field(default_factory=dict)
    epochs: int | None = None
    max_train: int | None = None
    train: bool = True
    cxr_dirs: list[Path] = field(
        default_factory=list
    )  # empty: the test part of the radiograph patient split
    cxr_crop: int | None = 512
    cxr_images: int | None = None
    cxr_models: dict[str, str | None] = field(default_factory=dict)
    tile_size: int | None = None
    bm3d: bool = True
    sizes: list[int] = field(default_factory=lambda: [512, 1024, 2048])
    bm3d_max_size: int = 1024
    repeats: int = 3
    slow_seconds: float = 10.0
    matmul_n: int = 2048
    train_patch: int = 128
    train_batch: int = 16
    apply_bench: bool = True
    split_views: list[int] = field(default_factory=lambda: [512, 0])
    split_images: int | None = None
    split_bm3d_images: int | None = None
    split_bm3d_budget: float | None = None

    def __post_init__(self) -> None:
        self.project = Path(self.project).resolve()
        self.shared_data = (
            Path(self.shared_data)
            if self.shared_data is not None
            else shared_data_beside(self.project)
        )

    @property
    def nih_dir(self) -> Path:
        """The NIH radiograph PNGs of the shared data."""
        return self.shared_data / NIH_PNG

    @property
    def lowres_dir(self) -> Path:
        """The 64-px models' training data (train/, valid/) in the shared data."""
        return self.shared_data / LOWRES

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values of what the run measures; paths beside the checkout relative to it."""
        return {
            f.name: as_recorded(getattr(self, f.name), self.project)
            for f in fields(self)
            if f.metadata.get("recorded", True)
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], project: Path | None = None) -> Settings:
        """Settings recorded by :meth:`to_dict`, their relative paths taken in `project` (default:
        the working folder). Unknown keys are ignored; missing ones keep their defaults."""
        project = Path(project or Path.cwd()).resolve()
        known = {f.name for f in fields(cls) if f.metadata.get("recorded", True)}
        values = {name: data[name] for name in known if name in data}
        for name in ("out", "work", "mnist_root"):
            if values.get(name) is not None:
                values[name] = from_checkout(values[name], project)
        if "cxr_dirs" in values:
            values["cxr_dirs"] = [from_checkout(p, project) for p in values["cxr_dirs"]]
        for name in ("mnist_models", "cxr_models"):
            if name in values:
                values[name] = {
                    k: v if v is None or v == "none" else str(from_checkout(v, project))
                    for k, v in values[name].items()
                }
        if "parts" in values:
            values["parts"] = tuple(values["parts"])
        return cls(**values, project=project)


def shared_data_beside(project: Path) -> Path:
    """The shared data's usual place: ``../shared/data`` beside the checkout."""
    return project.parent / "shared" / "data"


def as_recorded(value: Any, project: Path) -> Any:
    """`value` as written to results.json: JSON, a path (or checkpoint path as text) in the folder
    that holds the checkout `project` made relative to the checkout."""
    if (
        isinstance(value, (Path, str))
        and Path(value).is_absolute()
        and Path(value).is_relative_to(project.parent)
    ):
        return os.path.relpath(value, project)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [as_recorded(v, project) for v in value]
    if isinstance(value, dict):
        return {k: as_recorded(v, project) for k, v in value.items()}
    return value


def from_checkout(text: str | Path, project: Path) -> Path:
    """A recorded or configured path made absolute: relative ones are relative to the checkout
    `project`."""
    path = Path(text)
    return path if path.is_absolute() else Path(os.path.normpath(project / path))


def build_parser() -> argparse.ArgumentParser:
    """The command line (defaults of None are filled from FULL or QUICK)."""
    p = argparse.ArgumentParser(
        description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--quick", action="store_true", help="tiny sizes, few images, 2 epochs: a smoke run"
    )
    p.add_argument(
        "--only",
        choices=["quality", "speed", "split"],
        help="run one part (merged into an existing results.json)",
    )
    p.add_argument(
        "--out",
        type=Path,
        help="where RESULTS.md and results.json go (default <project>/benchmarks)",
    )
    p.add_argument(
        "--work",
        type=Path,
        help="per-image metrics and trained models (default runs/benchmark/<timestamp>)",
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed shared by every method")
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda"],
        default="auto",
        help="auto: also measure the GPU when there is one",
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's, which follows OMP_NUM_THREADS)",
    )
    p.add_argument(
        "--project",
        type=Path,
        help="the checkout: configs/, benchmarks/ (default: the script's own)",
    )
    p.add_argument(
        "--shared-data",
        type=Path,
        help="MNIST and radiographs (default: ../shared/data beside the checkout)",
    )
    g = p.add_argument_group("MNIST (noise 0.5)")
    g.add_argument(
        "--mnist-root",
        type=Path,
        help="MNIST IDX folder (default the shared data's mnist/ when it has t10k, else the "
        "bundled sample)",
    )
    g.add_argument("--mnist-images", type=int, help="test images (full 1000, quick 100)")
    g.add_argument(
        "--mnist-bm3d-images",
        type=int,
        help="first N test images for BM3D, ~0.4 s each (full 200, quick 10)",
    )
    for name in ("dense", "conv", "best"):
        g.add_argument(
            f"--mnist-{name}", metavar="RUN", help=f"{name} model: checkpoint or run folder"
        )
    g.add_argument(
        "--epochs",
        type=int,
        help="epochs when training the MNIST models here (default: the configs' own; quick 2)",
    )
    g.add_argument(
        "--max-train", type=int, help="training images when training here (default all; quick 2000)"
    )
    g.add_argument(
        "--no-train", action="store_true", help="do not train missing MNIST models: skip them"
    )
    g = p.add_argument_group("radiographs")
    g.add_argument(
        "--cxr-dirs",
        type=Path,
        nargs="+",
        help="test image folders (default: the test part of the earlier radiograph patient split, "
        "configs/cxr_shipped_xray.yaml)",
    )
    g.add_argument(
        "--cxr-crop", type=int, help="center crop side, 0 = whole images (full 512, quick 128)"
    )
    g.add_argument(
        "--cxr-images", type=int, help="use at most this many test images (default all; quick 3)"
    )
    for name in (*CXR_NETWORKS, *LOWRES_NETWORKS):
        extra = " (default: the shipped model when present)" if name == "unet" else ""
        g.add_argument(
            f"--cxr-{name}",
            metavar="RUN",
            help=f"{name} checkpoint or run folder; 'none' skips it{extra}",
        )
    g.add_argument(
        "--tile-size",
        type=int,
        help="denoise large images in tiles of this size (default whole images)",
    )
    g.add_argument("--skip-bm3d", action="store_true", help="leave BM3D out everywhere")
    g = p.add_argument_group("speed")
    g.add_argument(
        "--sizes", type=int, nargs="+", help="square sizes (full 512 1024 2048; quick 128 256)"
    )
    g.add_argument(
        "--bm3d-max-size", type=int, help="measure BM3D only up to this size (~35 s/MP; full 1024)"
    )
    g.add_argument(
        "--repeats", type=int, help="timed runs per figure after the warm-up (full 3, quick 2)"
    )
    g.add_argument(
        "--slow-seconds",
        type=float,
        default=10.0,
        help="a warm-up slower than this counts as a timed run",
    )
    g.add_argument(
        "--matmul-n", type=int, help="side of the float32 matmul that measures peak (2048)"
    )
    g.add_argument(
        "--train-patch", type=int, help="patch side for training throughput (full 128, quick 64)"
    )
    g.add_argument(
        "--train-batch",
        type=int,
        default=16,
        help="patches per training step (configs/cxr_shipped.yaml: 16)",
    )
    g.add_argument(
        "--no-apply-bench",
        action="store_true",
        help="skip bench.apply_speed (peak memory of `denoise apply`)",
    )
    g = p.add_argument_group(
        "radiographs split by patient (the five-source acceptance, the shipped model or --cxr-unet)"
    )
    g.add_argument(
        "--split-views",
        type=int,
        nargs="+",
        help="centre crop sides, 0 = whole images (full 512 0, quick 128)",
    )
    g.add_argument(
        "--split-images",
        type=int,
        help="the first N test images of the split only (default all 23; quick 3)",
    )
    g.add_argument(
        "--split-bm3d-images",
        type=int,
        help="BM3D on the first N of them only (default all; ~90 s per whole image)",
    )
    g.add_argument(
        "--split-bm3d-budget",
        type=float,
        help="per view: start no BM3D image after this many seconds",
    )
    return p


def _pick(args: argparse.Namespace, name: str) -> Any:
    value = getattr(args, name)
    return value if value is not None else (QUICK if args.quick else FULL)[name]


def _default_mnist_root(shared_data: Path) -> Path | None:
    shared = shared_data / "mnist"
    return shared if any(shared.glob("t10k-images-idx3-ubyte*")) else None


def _cxr_model_arg(args: argparse.Namespace, name: str) -> str | None:
    value = getattr(args, f"cxr_{name}")
    if value is None and name == "unet" and SHIPPED_MODEL.is_file():
        return str(SHIPPED_MODEL)
    return value


def settings_from_args(argv: list[str] | None = None, project: Path | None = None) -> Settings:
    """Parse the command line into :class:`Settings`; `project` is the checkout when ``--project``
    is not given (else the working folder)."""
    args = build_parser().parse_args(argv)
    project = Path(args.project or project or Path.cwd()).resolve()
    shared_data = args.shared_data or shared_data_beside(project)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    crop = _pick(args, "cxr_crop")
    return Settings(
        out=args.out or project / "benchmarks",
        work=args.work or project / "runs" / "benchmark" / stamp,
        project=project,
        shared_data=shared_data,
        parts=(args.only,) if args.only else ("quality", "speed", "split"),
        quick=args.quick,
        seed=args.seed,
        device=args.device,
        threads=args.threads,
        command=shlex.join(
            ["python", "scripts/benchmark.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        mnist_root=args.mnist_root
        if args.mnist_root is not None
        else _default_mnist_root(shared_data),
        mnist_images=_pick(args, "mnist_images"),
        mnist_bm3d_images=_pick(args, "mnist_bm3d_images"),
        mnist_models={n: getattr(args, f"mnist_{n}") for n in ("dense", "conv", "best")},
        epochs=_pick(args, "epochs"),
        max_train=_pick(args, "max_train"),
        train=not args.no_train,
        cxr_dirs=args.cxr_dirs or [],
        cxr_crop=crop or None,
        cxr_images=_pick(args, "cxr_images"),
        cxr_models={n: _cxr_model_arg(args, n) for n in (*CXR_NETWORKS, *LOWRES_NETWORKS)},
        tile_size=args.tile_size,
        bm3d=not args.skip_bm3d,
        sizes=_pick(args, "sizes"),
        bm3d_max_size=_pick(args, "bm3d_max_size"),
        repeats=_pick(args, "repeats"),
        slow_seconds=args.slow_seconds,
        matmul_n=_pick(args, "matmul_n"),
        train_patch=_pick(args, "train_patch"),
        train_batch=args.train_batch,
        apply_bench=not args.no_apply_bench,
        split_views=_pick(args, "split_views"),
        split_images=_pick(args, "split_images"),
        split_bm3d_images=args.split_bm3d_images,
        split_bm3d_budget=args.split_bm3d_budget,
    )
