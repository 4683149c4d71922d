"""Small trained-looking checkpoints for tests of code that loads models (fast on a CPU)."""

from __future__ import annotations

from pathlib import Path

import torch

import pipeline
from pipeline.config import Config
from pipeline.models import build_model


def save_tiny_unet(path: Path, seed: int = 0) -> Path:
    """A 3-level residual U-Net (size multiple 4) with seeded random weights, saved as a checkpoint.

    The weights are perturbed so that the output is not the identity (an untrained residual
    U-Net starts as one), which would make any comparison between two paths trivial.
    """
    cfg = Config()
    cfg.model.name = "unet"
    cfg.model.channels = [4, 8, 16]
    cfg.run.name = "tiny_unet"
    torch.manual_seed(seed)
    model = build_model(cfg.model)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model_state": model.state_dict(),
            "optimizer_state": None,
            "scheduler_state": None,
            "epoch": 0,
            "config": cfg.to_dict(),
            "version": pipeline.__version__,
            "state": {},
        },
        path,
    )
    return path
