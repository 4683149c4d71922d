"""The `denoise` command: a thin layer over the Python API (no logic of its own).

Errors a user can cause end in one line on stderr and exit status 2, never a traceback;
any other error is a bug and ends in one line and exit status 3.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline._mplcache import (
    exit_on_sigterm,
    no_onnxruntime_telemetry,
    use_private_matplotlib_cache,
)

# The denoise command keeps libraries' caches out of $HOME: set before the imports below load
# matplotlib (MONAI imports it) or onnxruntime. Importing the library elsewhere changes nothing.
use_private_matplotlib_cache()
no_onnxruntime_telemetry()

from pipeline.apply import ApplyOptions, apply_folder
from pipeline.apply.options import OUTPUT_FORMATS
from pipeline.baselines import BASELINES
from pipeline.checkpoint import SHIPPED_MODEL
from pipeline.config import (
    MAX_OVERLAP,
    GaussianNoiseConfig,
    describe_defaults,
    load_config,
    merge_settings,
)
from pipeline.errors import PipelineError, given_path
from pipeline.inference import DEFAULT_INFERENCE, settings_from_options
from pipeline.ingest.fetch import fetch_dataset
from pipeline.logs import WarningPrinter as _WarningPrinter
from pipeline.logs import setup_logging, verbosity_level
from pipeline.pacs.cli import (
    add_dicomweb_arguments,
    add_listen_arguments,
    check_folder_options,
    cmd_apply_dicomweb,
    cmd_listen,
)
from pipeline.pacs.dicomweb import parse_input
from pipeline.runner import compare, format_summary, noise_description, run

#: Test noise of ``denoise evaluate --data`` without a config: white Gaussian noise of sigma
#: 25/255, a common radiograph denoising condition (the shipped model was trained on 0-50/255).
RADIOGRAPH_NOISE = GaussianNoiseConfig(sigma=round(25 / 255, 6))
RUNS_WHERE = (
    "results go to runs/<run.name>/<timestamp>/ under the current directory (run.output_dir)"
)


def _add_config_args(
    p: argparse.ArgumentParser, config_required: bool, example: str = "train.epochs=5"
) -> None:
    p.add_argument(
        "config",
        nargs=None if config_required else "?",
        type=Path,
        help="YAML config file (see configs/)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config field, e.g. --set {example} (repeatable)",
    )


def _baseline_names(text: str) -> list[str]:
    """The names of a comma-separated --baselines value; an unknown one is a user error."""
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise PipelineError(
            f"--baselines: unknown baseline {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(BASELINES)}"
        )
    return names


def cmd_run(args: argparse.Namespace) -> int:
    """``denoise run``: train and evaluate one config; print the summary and the run folder."""
    result = run(load_config(args.config, args.overrides))
    if result.summary:
        print(format_summary(result.summary))
    print(f"run folder: {result.run_dir}")
    if result.report:
        print(f"report: {result.report}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``denoise evaluate``: score models and baselines on clean images with synthetic noise."""
    if args.config is None and args.data is None:
        raise PipelineError(
            "evaluate needs clean test images: --data FOLDER (every image in it gets synthetic "
            "noise), or a CONFIG whose data section names them (e.g. configs/cxr_quick.yaml)"
        )
    if args.data is not None and not args.data.exists():
        raise PipelineError(
            f"--data {args.data}: no such folder or file (give a folder of clean images)"
        )
    cfg = load_config(
        args.config, args.overrides, settings=_evaluate_settings(args), fixed=_evaluate_fixed(args)
    )
    default = (
        " (the radiograph default for --data; change it with --set noise.sigma=...)"
        if args.config is None
        else ""
    )
    noise = cfg.evaluate.noise or cfg.noise
    print(f"evaluate: test noise {noise.kind} ({noise_description(cfg)}){default}", flush=True)
    models = list(args.model) or list(cfg.evaluate.models) or [SHIPPED_MODEL]
    cfg = cfg.model_copy(update={"evaluate": cfg.evaluate.model_copy(update={"models": models})})
    result = run(cfg)
    print(format_summary(result.summary))
    print(f"report: {result.report}")
    return 0


