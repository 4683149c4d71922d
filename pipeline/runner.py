"""The config-driven runner: ingest → noise → train → evaluate → report, in one run folder.

Run folder ``<output_dir>/<name>/<timestamp>/``: ``config.yaml`` (resolved, seed included),
``environment.json``, ``checkpoints/{last,best}.pt``, ``train_log.csv``, ``metrics.csv``,
``summary.json``, ``report.md``, ``report.html``, ``figures/`` and ``failures.csv`` when a
file was skipped. Under ``torchrun`` every process trains its shard; rank 0 alone writes.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import monai
import numpy as np
import pydicom
import skimage
import torch

import pipeline
from pipeline import report
from pipeline.baselines import make_baseline
from pipeline.config import Config, save_config
from pipeline.denoiser import Denoiser, NoisyInput, Renamed
from pipeline.detail import band_transfer, by_method, curves
from pipeline.detail_figure import transfer_figure
from pipeline.distributed import init_distributed
from pipeline.errors import PipelineError
from pipeline.evaluate import EvalResult, evaluate, noise_given_by_method, read_spectra
from pipeline.inference import ModelDenoiser, denoiser_from_checkpoint, resolve_device
from pipeline.ingest import DataSplits, load_splits
from pipeline.ingest.failures import write_failures_csv
from pipeline.ingest.groups import write_split_csv
from pipeline.noise import make_noise
from pipeline.records import write_json
from pipeline.train import train

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """Paths and numbers a run produced."""

    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    checkpoint: Path | None = None


def source_commit() -> str | None:
    """The git commit of the running code (``+dirty`` with uncommitted changes); None outside a checkout."""
    root = str(Path(pipeline.__file__).resolve().parent.parent)
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, check=True, timeout=20).stdout.strip()

        head = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def environment() -> dict[str, Any]:
    """Versions and hardware, saved beside every result."""
    return {
        "package": pipeline.__version__,
        "commit": source_commit(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "monai": monai.__version__,
        "pydicom": pydicom.__version__,
        "scikit_image": skimage.__version__,
        "numpy": np.__version__,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def make_run_dir(cfg: Config) -> Path:
    """A fresh ``<output_dir>/<name>/<timestamp>`` folder (suffixed if the second is taken)."""
    base = Path(cfg.run.output_dir) / cfg.run.name
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = base / stamp
    n = 1
    while run_dir.exists():
        run_dir = base / f"{stamp}-{n}"
        n += 1
    run_dir.mkdir(parents=True)
    return run_dir


def _shared_run_dir(cfg: Config) -> tuple[Path, bool]:
    """The run folder, made by rank 0 and shared with the other torchrun workers."""
    info = init_distributed(resolve_device(cfg.run.device))
    if not info.launched:
        return make_run_dir(cfg), True
    holder = [str(make_run_dir(cfg)) if info.is_main else ""]
    torch.distributed.broadcast_object_list(holder, src=0)
    return Path(holder[0]), info.is_main


def build_methods(cfg: Config, trained: ModelDenoiser | None) -> list[Denoiser]:
    """Noisy input, the trained model, further checkpoints, then the classical baselines."""
    methods: list[Denoiser] = [NoisyInput()]
    if trained is not None:
        methods.append(trained)  # named after its architecture
    for path in cfg.evaluate.models:
        denoiser, _ = denoiser_from_checkpoint(path, cfg.inference)
        if any(m.name == denoiser.name for m in methods):
            methods.append(Renamed(denoiser, f"{denoiser.name}:{Path(path).name}"))
        else:
            methods.append(denoiser)
    methods += [make_baseline(name) for name in cfg.evaluate.baselines]
    return methods


def write_report(cfg: Config, run_dir: Path, result: EvalResult, splits: DataSplits, train_log: list[dict[str, Any]], extra: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """summary.json, report.md, figures/ and report.html for an evaluated run."""
    summary = report.summarize_methods(result.rows)
    summary["run"] = {"name": cfg.run.name, "seed": cfg.run.seed, "folder": str(run_dir)}
    summary["data"] = splits.description
    summary["noise"] = (cfg.evaluate.noise or cfg.noise).model_dump(mode="json")
    summary["n_test_images"] = len(splits.test)
    summary.update(extra)
    given = noise_given_by_method(result.rows)
    if given:
        summary["noise_given"] = given
    spectra = by_method(read_spectra(run_dir / "spectra.jsonl"))
    if spectra:
        summary["detail_kept"] = {m: band_transfer(s) for m, s in spectra.items()}
    write_json(summary, run_dir / "summary.json")
    figures: dict[str, Path] = {}
    fig_dir = run_dir / "figures"
    if result.examples and cfg.report.n_examples:
        examples = result.examples[: cfg.report.n_examples]
        figures[report.example_caption(examples)] = report.example_panel_figure(examples, fig_dir / "examples.png")
    figures["PSNR and SSIM per image, by method"] = report.distribution_figure(result.rows, fig_dir / "distributions.png")
    if spectra:
        figure = transfer_figure([("test images", {m: curves(s) for m, s in spectra.items()})], fig_dir / "detail_kept.png")
        figures["Detail kept T(f) per method (the task transfer function on the content: 1 keeps all, lower smooths more; "
                "noise left in does not raise it; grey: the reported bands) and the noise power spectrum of each "
                "method's residual (output − clean)"] = figure
    if train_log:
        figures["Training loss and validation PSNR by epoch"] = report.loss_curve_figure(train_log, fig_dir / "loss_curve.png")
    lines = [
        f"Data: {splits.description}; {len(splits.test)} test images.",
        f"Test noise: {(cfg.evaluate.noise or cfg.noise).kind} ({noise_description(cfg)}), seed {cfg.run.seed}; every method sees the same noisy images.",
        "Metrics: PSNR (dB) and SSIM with data_range = each image's real range (pixels normalised to [0, 1] by it).",
    ]
    if given:
        lines.append("Noise given to baselines: " + "; ".join(
            f"{name} the noise's {'power spectrum (PSD)' if kind == 'psd' else 'true std (sigma)' if kind == 'sigma' else kind}"
            for name, kind in given.items()) + ".")
    if train_log:
        last = train_log[-1]
        lines.append(f"Training: {cfg.model.name}, {len(train_log)} epochs, final val PSNR {last['val_psnr']:.2f} dB, {sum(r['seconds'] for r in train_log):.0f} s.")
    if spectra:
        lines.append("Detail kept (pooled over the test images, per band of cycles/pixel): " + "; ".join(
            f"{m} " + ", ".join(f"{band.removeprefix('T_')} {value:.3f}" for band, value in bands.items())
            for m, bands in summary["detail_kept"].items()) + ".")
    report.write_report_md(summary, run_dir / "report.md", f"Run {cfg.run.name}", lines)
    html_path = run_dir / "report.html"
    if cfg.report.html:
        env = json.loads((run_dir / "environment.json").read_text())
        facts = {
            "date": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
            "commit": env.get("commit") or "unknown (not a git checkout)",
            "version": env.get("package", ""),
            "run folder": str(run_dir),
        }
        report.write_report_html(html_path, f"Run {cfg.run.name}", summary, figures, lines, facts)
    return summary, html_path if cfg.report.html else run_dir / "report.md"


def noise_description(cfg: Config) -> str:
    """The test noise's parameters in words, e.g. ``sigma 0.098``."""
    return (cfg.evaluate.noise or cfg.noise).describe()


