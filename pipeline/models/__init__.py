"""Network builders by name.

Every model maps a batch (N, 1, H, W) in [0, 1] to (N, 1, H, W) in [0, 1] and has two
attributes: ``size_multiple`` (fully convolutional models accept any H, W that are
multiples of it) and ``fixed_size`` (the one side length a dense model accepts, else None).
"""

from __future__ import annotations

import torch
from torch import nn

from pipeline.config import ModelConfig
from pipeline.errors import PipelineError
from pipeline.models.conv import ConvAutoencoder
from pipeline.models.dense import DenseAutoencoder
from pipeline.models.dncnn import DnCNN
from pipeline.models.unet import ResidualUNet

MODEL_NAMES = ("dense", "conv", "unet", "dncnn")


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the network a config section names (weights freshly initialised).

    A network too large for memory is a user error (PipelineError naming the model section).
    """
    try:
        return _build(cfg)
    except (MemoryError, RuntimeError) as err:
        if not isinstance(err, MemoryError) and "alloc" not in str(err).lower():
            raise
        raise PipelineError(
            f"the {cfg.name} network of the model section (features {cfg.features}, channels "
            f"{cfg.channels}, latent {cfg.latent}) does not fit in memory: make "
            "model.features/channels/latent smaller"
        ) from None


def _build(cfg: ModelConfig) -> nn.Module:
    if cfg.name == "dense":
        return DenseAutoencoder(cfg.image_size, cfg.latent)
    if cfg.name == "conv":
        return ConvAutoencoder(cfg.features)
    if cfg.name == "unet":
        return ResidualUNet(tuple(cfg.channels), cfg.residual, cfg.refine_channels)
    if cfg.name == "dncnn":
        return DnCNN(cfg.depth, cfg.features, cfg.residual)
    raise ValueError(f"unknown model {cfg.name!r}; choose one of {', '.join(MODEL_NAMES)}")


def weight_layout(device: torch.device) -> torch.memory_format:
    """The memory layout of a network's convolution weights for training and inference on `device`.

    Channels-last on the CPU (oneDNN's convolutions and transposed convolutions run faster on
    it; the values are the same), the default layout elsewhere.
    """
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format


def count_parameters(model: nn.Module) -> int:
    """Number of parameters of `model`."""
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "MODEL_NAMES",
    "ConvAutoencoder",
    "DenseAutoencoder",
    "DnCNN",
    "ResidualUNet",
    "build_model",
    "count_parameters",
    "weight_layout",
]