def _evaluate_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Settings of ``denoise evaluate`` that its --set options may change."""
    settings: dict[str, Any] = {"run": {"stages": ["evaluate", "report"]}}
    if args.config is None:  # --data: scans, not the MNIST tutorial's noise (sigma 0.5)
        settings = merge_settings(
            {"noise": RADIOGRAPH_NOISE.model_dump(), "run": {"name": "evaluate"}}, settings
        )
    return settings


def _evaluate_fixed(args: argparse.Namespace) -> dict[str, Any]:
    """Settings of ``denoise evaluate`` given by its own options (over --set)."""
    fixed: dict[str, Any] = {}
    if args.data is not None:
        fixed["data"] = {"kind": "folder", "root": None, "test_root": args.data}
    if args.baselines:
        fixed["evaluate"] = {"baselines": _baseline_names(args.baselines)}
    return fixed


def cmd_compare(args: argparse.Namespace) -> int:
    """``denoise compare``: evaluate models from several configs on one test set."""
    baselines = _baseline_names(args.baselines) if args.baselines is not None else None
    configs = [load_config(path, args.overrides) for path in args.configs]
    result = compare(configs, list(args.model), baselines)
    print(format_summary(result.summary))
    print(f"report: {result.report}")
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """``denoise fetch-data``: download a data set into its folder."""
    dest = fetch_dataset(args.name, args.dest, base_url=args.url, progress=not args.no_progress)
    print(f"{args.name} is ready in {dest}")
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    """``denoise config``: print the defaults, or a config with its overrides resolved."""
    if args.defaults or args.config is None:
        print(describe_defaults())
    else:
        print(load_config(args.config, args.overrides).to_yaml(), end="")
    return 0


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    """Model and tiled-inference options of ``denoise apply`` and ``denoise listen``."""
    parser.add_argument(
        "--model",
        type=Path,
        help="checkpoint, run folder, or TorchScript/ONNX file from `denoise export` "
        "(default: the shipped radiograph model)",
    )
    default = DEFAULT_INFERENCE
    parser.add_argument(
        "--tile-size",
        type=int,
        default=default.tile_size,
        help=f"tile side for large images (default {default.tile_size})",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=default.overlap,
        help=f"overlap of neighbouring tiles, at most {MAX_OVERLAP} (default {default.overlap})",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to run the model (default auto)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=default.batch_size,
        help=f"tiles per forward pass (default {default.batch_size})",
    )


def add_apply_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``denoise apply``."""
    parser.add_argument(
        "-i",
        "--input",
        required=True,
        help="folder of scans to denoise (read only), or dicomweb:URL "
        "of a DICOMweb server (see the DICOMweb options)",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="output folder (mirrors the input tree; not inside the input)",
    )
    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        help="output format (default: the input's; JPEG becomes PNG)",
    )
    add_inference_arguments(parser)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="redo outputs that already exist (default: skip them)",
    )
    parser.add_argument(
        "--num-parts",
        type=int,
        help="split the sorted file list into this many parts (independent jobs)",
    )
    parser.add_argument(
        "--part-id",
        type=int,
        help="the part this job handles: files i with i %% num-parts == part-id",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--no-report", action="store_true", help="no report.html")
    add_dicomweb_arguments(parser)


def cmd_apply(args: argparse.Namespace) -> int:
    """Run ``denoise apply``; print a summary and where the records are; exit status."""
    given_path(args.output, "-o/--output")
    url = parse_input(args.input)
    if url is not None:
        return cmd_apply_dicomweb(args, url)
    check_folder_options(args)
    if (args.num_parts is None) != (args.part_id is None):
        raise PipelineError(
            "give --num-parts and --part-id together (e.g. --num-parts 4 --part-id 0)"
        )
    options = ApplyOptions(
        args.format,
        args.overwrite,
        args.num_parts,
        args.part_id,
        not args.no_progress,
        not args.no_report,
    )
    result = apply_folder(args.input, args.output, args.model, options, settings_from_options(args))
    print(result.summary())
    print(f"manifest: {result.manifest}")
    print(
        f"failures: {result.failures}"
        + (f" ({result.failed} files)" if result.failed else " (none)")
    )
    if result.report is not None:
        print(f"report: {result.report}")
    elif result.num_parts > 1:
        print(
            "part files are merged into manifest.csv (and the report written) by torchrun's "
            "rank 0, or else by one run without --num-parts once every part is done"
        )
    return result.exit_code


def add_adapt_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``denoise adapt``."""
    from pipeline.adapt import ADAPT_METHODS, DEFAULT_METHOD

    parser.add_argument(
        "-i",
        "--input",
        required=True,
        help="folder of noisy scans (anything `denoise apply` reads)",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="run folder to write (rerun on it to resume after a kill)",
    )
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        help="checkpoint or run folder to start from (default: the shipped model)",
    )
    parser.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=ADAPT_METHODS,
        help=f"adapt method (default: {DEFAULT_METHOD}; see the README)",
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=15.0,
        help="time budget in minutes for reading, preparing and training; the report comes "
        "after it (default: 15)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set train.lr=0.0003 or --set "
        "train.self_supervised.span=[0,2]",
    )


def cmd_adapt(args: argparse.Namespace) -> int:
    """Run ``denoise adapt``; print the checks' means and where the run folder and report are."""
    from pipeline.adapt import adapt

    result = adapt(
        args.input,
        args.output,
        args.source,
        args.method,
        args.minutes,
        args.seed,
        args.threads,
        args.device,
        not args.no_progress,
        args.overrides,
    )
    means = result.record["report_means"]
    print(
        f"noise estimate {means['noise_before']:.4f} -> {means['noise_after']:.4f}; removed "
        f"lag-1 autocorrelation {means['removed_lag1_rows']:+.3f} (rows), "
        f"{means['removed_lag1_columns']:+.3f} (columns)"
    )
    print(f"run folder: {result.run_dir}  (use it with: denoise apply --model {result.run_dir})")
    print(f"report: {result.report}")
    return 0


def _verbosity_options(default: object) -> argparse.ArgumentParser:
    """``-q``/``-v``, accepted before and after the command name."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        help="fewer messages: warnings only (-qq: errors only)",
    )
    options.add_argument(
        "-v", "--verbose", action="count", default=default, help="more messages (debug details)"
    )
    return options


def cmd_export(args: argparse.Namespace) -> int:
    """``denoise export``: write a model as ONNX, TorchScript or a MONAI bundle."""
    if args.format == "monai-bundle":
        from pipeline.bundle import write_bundle

        result = write_bundle(args.model, args.output)
    else:
        from pipeline.export import export_model

        result = export_model(args.model, args.format, args.output)
    print(result.summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of every ``denoise`` command."""
    parser = argparse.ArgumentParser(
        prog="denoise",
        description="Denoise radiographs and other scans; train and evaluate denoisers.",
        parents=[_verbosity_options(0)],
    )
    parser.add_argument("--version", action="version", version=f"denoise-pipeline {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    verbosity = [
        _verbosity_options(argparse.SUPPRESS)
    ]  # after the command, not overwriting the values before it
    _add_run_commands(sub, verbosity)
    _add_model_commands(sub, verbosity)
    _add_tool_commands(sub, verbosity)
    return parser


def _add_run_commands(sub: Any, verbosity: list[argparse.ArgumentParser]) -> None:
    """run, evaluate, compare: commands on configs."""
    p = sub.add_parser(
        "run",
        help="run the stages a config lists (train, evaluate, report)",
        parents=verbosity,
        description=f"Run the stages a config lists (train, evaluate, report); {RUNS_WHERE}.",
    )
    _add_config_args(p, config_required=True)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "evaluate",
        help="compare models and classical baselines on clean images with synthetic noise",
        parents=verbosity,
        description="Add seeded synthetic noise to clean images and score models and baselines "
        "on them; needs --data or a CONFIG. The noise is the config's; with --data alone, "
        "Gaussian sigma 25/255 (a radiograph condition; the first line of output says which); "
        f"{RUNS_WHERE}.",
    )
    _add_config_args(p, config_required=False, example="noise.sigma=0.098")
    p.add_argument(
        "--data",
        type=Path,
        help="folder of clean images to evaluate on (all of them); replaces the config's data",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        type=Path,
        help="checkpoint or run folder (repeatable); default: the shipped radiograph model",
    )
    p.add_argument(
        "--baselines", help="comma-separated classical baselines: bm3d,nlm,tv,wavelet,median"
    )
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser(
        "compare",
        help="train several configs and compare them with baselines on the first one's test images",
        parents=verbosity,
        description="Train several configs, then compare them with baselines on the first one's "
        f"test images; {RUNS_WHERE}.",
    )
    p.add_argument(
        "configs", nargs="+", type=Path, help="YAML configs; the first decides data, noise and seed"
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field in every config, e.g. --set train.epochs=5",
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        type=Path,
        help="also compare this checkpoint or run folder",
    )
    p.add_argument(
        "--baselines",
        help="comma-separated classical baselines (default: the first config's evaluate.baselines)",
    )
    p.set_defaults(func=cmd_compare)