def run(cfg: Config) -> RunResult:
    """Run the stages a config lists; return the run folder, summary and report path."""
    if "train" in cfg.run.stages and cfg.train.objective == "fitted":
        raise PipelineError(
            "train.objective fitted needs a starting model and noisy scans: use `denoise adapt --method fitted`; "
            "in a config choose supervised, blindspot or subsample"
        )
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    device = resolve_device(cfg.run.device)
    splits = load_splits(cfg.data, cfg.run.seed)  # before the run folder: bad data makes no empty folder
    run_dir, is_main = _shared_run_dir(cfg)
    if is_main:
        log.info(f"run folder: {run_dir}")
        log.info(f"data: {splits.description}; {len(splits.train)} train, {len(splits.val)} validation, {len(splits.test)} test images")
        save_config(cfg, run_dir / "config.yaml")
        write_json(environment(), run_dir / "environment.json")
    if is_main and splits.failures:
        write_failures_csv(splits.failures, run_dir / "failures.csv")
    if is_main and splits.assignment:
        write_split_csv(splits.assignment, run_dir / "split.csv")
    noise = make_noise(cfg.noise)
    result = RunResult(run_dir)
    trained: ModelDenoiser | None = None
    train_log: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    if "train" in cfg.run.stages:
        if is_main:
            log.info(f"training {cfg.model.name} on {device.type} for {cfg.train.epochs} epochs (a line after each epoch)")
        t0 = time.perf_counter()
        out = train(cfg, [i.pixels for i in splits.train], [i.pixels for i in splits.val], noise, run_dir, device)
        extra["training_seconds"] = time.perf_counter() - t0
        extra["epochs_run"] = len(out.log)
        train_log = out.log
        result.checkpoint = out.best
        trained = ModelDenoiser.from_settings(out.model, cfg.inference, device, cfg.model.name)
    if not is_main:
        return result
    if "evaluate" in cfg.run.stages:
        if not splits.test:
            raise PipelineError("no test images to evaluate: check data.test_fraction / data.test_root")
        methods = build_methods(cfg, trained)
        test_noise = make_noise(cfg.evaluate.noise) if cfg.evaluate.noise is not None else noise
        log.info(f"evaluating {', '.join(m.name for m in methods)} on {len(splits.test)} test images "
             f"with {(cfg.evaluate.noise or cfg.noise).kind} noise ({noise_description(cfg)})")
        evaluated = evaluate(splits.test, test_noise, cfg.run.seed, methods, run_dir, cfg.report.n_examples, cfg.train.progress)
        if "report" in cfg.run.stages:
            log.info("writing the report (summary, figures, report.html)")
            result.summary, result.report = write_report(cfg, run_dir, evaluated, splits, train_log, extra)
    return result


