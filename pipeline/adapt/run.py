"""``adapt``: prepare, fine-tune within the time budget, write the record and report."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.adapt.checks import noise_level
from pipeline.adapt.report import write_adapt_report
from pipeline.adapt.setup import (
    ADAPT_METHODS,
    DEFAULT_METHOD,
    AdaptOptions,
    adapt_config,
    fitted_references,
    load_scans,
    resume_point,
    run_environment,
    with_training,
)
from pipeline.config import Config, save_config
from pipeline.errors import PipelineError, given_path
from pipeline.image import ScanImage
from pipeline.process import torch_threads
from pipeline.records import write_json

__all__ = ["ADAPT_METHODS", "DEFAULT_METHOD", "AdaptResult", "adapt"]

#: Training seconds given to a new run whose time budget was used up before training (the loop
#: checks the budget after each epoch, so this means one epoch).
MIN_TRAIN_SECONDS = 1e-3
#: Share of the time budget the ``fitted`` method's noise fit may use at most.
FIT_SHARE = 0.5


class AsIs:
    """The 'noise model' of scans that are noisy already: they go to training unchanged."""

    def __call__(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(clean, np.float32)

    def std(self, clean: np.ndarray) -> float:
        return 0.0


@dataclass
class AdaptResult:
    """What adapting produced."""

    run_dir: Path
    checkpoint: Path
    report: Path
    record: dict[str, Any]


@dataclass
class Prepared:
    """What training starts from.

    The config (with the fitted noise), the training images and their noise, the fit's
    record and the source model's outputs (``fitted`` only).
    """

    cfg: Config
    train_pixels: list[np.ndarray]
    noise_model: Any
    fit_record: dict[str, Any] | None = None
    source_outputs: list[np.ndarray] | None = None


def adapt(
    scans: str | Path,
    run_dir: str | Path,
    source: str | Path | None = None,
    method: str = DEFAULT_METHOD,
    minutes: float = 15.0,
    seed: int = 0,
    threads: int | None = None,
    device: str = "auto",
    progress: bool = True,
    overrides: list[str] | None = None,
) -> AdaptResult:
    """Fine-tune `source` (default: the shipped model) on the noisy `scans` alone.

    See :mod:`pipeline.adapt` for the methods, the time budget and the run folder.
    """
    if minutes <= 0:
        raise PipelineError(f"--minutes must be positive, got {minutes}")
    # the budget counts from here: reading, references, noise fit, training
    began = time.perf_counter()
    options = AdaptOptions(
        Path(given_path(scans, "the scan folder (-i)")),
        Path(given_path(run_dir, "the run folder (-o)")),
        method,
        minutes,
        seed,
        threads,
        device,
        progress,
        tuple(overrides or ()),
    )
    with torch_threads(threads):  # torch's thread count is put back after the call
        return run_adapt(options, source, began)


def run_adapt(options: AdaptOptions, source: str | Path | None, began: float) -> AdaptResult:
    """Run :func:`adapt` with its options checked.

    `began` is the :func:`time.perf_counter` the budget counts from.
    """
    from pipeline.checkpoint import checkpoint_path
    from pipeline.inference import resolve_device
    from pipeline.train import read_log

    if not options.scans.exists():
        raise PipelineError(f"scan folder not found: {options.scans}")
    source_path = checkpoint_path(source)
    images, failures = load_scans(options.scans)
    dev = resolve_device(options.device)
    cfg = adapt_config(options, source_path, len(images))
    if cfg.train.objective not in ADAPT_METHODS:
        raise PipelineError(
            f"adapt has no clean images: choose one of {', '.join(ADAPT_METHODS)} "
            f"(not {cfg.train.objective})"
        )
    prepared = _prepare(options, cfg, images, source_path, dev, began)
    resume, spent = resume_point(prepared.cfg, options.run_dir)
    cfg = with_training(prepared.cfg, resume=resume) if resume is not None else prepared.cfg
    _write_run_files(cfg, options.run_dir, failures)
    before = [noise_level(img.pixels) for img in images]
    prepare_seconds = time.perf_counter() - began
    t0 = time.perf_counter()
    model = _train(cfg, prepared, options, resume, spent, prepare_seconds, dev)
    record = _record(
        cfg, source_path, options, images, before, failures, spent, time.perf_counter() - t0
    )
    record["epochs"] = len(read_log(options.run_dir / "train_log.csv"))
    if prepared.fit_record is not None:
        record["noise_fit"] = prepared.fit_record
    record["seconds_preparing"] = prepare_seconds
    report = write_adapt_report(
        model, source_path, images, record, options.run_dir, dev, cfg, prepared.source_outputs
    )
    write_json(record, options.run_dir / "adapt.json")
    return AdaptResult(options.run_dir, options.run_dir / "checkpoints" / "best.pt", report, record)


def _prepare(
    options: AdaptOptions,
    cfg: Config,
    images: list[ScanImage],
    source: Path,
    device: torch.device,
    began: float,
) -> Prepared:
    """Prepare the training inputs of the method.

    They are the scans as they are, or (``fitted``) the source model's outputs with the
    noise fitted to the scans, which counts against the budget.
    """
    from pipeline.noise import make_noise

    if cfg.train.objective != "fitted":
        return Prepared(cfg, [img.pixels for img in images], AsIs())
    started = time.perf_counter()
    deadline = began + FIT_SHARE * options.minutes * 60
    references, noise, fit_record = fitted_references(
        images, source, cfg, options.run_dir, device, options.seed, deadline
    )
    fit_record = {**fit_record, "seconds": time.perf_counter() - started}
    # the source model's outputs are the references, and the report shows them too
    return Prepared(
        cfg.model_copy(update={"noise": noise}),
        references,
        make_noise(noise),
        fit_record,
        references,
    )


def _write_run_files(cfg: Config, run_dir: Path, failures: list) -> None:
    """config.yaml, environment.json and (when scans could not be read) failures.csv."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml")
    write_json(run_environment(), run_dir / "environment.json")
    if failures:
        from pipeline.ingest.failures import write_failures_csv

        write_failures_csv(failures, run_dir / "failures.csv")


