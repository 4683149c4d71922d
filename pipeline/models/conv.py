"""Convolutional autoencoder: the widely copied 32-filter conv/pool/upsample design."""

from __future__ import annotations

import torch
from torch import nn


class ConvAutoencoder(nn.Module):
    """2x (conv 3x3, ReLU, max-pool 2), 2x (conv 3x3, ReLU, upsample 2), conv 3x3, sigmoid.

    Fully convolutional: any H, W that are multiples of 4.
    """

    size_multiple = 4
    fixed_size = None

    def __init__(self, features: int = 32) -> None:
        super().__init__()
        f = features

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]

        self.encoder = nn.Sequential(*block(1, f), nn.MaxPool2d(2), *block(f, f), nn.MaxPool2d(2))
        self.decoder = nn.Sequential(
            *block(f, f),
            nn.Upsample(scale_factor=2),
            *block(f, f),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(f, 1, 3, padding=1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Denoise `x` (N, 1, H, W) in [0, 1]."""
        return self.decoder(self.encoder(x))