def compare(configs: list[Config], models: list[Path] | None = None, baselines: list[str] | None = None) -> RunResult:
    """Train each config, then evaluate all of them (plus `models` and `baselines`) side by side.

    The first config decides the test images, the noise and the seed, so every method sees
    the same noisy images. Each config is trained in its own run folder; the comparison is a
    run named ``compare`` whose report holds every method.
    """
    if not configs:
        raise PipelineError("compare needs at least one config")
    checkpoints: list[Path] = []
    for cfg in configs:
        trained = run(cfg.model_copy(update={"run": cfg.run.model_copy(update={"stages": ["train"]})}))
        if trained.checkpoint is not None:
            checkpoints.append(trained.checkpoint)
    first = configs[0]
    evaluate_cfg = first.model_copy(deep=True)
    evaluate_cfg.run.name = "compare"
    evaluate_cfg.run.stages = ["evaluate", "report"]
    evaluate_cfg.evaluate.models = checkpoints + list(models or [])
    if baselines is not None:
        evaluate_cfg.evaluate.baselines = baselines
    return run(evaluate_cfg)


def format_summary(summary: dict[str, Any]) -> str:
    """A few lines for the terminal: mean PSNR/SSIM per method."""
    lines = [f"{'method':<24}{'PSNR (dB)':>12}{'SSIM':>9}{'n':>7}"]
    for name, m in summary.get("methods", {}).items():
        lines.append(f"{name:<24}{m['psnr']['mean']:>12.2f}{m['ssim']['mean']:>9.3f}{m['n']:>7d}")
    return "\n".join(lines)
