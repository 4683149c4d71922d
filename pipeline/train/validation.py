"""Validation: the model's loss and PSNR on fixed noisy validation images."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pipeline.config import InferenceConfig
from pipeline.inference import ModelDenoiser
from pipeline.metrics import psnr


def validate(
    model: nn.Module,
    noisy: list[np.ndarray],
    clean: list[np.ndarray],
    loss_fn,
    device,
    settings: InferenceConfig,
) -> tuple[float, float]:
    """Mean loss and mean PSNR (data range 1) of the model on fixed noisy validation images.

    NaN for both without images. The model is left in training mode.
    """
    if not noisy:
        return float("nan"), float("nan")
    model.eval()
    denoiser = ModelDenoiser(model, settings, device)
    outputs = denoiser.denoise_many(noisy)
    losses = [
        float(loss_fn(torch.from_numpy(o)[None, None], torch.from_numpy(c)[None, None]))
        for o, c in zip(outputs, clean)
    ]
    psnrs = [psnr(c, o, data_range=1.0) for o, c in zip(outputs, clean)]
    model.train()
    return float(np.mean(losses)), float(np.mean(psnrs))
