"""Residual U-Net built on MONAI's UNet, sized for speed on the CPU."""

from __future__ import annotations

import torch
from monai.networks.blocks import Convolution
from monai.networks.nets import UNet
from torch import nn


class ResidualUNet(nn.Module):
    """MONAI ``UNet`` (one residual unit per level, no normalisation layers).

    No normalisation: instance norm makes statistics of training patches differ from those
    of whole images. With
    ``residual=True`` the network predicts the noise and the output is input minus noise.
    Accepts any H, W that are multiples of 2**(levels-1).

    MONAI's UNet strides in its first convolution, so none of its layers sees the image at
    full resolution. ``refine_channels > 0`` adds a small full-resolution head (four 3x3
    convolutions of that width) that takes the input and the U-Net's noise estimate and
    adds a correction to the estimate; its last layer starts at zero, so a U-Net trained
    without the head keeps its output until the head is trained. The shipped model has none.
    """

    fixed_size = None

    def __init__(
        self,
        channels: tuple[int, ...] = (16, 32, 64, 128),
        residual: bool = True,
        refine_channels: int = 0,
    ) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError("unet needs at least two levels of channels, e.g. [16, 32, 64, 128]")
        if refine_channels and not residual:
            raise ValueError(
                "unet: refine_channels needs residual: true (the head corrects a noise estimate)"
            )
        self.size_multiple = 2 ** (len(channels) - 1)
        self.net = UNet(
            spatial_dims=2,
            in_channels=1,
            out_channels=1,
            channels=tuple(channels),
            strides=(2,) * (len(channels) - 1),
            num_res_units=1,
            norm=None,
        )
        self.residual = residual
        if residual:
            _zero_output_layer(self.net)
        self.refine = _refinement_head(refine_channels) if refine_channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise `x` (N, 1, H, W) in [0, 1]; the output is clamped to [0, 1]."""
        out = self.net(x)
        if self.refine is not None:
            out = out + self.refine(torch.cat([x, out], dim=1))
        out = x - out if self.residual else torch.sigmoid(out)
        return out.clamp(0.0, 1.0)


def _zero_output_layer(net: nn.Module) -> None:
    """Zero the last up-block's convolutions so a residual model starts as the identity.

    Training then starts from "output = input" instead of from a random offset.
    """
    last_up = list(net.model.children())[-1]
    for module in last_up.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.out_channels == 1:
            _zero(module)


def _zero(conv: nn.Module) -> None:
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def _refinement_head(width: int) -> nn.Sequential:
    """Four full-resolution 3x3 convolutions: (input, noise estimate) -> correction.

    The last one starts at zero.
    """
    head = nn.Sequential(
        Convolution(2, 2, width, kernel_size=3, act="PRELU", norm=None),
        Convolution(2, width, width, kernel_size=3, act="PRELU", norm=None),
        Convolution(2, width, width, kernel_size=3, act="PRELU", norm=None),
        Convolution(2, width, 1, kernel_size=3, conv_only=True),
    )
    _zero([m for m in head.modules() if isinstance(m, nn.Conv2d)][-1])
    return head