def _add_model_commands(sub: Any, verbosity: list[argparse.ArgumentParser]) -> None:
    """apply, listen, adapt, export: commands that use or make a model."""
    p = sub.add_parser(
        "apply", help="denoise every image under a folder into another folder", parents=verbosity
    )
    add_apply_arguments(p)
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser(
        "listen",
        help="a DICOM node: receive instances (C-STORE), denoise them, forward them to an AE",
        parents=verbosity,
    )
    add_inference_arguments(p)
    add_listen_arguments(p)
    p.set_defaults(func=cmd_listen)

    p = sub.add_parser(
        "adapt",
        help="fine-tune a model on your own noisy scans, without clean images (self-supervised)",
        parents=verbosity,
    )
    add_adapt_arguments(p)
    p.set_defaults(func=cmd_adapt)

    p = sub.add_parser(
        "export",
        help="export a model as TorchScript, ONNX or a MONAI bundle (checked against PyTorch)",
        parents=verbosity,
    )
    p.add_argument(
        "model",
        nargs="?",
        type=Path,
        help="checkpoint or run folder (default: the shipped radiograph model)",
    )
    p.add_argument(
        "--format",
        required=True,
        choices=("torchscript", "onnx", "monai-bundle"),
        help="what to write",
    )
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        help="file (.pt/.ts, .onnx) or bundle folder to write",
    )
    p.set_defaults(func=cmd_export)