def _train(
    cfg: Config,
    prepared: Prepared,
    options: AdaptOptions,
    resume: Path | None,
    spent: float,
    prepare_seconds: float,
    device: torch.device,
) -> torch.nn.Module:
    """Fine-tune for the time left (a new run at least one epoch); the adapted model."""
    from pipeline.train import train

    remaining = options.minutes * 60 - spent - prepare_seconds
    if (
        remaining <= 0 and resume is not None
    ):  # the budget was spent before a kill: nothing left to train
        from pipeline.checkpoint import load_model

        return load_model(options.run_dir, device).model
    cfg = with_training(cfg, max_train_seconds=max(remaining, MIN_TRAIN_SECONDS))
    words = f"resuming after {spent:.0f} s" if resume is not None else "starting"
    left = (
        f"up to {remaining / 60:.1f} min left"
        if remaining > 0
        else "one epoch (preparing used the time budget)"
    )
    print(f"adapt: {words}; {len(prepared.train_pixels)} scans, {cfg.train.objective}, {left}")
    return train(
        cfg, prepared.train_pixels, [], prepared.noise_model, options.run_dir, device
    ).model


def _record(
    cfg: Config,
    source: Path,
    options: AdaptOptions,
    images: list[ScanImage],
    before: list[float],
    failures: list,
    spent: float,
    seconds: float,
) -> dict[str, Any]:
    """The run's record (adapt.json) before the report adds its checks."""
    return {
        "source_model": str(source),
        "scans": str(options.scans),
        "method": cfg.train.objective,
        "self_supervised": cfg.train.self_supervised.model_dump(mode="json"),
        "budget_minutes": options.minutes,
        "seconds_before_resume": spent,
        "seconds_this_run": seconds,
        "patches_per_epoch": cfg.data.patches_per_image * len(images),
        "threads": torch.get_num_threads(),
        "n_scans": len(images),
        "n_failed": len(failures),
        "noise_estimate_before": {img.meta.name: b for img, b in zip(images, before)},
        "noise_estimate_before_mean": float(np.mean(before)),
    }
