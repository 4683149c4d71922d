"""Setting up an adapt run: its config, the scans, the resume point, the ``fitted`` references."""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.config import Config, NoiseSection, apply_overrides, config_from_dict, merge_settings
from pipeline.errors import PipelineError
from pipeline.image import ScanImage

#: Adapt methods (``--method``, ``train.objective``).
ADAPT_METHODS = ("blindspot", "subsample", "fitted")
#: Method used when none is named (see benchmarks/adapt.md).
DEFAULT_METHOD = "fitted"
#: Patches per epoch (rounded up to whole patches per scan). An epoch is the unit of
#: checkpoints, resume and the time check, so it is kept short.
EPOCH_PATCHES = 64
#: Upper bound of epochs; the time budget ends adapting long before.
MAX_EPOCHS = 100_000
#: Settings adapt puts over the source model's config (the options' overrides come on top).
ADAPT_SETTINGS: dict[str, dict[str, Any]] = {
    "run": {"stages": ["train"], "name": "adapt"},
    "data": {
        "kind": "folder",
        "val_fraction": 0.0,
        "test_fraction": 0.0,
        "test_root": None,
        "patch_size": 128,
        "min_patch_std": 0.0,
        "augment": True,
        "max_clean_noise": None,
        "train_scales": [1.0],
        "resize": None,
    },
    "train": {
        "batch_size": 4,
        "loss": "mse",
        "loss_weighting": "none",
        "optimizer": "adam",
        "lr": 0.0001,
        "weight_decay": 0.0,
        "schedule": "none",
        "grad_clip": 1.0,
        "validate_every": 1,
        "early_stop_patience": None,
        "workers": 0,
        "epochs": MAX_EPOCHS,
        "resume": None,
    },
    "evaluate": {"baselines": [], "models": [], "noise": None},
}


@dataclass(frozen=True)
class AdaptOptions:
    """What ``denoise adapt`` was asked to do (see :func:`pipeline.adapt.adapt`)."""

    scans: Path
    run_dir: Path
    method: str = DEFAULT_METHOD
    minutes: float = 15.0
    seed: int = 0
    threads: int | None = None
    device: str = "auto"
    progress: bool = True
    overrides: tuple[str, ...] = field(default_factory=tuple)


def load_scans(scans: Path) -> tuple[list[ScanImage], list]:
    """The readable scans under `scans` and the failures; PipelineError when none can be read."""
    from pipeline.ingest.folder import load_folder

    images, failures = load_folder(scans)
    if not images:
        why = (
            f"; {len(failures)} could not be read (first: {failures[0].reason})" if failures else ""
        )
        raise PipelineError(
            f"no readable scans under {scans}{why}: "
            "give a folder of PNG/JPEG/TIFF/DICOM/NIfTI scans"
        )
    return images, failures


def adapt_config(options: AdaptOptions, source: Path, n_images: int) -> Config:
    """Return the source model's config with the adapt settings and the options' overrides.

    The result is validated.
    """
    from pipeline.checkpoint import read_checkpoint

    settings = merge_settings(
        ADAPT_SETTINGS,
        {
            "run": {
                "seed": options.seed,
                "output_dir": options.run_dir.parent,
                "threads": options.threads,
            },
            "data": {
                "root": options.scans,
                "patches_per_image": max(1, math.ceil(EPOCH_PATCHES / n_images)),
            },
            "train": {
                "objective": options.method,
                "init_from": source,
                "max_train_seconds": options.minutes * 60,
                "progress": options.progress,
            },
        },
    )
    raw = merge_settings(read_checkpoint(source, "--from")["config"], settings)
    cfg = config_from_dict(apply_overrides(raw, list(options.overrides)), "adapt settings")
    if cfg.model.name == "dense":
        raise PipelineError(
            f"{source} is a dense model of fixed image size; "
            "adapt needs a convolutional model (unet, dncnn, conv)"
        )
    return cfg


def with_training(cfg: Config, **train: Any) -> Config:
    """A copy of `cfg` whose train section has the fields `train` gives (validated)."""
    return cfg.model_copy(
        update={"train": cfg.train.model_validate({**cfg.train.model_dump(), **train})}
    )


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    """Return `cfg` without the fields a resumed run may change.

    Those are the budget, the resume point, progress and threads.
    """
    cfg = json.loads(json.dumps(cfg))
    for section, key in (
        ("train", "resume"),
        ("train", "max_train_seconds"),
        ("train", "progress"),
        ("run", "threads"),
    ):
        cfg.get(section, {}).pop(key, None)
    return cfg


def resume_point(cfg: Config, run_dir: Path) -> tuple[Path | None, float]:
    """Find where a run in `run_dir` (which may hold a killed run) resumes.

    Returns (last.pt to resume from or None, seconds already spent).
    """
    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file():
        if run_dir.is_dir() and any(
            p.name not in ("config.yaml", "environment.json", "checkpoints")
            for p in run_dir.iterdir()
        ):
            raise PipelineError(
                f"{run_dir} is not empty and holds no adapt checkpoint: "
                "give a new or empty folder as -o"
            )
        return None, 0.0
    from pipeline.checkpoint import read_checkpoint

    ckpt = read_checkpoint(last, "adapt resume")
    if _comparable(ckpt.get("config", {})) != _comparable(cfg.to_dict()):
        raise PipelineError(
            f"{run_dir} holds an adapt run with other settings (scans, model, method or options); "
            "give a new folder as -o, or the same options to resume it"
        )
    spent = sum(float(row["seconds"]) for row in ckpt.get("state", {}).get("log", []))
    return last, spent


def run_environment() -> dict[str, Any]:
    """The environment record of a run, with the load average at the start."""
    from pipeline.provenance import environment

    env = environment()
    if hasattr(os, "getloadavg"):
        env["load_average_1_5_15_min"] = list(os.getloadavg())
    return env


def fitted_references(
    images: list[ScanImage],
    source: Path,
    cfg: Config,
    run_dir: Path,
    device: torch.device,
    seed: int,
    deadline: float | None = None,
) -> tuple[list[np.ndarray], NoiseSection, dict[str, Any]]:
    """Denoise the scans with the source model and fit the noise to them.

    Returns the denoised scans (the ``fitted`` method's references), the fitted noise
    section and the fit's record; `cfg` is left as it is.

    A resumed run takes the noise from its checkpoint instead of fitting it again, so it
    goes on with the noise it started with.
    """
    from pipeline.checkpoint import load_model, read_checkpoint
    from pipeline.config import noise_config
    from pipeline.inference import ModelDenoiser
    from pipeline.noisefit import FIT_SCANS, fit_noise

    denoiser = ModelDenoiser(load_model(source, device).model, cfg.inference, device, "source")
    references = [denoiser(img.pixels) for img in images]
    last = run_dir / "checkpoints" / "last.pt"
    saved = (
        read_checkpoint(last, "adapt resume").get("config", {}).get("noise")
        if last.is_file()
        else None
    )
    if saved:
        noise = noise_config(saved)
        return (
            references,
            noise,
            {
                "noise": noise.model_dump(mode="json", exclude_none=True),
                "from": "the resumed run's checkpoint",
            },
        )
    left = (
        "" if deadline is None else f", for at most {max(deadline - time.perf_counter(), 0):.0f} s"
    )
    print(f"adapt: fitting the noise of {min(len(images), FIT_SCANS)} scans{left}")
    fit = fit_noise([img.pixels for img in images], denoiser, cfg.noise, seed, deadline)
    return references, fit.noise, fit.to_dict()
