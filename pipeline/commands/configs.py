"""``denoise run``, ``evaluate`` and ``compare``: the commands on configs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pipeline.baselines import BASELINES
from pipeline.checkpoint import SHIPPED_MODEL
from pipeline.commands import add_set_argument
from pipeline.config import GaussianNoiseConfig, load_config, merge_settings
from pipeline.errors import PipelineError
from pipeline.runner import compare, format_summary, noise_description, run

#: Test noise of ``denoise evaluate --data`` without a config: white Gaussian noise of sigma
#: 25/255, a common radiograph denoising condition (the shipped model was trained on 0-50/255).
RADIOGRAPH_NOISE = GaussianNoiseConfig(sigma=round(25 / 255, 6))
RUNS_WHERE = (
    "results go to runs/<run.name>/<timestamp>/ under the current directory (run.output_dir)"
)


def add_config_args(
    p: argparse.ArgumentParser, config_required: bool, example: str = "train.epochs=5"
) -> None:
    """The CONFIG argument and the repeatable ``--set KEY=VALUE`` option."""
    p.add_argument(
        "config",
        nargs=None if config_required else "?",
        type=Path,
        help="YAML config file (see configs/)",
    )
    add_set_argument(p, f"override a config field, e.g. --set {example} (repeatable)")


def baseline_names(text: str) -> list[str]:
    """The names of a comma-separated --baselines value; an unknown one is a user error."""
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BASELINES]
    if unknown:
        raise PipelineError(
            f"--baselines: unknown baseline {', '.join(map(repr, unknown))}; "
            f"choose from {', '.join(BASELINES)}"
        )
    return names


def cmd_run(args: argparse.Namespace) -> int:
    """Run ``denoise run``: the stages of a config; print the summary and where results are."""
    result = run(load_config(args.config, args.overrides))
    if result.summary:
        print(format_summary(result.summary))
    print(f"run folder: {result.run_dir}")
    if result.report:
        print(f"report: {result.report}")
    return 0


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``denoise evaluate``."""
    add_config_args(p, config_required=False, example="noise.sigma=0.098")
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``denoise evaluate``: score models and baselines; print the summary and the report."""
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
        args.config, args.overrides, settings=evaluate_settings(args), fixed=evaluate_fixed(args)
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


def evaluate_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Settings of ``denoise evaluate`` that its --set options may change."""
    settings: dict[str, Any] = {"run": {"stages": ["evaluate", "report"]}}
    if args.config is None:  # --data: scans, not the MNIST tutorial's noise (sigma 0.5)
        settings = merge_settings(
            {"noise": RADIOGRAPH_NOISE.model_dump(), "run": {"name": "evaluate"}}, settings
        )
    return settings


def evaluate_fixed(args: argparse.Namespace) -> dict[str, Any]:
    """Settings of ``denoise evaluate`` given by its own options (over --set)."""
    fixed: dict[str, Any] = {}
    if args.data is not None:
        fixed["data"] = {"kind": "folder", "root": None, "test_root": args.data}
    if args.baselines:
        fixed["evaluate"] = {"baselines": baseline_names(args.baselines)}
    return fixed


def add_compare_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``denoise compare``."""
    p.add_argument(
        "configs", nargs="+", type=Path, help="YAML configs; the first decides data, noise and seed"
    )
    add_set_argument(p, "override a field in every config, e.g. --set train.epochs=5")
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


def cmd_compare(args: argparse.Namespace) -> int:
    """Run ``denoise compare``: train the configs, compare them; print the summary and report."""
    baselines = baseline_names(args.baselines) if args.baselines is not None else None
    configs = [load_config(path, args.overrides) for path in args.configs]
    result = compare(configs, list(args.model), baselines)
    print(format_summary(result.summary))
    print(f"report: {result.report}")
    return 0
