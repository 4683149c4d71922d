"""``denoise apply``, ``adapt`` and ``export``: the commands that use or make a model.

``denoise listen`` (a DICOM node) is in :mod:`pipeline.pacs.cli`; it shares
:func:`add_inference_arguments` with ``apply``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.apply import ApplyOptions, apply_folder
from pipeline.apply.options import OUTPUT_FORMATS
from pipeline.commands import add_set_argument
from pipeline.config import MAX_OVERLAP
from pipeline.errors import PipelineError, given_path
from pipeline.inference import DEFAULT_INFERENCE, settings_from_options
from pipeline.pacs.cli import add_dicomweb_arguments, check_folder_options, cmd_apply_dicomweb
from pipeline.pacs.dicomweb import parse_input


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
            "rank 0, "
            "or else by one run without --num-parts once every part is done"
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
        help="time budget in minutes for reading, preparing and training; "
        "the report comes after it (default: 15)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_set_argument(
        parser,
        "override a setting, e.g. --set train.lr=0.0003 or --set train.self_supervised.span=[0,2]",
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
        f"noise estimate {means['noise_before']:.4f} -> {means['noise_after']:.4f}; "
        f"removed lag-1 autocorrelation {means['removed_lag1_rows']:+.3f} (rows), "
        f"{means['removed_lag1_columns']:+.3f} (columns)"
    )
    print(f"run folder: {result.run_dir}  (use it with: denoise apply --model {result.run_dir})")
    print(f"report: {result.report}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Run ``denoise export``: write the model in the asked format; print what was written."""
    if args.format == "monai-bundle":
        from pipeline.bundle import write_bundle

        result = write_bundle(args.model, args.output)
    else:
        from pipeline.export import export_model

        result = export_model(args.model, args.format, args.output)
    print(result.summary())
    return 0


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``denoise export``."""
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