def _add_tool_commands(sub: Any, verbosity: list[argparse.ArgumentParser]) -> None:
    """fetch-data, config: data and settings."""
    p = sub.add_parser(
        "fetch-data",
        help="download a public data set (mnist, openi) with resume and checksums",
        parents=verbosity,
    )
    p.add_argument(
        "name",
        choices=["mnist", "openi"],
        help="mnist: the four MNIST IDX files (~11 MiB); openi: the Indiana chest X-ray "
        "collection (large)",
    )
    p.add_argument("--dest", type=Path, required=True, help="folder to put the data in")
    p.add_argument("--url", help="base URL of a mirror (default: the public source)")
    p.add_argument(
        "--no-progress", action="store_true", help="print nothing but errors and the final line"
    )
    p.set_defaults(func=cmd_fetch)

    p = sub.add_parser(
        "config",
        help="print the defaults, or validate a config and print it resolved",
        parents=verbosity,
    )
    _add_config_args(p, config_required=False)
    p.add_argument(
        "--defaults",
        action="store_true",
        help="print every field with its default, its allowed values and description",
    )
    p.set_defaults(func=cmd_config)


def _user_error(err: BaseException) -> str | None:
    """The one-line message for an error the user or the environment caused, else None."""
    from pipeline.text import path_text, short_text

    if isinstance(err, PipelineError):
        return str(err)
    if isinstance(err, OSError) and err.strerror:  # disk full, read-only, a file as a folder...
        where = f"{path_text(err.filename)}: " if err.filename is not None else ""
        return f"{where}{err.strerror}; check the path, its permissions and free space"
    if isinstance(err, MemoryError):
        return (
            "out of memory; process fewer or smaller images at a time (e.g. a smaller --tile-size)"
        )
    if isinstance(err, RecursionError):
        return short_text(f"input nested too deeply ({err})")
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status.

    0: done; 1: apply, some files failed; 2: user error; 3: internal error (a bug; the message says
    so; DENOISE_DEBUG=1 shows the traceback).
    """
    import os

    for stream in (sys.stdout, sys.stderr):  # undecodable file names print as \xNN escapes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(verbosity_level(args.quiet, args.verbose))
    if args.command == "apply":  # before its reader and writer threads start
        from pipeline.process import limit_heap_arenas

        limit_heap_arenas(1)  # memory one thread frees is reused by the others
    shown_before, warnings.showwarning = warnings.showwarning, _WarningPrinter()
    try:
        with exit_on_sigterm():
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept", file=sys.stderr)
        return 130
    except Exception as err:
        from pipeline.text import short_text

        message = _user_error(err)
        if message is not None:
            print(f"error: {message}", file=sys.stderr)
            return 2
        if os.environ.get("DENOISE_DEBUG"):
            raise
        print(
            f"error: internal error ({short_text(f'{type(err).__name__}: {err}', 200)}); this is "
            "a bug: please report it with the command (DENOISE_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 3
    finally:
        warnings.showwarning = shown_before


if __name__ == "__main__":
    raise SystemExit(main())
