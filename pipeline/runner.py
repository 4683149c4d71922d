"""The config-driven runner: ingest → noise → train → evaluate → report, in one run folder.

Run folder ``<output_dir>/<name>/<timestamp>/``: ``config.yaml`` (resolved, seed included),
``environment.json``, ``checkpoints/{last,best}.pt``, ``train_log.csv``, ``metrics.csv``,
``summary.json``, ``report.md``, ``report.html``, ``figures/`` and ``failures.csv`` when a
file was skipped. Under ``torchrun`` every process trains its shard; rank 0 alone writes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from pipeline.baselines import make_baseline
from pipeline.config import Config, save_config
from pipeline.denoiser import Denoiser, NoisyInput, Renamed
from pipeline.distributed import init_distributed
from pipeline.errors import PipelineError
from pipeline.evaluate import evaluate
from pipeline.inference import ModelDenoiser, denoiser_from_checkpoint, resolve_device
from pipeline.ingest import DataSplits, load_splits
from pipeline.ingest.failures import write_failures_csv
from pipeline.ingest.groups import write_split_csv
from pipeline.noise import NoiseModel, make_noise
from pipeline.process import torch_threads
from pipeline.provenance import environment
from pipeline.records import write_json
from pipeline.report.run_page import noise_description, write_run_report
from pipeline.train import train

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """Paths and numbers a run produced."""

    run_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    checkpoint: Path | None = None


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


def run(cfg: Config) -> RunResult:
    """Run the stages a config lists; return the run folder, summary and report path.

    torch uses ``run.threads`` CPU threads during the run (its setting is put back after).
    """
    with torch_threads(cfg.run.threads):
        return _run_stages(cfg)


def _run_stages(cfg: Config) -> RunResult:
    """The body of :func:`run`."""
    if "train" in cfg.run.stages and cfg.train.objective == "fitted":
        raise PipelineError(
            "train.objective fitted needs a starting model and noisy scans: "
            "use `denoise adapt --method fitted`; "
            "in a config choose supervised, blindspot or subsample"
        )
    device = resolve_device(cfg.run.device)
    splits = load_splits(
        cfg.data, cfg.run.seed
    )  # before the run folder: bad data makes no empty folder
    run_dir, is_main = _shared_run_dir(cfg)
    if is_main:
        _start_run_folder(cfg, splits, run_dir)
    noise = make_noise(cfg.noise)
    result = RunResult(run_dir)
    trained: ModelDenoiser | None = None
    train_log: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    if "train" in cfg.run.stages:
        if is_main:
            log.info(
                f"training {cfg.model.name} on {device.type} for {cfg.train.epochs} epochs "
                "(a line after each epoch)"
            )
        t0 = time.perf_counter()
        out = train(
            cfg,
            [i.pixels for i in splits.train],
            [i.pixels for i in splits.val],
            noise,
            run_dir,
            device,
            splits.train_sources(),
        )
        extra["training_seconds"] = time.perf_counter() - t0
        extra["epochs_run"] = len(out.log)
        train_log = out.log
        result.checkpoint = out.best
        trained = ModelDenoiser(out.model, cfg.inference, device, cfg.model.name)
    if is_main and "evaluate" in cfg.run.stages:
        _evaluate_stage(cfg, splits, noise, trained, result, train_log, extra)
    return result


def _start_run_folder(cfg: Config, splits: DataSplits, run_dir: Path) -> None:
    """Log the run folder and the data; write the config, environment, failures and split."""
    log.info(f"run folder: {run_dir}")
    log.info(
        f"data: {splits.description}; {len(splits.train)} train, {len(splits.val)} validation, "
        f"{len(splits.test)} test images"
    )
    save_config(cfg, run_dir / "config.yaml")
    write_json(environment(), run_dir / "environment.json")
    if splits.failures:
        write_failures_csv(splits.failures, run_dir / "failures.csv")
    if splits.assignment:
        write_split_csv(splits.assignment, run_dir / "split.csv")


def _evaluate_stage(
    cfg: Config,
    splits: DataSplits,
    noise: NoiseModel,
    trained: ModelDenoiser | None,
    result: RunResult,
    train_log: list[dict[str, Any]],
    extra: dict[str, Any],
) -> None:
    """Evaluate the methods on the test images, then the report stage (into `result`)."""
    if not splits.test:
        raise PipelineError("no test images to evaluate: check data.test_fraction / data.test_root")
    methods = build_methods(cfg, trained)
    test_noise = make_noise(cfg.evaluate.noise) if cfg.evaluate.noise is not None else noise
    log.info(
        f"evaluating {', '.join(m.name for m in methods)} on {len(splits.test)} test images "
        f"with {(cfg.evaluate.noise or cfg.noise).kind} noise ({noise_description(cfg)})"
    )
    evaluated = evaluate(
        splits.test,
        test_noise,
        cfg.run.seed,
        methods,
        result.run_dir,
        cfg.report.n_examples,
        cfg.train.progress,
    )
    if "report" in cfg.run.stages:
        log.info("writing the report (summary, figures, report.html)")
        result.summary, result.report = write_run_report(
            cfg, result.run_dir, evaluated, splits, train_log, extra
        )


def compare(
    configs: list[Config], models: list[Path] | None = None, baselines: list[str] | None = None
) -> RunResult:
    """Train each config, then evaluate all of them (plus `models` and `baselines`) side by side.

    The first config decides the test images, the noise and the seed, so every method sees
    the same noisy images. Each config is trained in its own run folder; the comparison is a
    run named ``compare`` whose report holds every method.
    """
    if not configs:
        raise PipelineError("compare needs at least one config")
    checkpoints: list[Path] = []
    for cfg in configs:
        trained = run(
            cfg.model_copy(update={"run": cfg.run.model_copy(update={"stages": ["train"]})})
        )
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
