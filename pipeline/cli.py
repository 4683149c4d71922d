"""The `denoise` command: a thin layer over the Python API (no logic of its own).

Errors a user can cause end in one line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline import __version__
from pipeline.apply import apply_folder
from pipeline.apply.api import OUTPUT_FORMATS
from pipeline.checkpoint import SHIPPED_MODEL
from pipeline.config import describe_defaults, load_config
from pipeline.errors import PipelineError
from pipeline.inference import DEFAULT_BATCH_SIZE, DEFAULT_OVERLAP, DEFAULT_TILE_SIZE
from pipeline.ingest.fetch import fetch_dataset
from pipeline.runner import compare, format_summary, run


def _add_config_args(p: argparse.ArgumentParser, config_required: bool) -> None:
    p.add_argument("config", nargs=None if config_required else "?", type=Path, help="YAML config file (see configs/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.epochs=5 (repeatable)")


def cmd_run(args: argparse.Namespace) -> int:
    result = run(load_config(args.config, args.overrides))
    if result.summary:
        print(format_summary(result.summary))
    print(f"run folder: {result.run_dir}")
    if result.report:
        print(f"report: {result.report}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    overrides = ["run.stages=[evaluate, report]", *args.overrides]
    if args.config is None:
        overrides.insert(0, "run.name=evaluate")
    if args.data is not None:
        overrides += ["data.kind=folder", "data.root=null", f"data.test_root={args.data}"]
    if args.baselines:
        overrides.append(f"evaluate.baselines=[{args.baselines}]")
    cfg = load_config(args.config, overrides)
    models = list(args.model) or list(cfg.evaluate.models) or [SHIPPED_MODEL]
    cfg.evaluate.models = models
    result = run(cfg)
    print(format_summary(result.summary))
    print(f"report: {result.report}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    configs = [load_config(path, args.overrides) for path in args.configs]
    baselines = [b.strip() for b in args.baselines.split(",") if b.strip()] if args.baselines is not None else None
    result = compare(configs, list(args.model), baselines)
    print(format_summary(result.summary))
    print(f"report: {result.report}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    dest = fetch_dataset(args.name, args.dest, base_url=args.url, progress=not args.no_progress)
    print(f"{args.name} is ready in {dest}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    if args.defaults or args.config is None:
        print(describe_defaults())
    else:
        print(load_config(args.config, args.overrides).to_yaml(), end="")
    return 0


def add_apply_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``denoise apply``."""
    parser.add_argument("-i", "--input", required=True, type=Path, help="folder of scans to denoise (read only)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output folder (mirrors the input tree; not inside the input)")
    parser.add_argument("--model", type=Path, help="checkpoint or run folder (default: the shipped radiograph model)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, help="output format (default: the input's; JPEG becomes PNG)")
    parser.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE, help=f"tile side for large images (default {DEFAULT_TILE_SIZE})")
    parser.add_argument("--overlap", type=float, default=DEFAULT_OVERLAP, help=f"overlap of neighbouring tiles (default {DEFAULT_OVERLAP})")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run the model (default auto)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"tiles per forward pass (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--overwrite", action="store_true", help="redo outputs that already exist (default: skip them)")
    parser.add_argument("--num-parts", type=int, help="split the sorted file list into this many parts (independent jobs)")
    parser.add_argument("--part-id", type=int, help="the part this job handles: files i with i %% num-parts == part-id")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-report", action="store_true", help="no report.html")


def cmd_apply(args: argparse.Namespace) -> int:
    """Run ``denoise apply``; print a summary and where the records are; exit status."""
    if (args.num_parts is None) != (args.part_id is None):
        raise PipelineError("give --num-parts and --part-id together (e.g. --num-parts 4 --part-id 0)")
    result = apply_folder(
        args.input, args.output, args.model, fmt=args.format, tile_size=args.tile_size,
        overlap=args.overlap, device=args.device, batch_size=args.batch_size, overwrite=args.overwrite,
        num_parts=args.num_parts, part_id=args.part_id, progress=not args.no_progress, report=not args.no_report,
    )
    print(result.summary())
    print(f"manifest: {result.manifest}")
    print(f"failures: {result.failures}" + (f" ({result.failed} files)" if result.failed else " (none)"))
    if result.report is not None:
        print(f"report: {result.report}")
    elif result.num_parts > 1:
        print(
            "part files are merged into manifest.csv (and the report written) by torchrun's rank 0, "
            "or else by one run without --num-parts once every part is done"
        )
    return result.exit_code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="denoise", description="Denoise radiographs and other scans; train and evaluate denoisers.")
    parser.add_argument("--version", action="version", version=f"denoise-pipeline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the stages a config lists (train, evaluate, report)")
    _add_config_args(p, config_required=True)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("evaluate", help="compare models and classical baselines on clean images with synthetic noise")
    _add_config_args(p, config_required=False)
    p.add_argument("--data", type=Path, help="folder of clean images to evaluate on (all of them)")
    p.add_argument("--model", action="append", default=[], type=Path,
                   help="checkpoint or run folder (repeatable); default: the shipped radiograph model")
    p.add_argument("--baselines", help="comma-separated classical baselines: bm3d,nlm,tv,wavelet,median")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="train several configs and compare them with baselines on the first one's test images")
    p.add_argument("configs", nargs="+", type=Path, help="YAML configs; the first decides data, noise and seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field in every config, e.g. --set train.epochs=5")
    p.add_argument("--model", action="append", default=[], type=Path, help="also compare this checkpoint or run folder")
    p.add_argument("--baselines", help="comma-separated classical baselines (default: the first config's evaluate.baselines)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("apply", help="denoise every image under a folder into another folder")
    add_apply_arguments(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("adapt", help="fine-tune a model on your own noisy scans, without clean images (self-supervised)")
    from pipeline.adapt import add_adapt_arguments, adapt_from_args

    add_adapt_arguments(p)
    p.set_defaults(func=adapt_from_args)

    p = sub.add_parser("fetch-data", help="download a public data set (mnist, openi) with resume and checksums")
    p.add_argument("name", choices=["mnist", "openi"])
    p.add_argument("--dest", type=Path, required=True, help="folder to put the data in")
    p.add_argument("--url", help="base URL of a mirror (default: the public source)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser("config", help="print the defaults, or validate a config and print it resolved")
    _add_config_args(p, config_required=False)
    p.add_argument("--defaults", action="store_true", help="print every field with its default and description")
    p.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
